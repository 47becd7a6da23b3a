"""One settings model for every process: flags beat environment variables, which beat defaults.

Each setting's environment variable is its name in capitals (`task_queue` is `TASK_QUEUE`) and its
flag is its name in kebab case (`--task-queue`); some keep a shorter flag from before
(`--address`). The Temporal connection settings use the names Temporal's own tools use
(`TEMPORAL_ADDRESS`, `TEMPORAL_TLS_CLIENT_CERT_PATH`, ...), and Temporal's client config file
(`TEMPORAL_CONFIG_FILE`, profile `TEMPORAL_PROFILE`) is read beneath them: a value in the
profile is used unless an environment variable or a flag says otherwise. Between the two sits
the settings file `data/order-saga.env` (`ORDER_SAGA_ENV_FILE`), which the demo writes while
it runs, so that commands beside it agree with it on keys and addresses.

`infra.settings_cli` turns the model into each command's flags.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    Field,
    SecretStr,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from infra.temporal_profile import profile_settings
from workflows.order_steps import SERVICES

DEFAULT_TEMPORAL_ADDRESS = "localhost:7233"
DEFAULT_NAMESPACE = "default"
DEFAULT_TASK_QUEUE = "order-saga"
DEFAULT_DEPLOYMENT_NAME = "order-saga"
DEFAULT_UI_URL = "http://localhost:8233"
DEFAULT_SERVICES_PORT = 8300
DEFAULT_SERVICES_URL = f"http://127.0.0.1:{DEFAULT_SERVICES_PORT}"
DEFAULT_CODEC_SERVER_PORT = 8234
DEFAULT_API_PORT = 8400

#: Long enough to look back over a week's sagas on the dashboard and to resend a customer's
#: message; Temporal keeps the sagas themselves for its namespace's retention.
DEFAULT_DATA_RETENTION = timedelta(days=7)

#: The embedded event log's file in the data folder, the default event bus.
EVENTS_FILE = "events.db"


def event_log_url(data_dir: Path) -> str:
    """The URL of the embedded event log in `data_dir`."""
    return f"sqlite:///{(data_dir / EVENTS_FILE).resolve()}"


#: The file of settings that `order-saga demo` writes while it runs, so that every command run
#: beside it (starter, worker, audit, ...) uses its keys and addresses without being told.
DEFAULT_ENV_FILE = Path("data/order-saga.env")

#: The environment variable that names another settings file, or turns it off when empty.
ENV_FILE_VARIABLE = "ORDER_SAGA_ENV_FILE"


def env_file() -> Path | None:
    """The settings file every command reads beneath the environment, if it names one."""
    named = os.environ.get(ENV_FILE_VARIABLE)
    if named is None:
        return DEFAULT_ENV_FILE
    return Path(named) if named.strip() else None


_DURATION = TypeAdapter(timedelta)


def as_retention(value: Any) -> timedelta:
    """A retention from seconds (a number, or a number written as text) or ISO 8601 (P7D).

    Raises:
        ValueError: It is no duration, or not longer than nothing; the message says which.
    """
    if isinstance(value, str):
        # Pydantic reads a number as seconds, but not the same number written as text, as
        # flags and environment variables are.
        with contextlib.suppress(ValueError):
            value = float(value)
    try:
        retention = _DURATION.validate_python(value)
    except ValidationError:
        raise ValueError("must be seconds, or ISO 8601 such as P7D or PT10M") from None
    if retention <= timedelta(0):
        raise ValueError("must be longer than nothing, such as 604800 (seconds) or P7D")
    return retention


class Group(StrEnum):
    """Which commands a setting belongs to; each command lists the groups it takes."""

    TEMPORAL = "Temporal connection"
    TLS = "Temporal TLS and authentication"
    SERVICES = "stand-in services (as a client)"
    SERVICES_SERVER = "stand-in services (serving)"
    DATA = "data and logs"
    RETENTION = "retention of what ended sagas leave in the data folder"
    OBSERVABILITY = "metrics and tracing"
    CODEC = "payload encryption"
    CODEC_SERVER = "codec server (for the Web UI)"
    DEMO = "embedded demo stack"
    DEPLOYMENT = "worker deployment (versioning)"
    API = "Order API (HTTP)"


def setting(default: Any, help_text: str, group: Group, *aliases: str) -> Any:
    """A settings field with its help text, group and any older flag names."""
    return Field(
        default,
        description=help_text,
        json_schema_extra={"group": group.value, "flags": list(aliases)},
    )


class Settings(BaseSettings):
    """Every setting of every process (each command takes the groups it needs)."""

    model_config = SettingsConfigDict(
        # Empty variables count as unset, as `VAR= command` meant before.
        env_ignore_empty=True,
        extra="ignore",
        frozen=True,
    )

    # Temporal connection
    temporal_address: str = setting(
        DEFAULT_TEMPORAL_ADDRESS, "Temporal frontend host:port", Group.TEMPORAL, "--address"
    )
    temporal_namespace: str = setting(
        DEFAULT_NAMESPACE, "Temporal namespace", Group.TEMPORAL, "--namespace"
    )
    task_queue: str = setting(DEFAULT_TASK_QUEUE, "task queue of the workers", Group.TEMPORAL)
    temporal_ui_url: str = setting(
        DEFAULT_UI_URL, "Temporal Web UI, for links", Group.TEMPORAL, "--ui-url"
    )
    temporal_config_file: Path | None = setting(
        None, "Temporal client config file (TOML) read beneath these settings", Group.TEMPORAL
    )
    temporal_profile: str | None = setting(
        None, "profile of the Temporal config file [default: default]", Group.TEMPORAL
    )

    # Worker deployment
    deployment_name: str = setting(
        DEFAULT_DEPLOYMENT_NAME, "Worker Deployment the workers are versions of", Group.DEPLOYMENT
    )
    build_label: str | None = setting(
        None,
        "release name put before the build id, which is derived from the saga's code; "
        "set it to deploy the same code as a new version",
        Group.DEPLOYMENT,
    )

    # TLS and authentication
    temporal_tls: bool | None = setting(
        None,
        "TLS to Temporal [default: on if a TLS file or API key is given]",
        Group.TLS,
    )
    temporal_tls_server_ca_cert_path: Path | None = setting(
        None, "CA certificate (PEM) the server's certificate must chain to", Group.TLS
    )
    temporal_tls_client_cert_path: Path | None = setting(
        None, "client certificate (PEM), for mTLS", Group.TLS
    )
    temporal_tls_client_key_path: Path | None = setting(
        None, "client private key (PEM), for mTLS", Group.TLS
    )
    temporal_tls_server_name: str | None = setting(
        None, "server name the certificate must carry, if not the address's host", Group.TLS
    )
    temporal_api_key: SecretStr | None = setting(
        None, "API key (sent as a bearer token; implies TLS)", Group.TLS
    )

    # The stand-in services, as their clients see them
    services_url: str = setting(
        DEFAULT_SERVICES_URL, "base URL of the stand-in services", Group.SERVICES
    )
    service_url_overrides: str = setting(
        "",
        "services not at SERVICES_URL/<name>, as name=url pairs separated by commas "
        "(e.g. payment=https://pay.example/v1)",
        Group.SERVICES,
    )

    # The stand-in services, serving
    services_host: str = setting(
        "127.0.0.1", "interface the services listen on", Group.SERVICES_SERVER, "--host"
    )
    services_port: int = setting(
        DEFAULT_SERVICES_PORT,
        "port the services listen on",
        Group.SERVICES_SERVER,
        "--port",
    )

    # Data and logs
    data_dir: Path = setting(Path("data"), "folder of databases, keys and logs", Group.DATA)
    log_format: Literal["auto", "console", "json"] = setting(
        "auto", "log lines: console, json, or auto (console in a terminal)", Group.DATA
    )
    log_level: Literal["debug", "info", "warning", "error"] = setting(
        "info", "lowest level logged", Group.DATA
    )

    # Retention
    data_retention: timedelta = setting(
        DEFAULT_DATA_RETENTION,
        "how long the event log, the monitoring records, the customers' messages and the "
        "stand-in services keep what an ended saga left: seconds, or ISO 8601 (P7D, PT10M)",
        Group.RETENTION,
    )

    # Metrics and tracing
    event_bus: str | None = setting(
        None,
        "where saga events go: sqlite:///PATH or redis://HOST:PORT/DB?stream=NAME "
        "[default: sqlite:///DATA_DIR/events.db]",
        Group.OBSERVABILITY,
    )
    metrics_address: str | None = setting(
        None, "host:port to serve Prometheus metrics on [default: none]", Group.OBSERVABILITY
    )
    otel_exporter_otlp_endpoint: str | None = setting(
        None, "OTLP endpoint traces are sent to [default: none]", Group.OBSERVABILITY
    )

    # Payload encryption
    codec_key_file: Path | None = setting(
        None,
        "keyring file: one KEY_ID:BASE64_KEY per line (32-byte AES keys), newest first",
        Group.CODEC,
    )
    codec_keys: SecretStr | None = setting(
        None, "keyring as KEY_ID:BASE64_KEY,... (added to CODEC_KEY_FILE's keys)", Group.CODEC
    )
    codec_key_id: str | None = setting(
        None, "key that encrypts new payloads [default: the first key]", Group.CODEC
    )
    codec_encrypt: bool | None = setting(
        None, "encrypt payloads [default: on if a key is configured]", Group.CODEC
    )

    # Codec server
    codec_server_host: str = setting(
        "127.0.0.1", "interface the codec server listens on", Group.CODEC_SERVER
    )
    codec_server_port: int = setting(
        DEFAULT_CODEC_SERVER_PORT, "port the codec server listens on", Group.CODEC_SERVER
    )
    codec_server_token: SecretStr | None = setting(
        None, "bearer token a caller of the codec server must present", Group.CODEC_SERVER
    )
    codec_server_cors_origins: str = setting(
        DEFAULT_UI_URL,
        "comma-separated Web UI origins allowed to call the codec server",
        Group.CODEC_SERVER,
    )

    # The Order API
    api_host: str = setting("127.0.0.1", "interface the Order API listens on", Group.API)
    api_port: int = setting(DEFAULT_API_PORT, "port the Order API listens on", Group.API)
    api_shop_token: SecretStr | None = setting(
        None, "bearer token of the shop's front end: places, reads, withdraws orders", Group.API
    )
    api_operator_token: SecretStr | None = setting(
        None,
        "bearer token of operators: reads and lists orders, resolves compensations",
        Group.API,
    )

    # The embedded demo stack
    temporal_port: int = setting(7233, "dev server frontend port", Group.DEMO)
    ui_port: int = setting(8233, "dev server Web UI port", Group.DEMO)

    @field_validator(
        "services_port", "codec_server_port", "api_port", "temporal_port", "ui_port", mode="after"
    )
    @classmethod
    def _is_port(cls, port: int) -> int:
        if not 1 <= port <= 65535:
            raise ValueError("must be a TCP port, 1 to 65535")
        return port

    @field_validator(
        "temporal_config_file",
        "temporal_tls_server_ca_cert_path",
        "temporal_tls_client_cert_path",
        "temporal_tls_client_key_path",
        "codec_key_file",
        mode="after",
    )
    @classmethod
    def _is_file(cls, path: Path | None) -> Path | None:
        if path is not None and not path.is_file():
            raise ValueError(f"no such file: {path}")
        return path

    @field_validator("data_retention", mode="before")
    @classmethod
    def _retention(cls, value: Any) -> timedelta:
        return as_retention(value)

    @field_validator(
        "temporal_address",
        "metrics_address",
        "codec_server_host",
        "services_host",
        "api_host",
        mode="after",
    )
    @classmethod
    def _not_blank(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("must not be blank")
        return value

    @model_validator(mode="after")
    def _client_cert_with_key(self) -> Settings:
        if (self.temporal_tls_client_cert_path is None) != (
            self.temporal_tls_client_key_path is None
        ):
            raise ValueError(
                "TEMPORAL_TLS_CLIENT_CERT_PATH and TEMPORAL_TLS_CLIENT_KEY_PATH "
                "(--temporal-tls-client-cert-path, --temporal-tls-client-key-path) go together"
            )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Flags (passed as arguments), the environment, the settings file, Temporal's profile."""
        settings_file = DotEnvSettingsSource(settings_cls, env_file=env_file())
        return init_settings, env_settings, settings_file, TemporalProfileSource(settings_cls)

    @field_validator("service_url_overrides")
    @classmethod
    def _known_services(cls, overrides: str) -> str:
        _parse_overrides(overrides)
        return overrides

    @property
    def service_urls(self) -> ServiceUrls:
        """Where each service is: `services_url`/<name>, unless overridden."""
        base = ServiceUrls.from_base(self.services_url)
        return ServiceUrls(base.urls | _parse_overrides(self.service_url_overrides))

    @property
    def event_bus_url(self) -> str:
        """The event bus: `event_bus`, or the SQLite log in the data folder."""
        return self.event_bus or event_log_url(self.data_dir)

    @property
    def logging_level(self) -> int:
        """`log_level` as the `logging` module's number."""
        return int(getattr(logging, self.log_level.upper()))

    @property
    def log_json(self) -> bool | None:
        """JSON lines (True), console lines (False), or None to pick by the terminal."""
        return None if self.log_format == "auto" else self.log_format == "json"

    @property
    def cors_origins(self) -> list[str]:
        """The Web UI origins allowed to call the codec server."""
        return [
            o.strip().rstrip("/") for o in self.codec_server_cors_origins.split(",") if o.strip()
        ]


