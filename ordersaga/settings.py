"""Defaults shared by every process, each overridable by an environment variable or a flag."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass

DEFAULT_TEMPORAL_ADDRESS = "localhost:7233"
DEFAULT_NAMESPACE = "default"
DEFAULT_TASK_QUEUE = "order-saga"
DEFAULT_UI_URL = "http://localhost:8233"
DEFAULT_SERVICES_PORT = 8300
DEFAULT_SERVICES_URL = f"http://127.0.0.1:{DEFAULT_SERVICES_PORT}"


def env(name: str, default: str) -> str:
    """Read `name` from the environment, falling back to `default` when unset or empty."""
    return os.environ.get(name) or default


#: Options every command shares: flag -> (environment variable, default, help).
OPTIONS: dict[str, tuple[str, str, str]] = {
    "--address": ("TEMPORAL_ADDRESS", DEFAULT_TEMPORAL_ADDRESS, "Temporal frontend host:port"),
    "--namespace": ("TEMPORAL_NAMESPACE", DEFAULT_NAMESPACE, "Temporal namespace"),
    "--task-queue": ("TASK_QUEUE", DEFAULT_TASK_QUEUE, "task queue of the workers"),
    "--ui-url": ("TEMPORAL_UI_URL", DEFAULT_UI_URL, "Temporal Web UI, for links"),
    "--services-url": (
        "SERVICES_URL",
        DEFAULT_SERVICES_URL,
        "base URL of the stand-in services (INVENTORY_URL, PAYMENT_URL, SHIPPING_URL and "
        "ORDERS_URL override one service each)",
    ),
}


def add_options(parser: argparse.ArgumentParser, *flags: str) -> None:
    """Add shared options: a flag beats its environment variable, which beats the default."""
    for flag in flags:
        variable, default, help_text = OPTIONS[flag]
        parser.add_argument(
            flag,
            default=env(variable, default),
            help=f"{help_text} [env {variable}, default %(default)s]",
        )


@dataclass(frozen=True)
class ServiceUrls:
    """Base URLs of the four services (they may all live in one process)."""

    inventory: str
    payment: str
    shipping: str
    orders: str

    @classmethod
    def from_base(cls, base_url: str) -> ServiceUrls:
        """URLs for all four services hosted by one `order-saga services` process."""
        base = base_url.rstrip("/")
        return cls(
            inventory=f"{base}/inventory",
            payment=f"{base}/payment",
            shipping=f"{base}/shipping",
            orders=f"{base}/orders",
        )

    @classmethod
    def from_env(cls, base_url: str) -> ServiceUrls:
        """`base_url` for all four, each overridable by `<SERVICE>_URL` in the environment."""
        base = cls.from_base(base_url)
        return cls(
            inventory=env("INVENTORY_URL", base.inventory),
            payment=env("PAYMENT_URL", base.payment),
            shipping=env("SHIPPING_URL", base.shipping),
            orders=env("ORDERS_URL", base.orders),
        )
