"""The event bus: a durable, ordered log of saga events with independent consumers.

Two implementations behind one interface, chosen by URL:

- `sqlite:///path/events.db`: the embedded default, a log in SQLite with an offset per consumer
  (`sqlite:///data/events.db` is relative to the working folder, `sqlite:////var/x.db`
  absolute, as in SQLAlchemy); see `infra.eventbus.sqlite_log`;
- `redis://host:port/db?stream=saga-events` (or `rediss://`): Redis Streams with a consumer
  group per consumer; see `infra.eventbus.redis_streams`.

Both append a batch in its order and keep an already-published event where it first went. So an
order's events stay in order on the bus as long as no batch leaves out an earlier event of its
order that is not yet published: the saga hands an event to every activity until one that
published it has completed, so retries and zombie attempts publish overlapping batches, never
one that skips ahead.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from infra.eventbus.base import EventBus, EventHandler
from infra.eventbus.sqlite_log import SqliteEventLog

__all__ = ["EventBus", "EventHandler", "UnknownEventBusError", "open_event_bus"]


class UnknownEventBusError(ValueError):
    """The URL names no event bus this project has."""


def open_event_bus(url: str) -> EventBus:
    """The event bus at `url` (see the module docstring for the schemes).

    Raises:
        UnknownEventBusError: The scheme is not `sqlite`, `redis` or `rediss`.
        ValueError: A SQLite URL names a host or no file.
    """
    scheme = urlsplit(url).scheme
    if scheme == "sqlite":
        return SqliteEventLog.from_url(url)
    if scheme in ("redis", "rediss"):
        # Imported here so that a worker on the embedded log never loads the Redis client.
        from infra.eventbus.redis_streams import RedisStreamsBus

        return RedisStreamsBus.from_url(url)
    raise UnknownEventBusError(
        f"unknown event bus {url!r}: use sqlite:///path/to/events.db or "
        "redis://host:port/db?stream=NAME"
    )