class TemporalProfileSource(PydanticBaseSettingsSource):
    """The lowest source: Temporal's client config file, the profile chosen by flag or env."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        """Unused: `__call__` reads the whole profile at once."""
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        """The profile's values, by setting name."""
        state = self.current_state
        return profile_settings(state.get("temporal_config_file"), state.get("temporal_profile"))


def flag_of(name: str) -> str:
    """The flag of a setting."""
    return "--" + name.replace("_", "-")


def env_of(name: str) -> str:
    """The environment variable of a setting."""
    return name.upper()


def _parse_overrides(overrides: str) -> dict[str, str]:
    urls: dict[str, str] = {}
    for pair in filter(None, (part.strip() for part in overrides.split(","))):
        name, _, url = pair.partition("=")
        name, url = name.strip(), url.strip()
        if name not in SERVICES or not url:
            raise ValueError(f"{pair!r} must be name=url with name one of {', '.join(SERVICES)}")
        urls[name] = url
    return urls


@dataclass(frozen=True)
class ServiceUrls:
    """The base URL of each service the saga calls (`workflows.order_steps.SERVICES`), by name."""

    urls: dict[str, str]

    def __getitem__(self, service: str) -> str:
        """The base URL of `service`."""
        return self.urls[service]

    @classmethod
    def from_base(cls, base_url: str) -> ServiceUrls:
        """Every service hosted by one `order-saga services` process at `base_url`."""
        base = base_url.rstrip("/")
        return cls({name: f"{base}/{name}" for name in SERVICES})
