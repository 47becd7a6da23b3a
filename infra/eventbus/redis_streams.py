"""The broker event bus: a Redis stream, with one consumer group per consumer.

Publishing runs one Lua script per event, which sets a dedupe key for the event id (SET NX,
with a TTL) and appends the event to the stream only if that key was new, atomically: two
workers publishing the same event at once append it once. A batch's scripts go in one
pipeline, which Redis runs in order.

Each consumer name is a consumer group (created at the start of the stream the first time it
is used) with one member of the same name. A handled event is acknowledged (XACK) after its
handler returns; on start a consumer first re-reads its pending entries (delivered to it but
never acknowledged, because it stopped mid-way), so nothing is lost and at most the event it
was handling is handled twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis.asyncio as redis
from redis.exceptions import RedisError, ResponseError

from domain.events import SagaEvent
from infra.eventbus.base import EventBusUnreachable, EventHandler

DEFAULT_STREAM = "saga-events"

#: How long an event id is remembered for deduplication. A publisher retrying later than this
#: would append a second copy, which consumers still recognise by its `event_id`.
DEFAULT_DEDUPE_TTL = timedelta(days=7)

#: Entries read per XREADGROUP call.
BATCH_SIZE = 100

#: How long one XREADGROUP waits for new entries while the consumer is caught up.
BLOCK_MS = 1_000

#: KEYS[1]: the event's dedupe key, KEYS[2]: the stream; ARGV[1]: TTL in seconds, then the
#: entry's field/value pairs.
PUBLISH_ONCE = """
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
    return redis.call('XADD', KEYS[2], '*', unpack(ARGV, 2))
end
return false
"""

#: An entry as XREADGROUP returns it: id and fields (None if the entry was deleted meanwhile).
Entry = tuple[str, dict[str, str] | None]


class RedisStreamsBus:
    """An `EventBus` on a Redis stream with consumer groups.

    Each consumer name must be consumed by one process at a time; different names are
    independent.
    """

    def __init__(
        self,
        client: redis.Redis,
        *,
        stream: str = DEFAULT_STREAM,
        dedupe_ttl: timedelta = DEFAULT_DEDUPE_TTL,
    ) -> None:
        """Use `client` (made with `decode_responses=True`) for the stream `stream`.

        Args:
            client: The Redis client; closed by `close()`.
            stream: The stream's key.
            dedupe_ttl: How long an event id is remembered.
        """
        self.client = client
        self.stream = stream
        self.dedupe_ttl = dedupe_ttl
        self._publish_once = client.register_script(PUBLISH_ONCE)

    @classmethod
    def from_url(cls, url: str) -> RedisStreamsBus:
        """The bus at `redis://host:port/db?stream=NAME&dedupe_ttl_s=SECONDS`.

        `stream` and `dedupe_ttl_s` are optional; every other part of the URL (password, TLS
        with `rediss://`, redis-py's own query options) goes to the Redis client.
        """
        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query))
        stream = query.pop("stream", DEFAULT_STREAM)
        ttl_s = query.pop("dedupe_ttl_s", None)
        client_url = urlunsplit(parts._replace(query=urlencode(query)))
        return cls(
            redis.Redis.from_url(client_url, decode_responses=True),
            stream=stream,
            dedupe_ttl=timedelta(seconds=int(ttl_s)) if ttl_s else DEFAULT_DEDUPE_TTL,
        )

    async def publish(self, events: Sequence[SagaEvent]) -> None:
        """Append `events`, in order, skipping any whose id was published before."""
        if not events:
            return
        ttl_s = int(self.dedupe_ttl.total_seconds())
        async with self.client.pipeline(transaction=False) as pipe:
            for event in events:
                fields = ("type", event.type, "order_id", event.order_id)
                await self._publish_once(
                    keys=[self._dedupe_key(event.event_id), self.stream],
                    args=[ttl_s, *fields, "event", event.model_dump_json()],
                    client=pipe,
                )
            await pipe.execute()

    async def consume(self, consumer: str, handler: EventHandler, *, stop_when_idle: bool) -> int:
        """Feed `consumer` its pending entries, then new ones, acknowledging each after use.

        If `handler` raises (or the task is cancelled while it runs), the entry stays pending
        and is the first one handled when the consumer starts again.
        """
        await self._ensure_group(consumer)
        handled = 0
        # Pending entries first: id "0" lists what was delivered to this consumer and never
        # acknowledged, from the oldest; paging on by the last id seen.
        last_id = "0"
        while entries := await self._read(consumer, last_id, block_ms=None):
            handled += await self._handle(consumer, handler, entries)
            last_id = entries[-1][0]
        while True:
            entries = await self._read(consumer, ">", None if stop_when_idle else BLOCK_MS)
            if entries:
                handled += await self._handle(consumer, handler, entries)
            elif stop_when_idle:
                return handled

    async def prune(self, before: datetime) -> int:
        """Trim the entries added before `before` that every consumer group has handled.

        A stream's entry ids begin with the millisecond it was added, so the time is an id.
        Each group holds back the trim at its oldest pending entry, or else just after the
        last entry delivered to it.
        """
        keep_from = (int(before.timestamp() * 1000), 0)
        try:
            groups = await self.client.xinfo_groups(self.stream)
        except ResponseError:  # no stream yet: nothing to trim
            return 0
        if not groups:  # no consumer has started: keep everything for the first one
            return 0
        for group in groups:
            pending = await self.client.xpending(self.stream, group["name"])
            if pending["pending"]:
                keep_from = min(keep_from, _entry_id(pending["min"]))
            else:
                milliseconds, sequence = _entry_id(group["last-delivered-id"])
                keep_from = min(keep_from, (milliseconds, sequence + 1))
        minid = "-".join(map(str, keep_from))
        return int(await self.client.xtrim(self.stream, minid=minid, approximate=False))

    async def check(self) -> None:
        """Ping Redis.

        Raises:
            EventBusUnreachable: It does not answer.
        """
        try:
            await self.client.ping()
        except RedisError as err:
            where = self.client.connection_pool.connection_kwargs
            raise EventBusUnreachable(
                f"cannot reach the Redis event bus at {where.get('host')}:{where.get('port')} "
                f"({err}): start Redis or set EVENT_BUS"
            ) from None

    async def close(self) -> None:
        """Close the Redis client's connections."""
        await self.client.aclose()

    def _dedupe_key(self, event_id: str) -> str:
        # The hash tag puts the dedupe key in the stream's slot, so that on a Redis Cluster the
        # script's two keys live on one node, as a script requires.
        return f"{{{self.stream}}}:published:{event_id}"

    async def _ensure_group(self, consumer: str) -> None:
        try:
            await self.client.xgroup_create(self.stream, consumer, id="0", mkstream=True)
        except ResponseError as err:
            if "BUSYGROUP" not in str(err):  # the group exists: carry on where it is
                raise

    async def _read(self, consumer: str, last_id: str, block_ms: int | None) -> list[Entry]:
        reply: Any = await self.client.xreadgroup(
            consumer, consumer, {self.stream: last_id}, count=BATCH_SIZE, block=block_ms
        )
        # RESP2 reply: [[stream, [(id, fields), ...]]], or None/[] when there is nothing.
        return [(entry_id, fields) for _, entries in reply or [] for entry_id, fields in entries]

    async def _handle(self, consumer: str, handler: EventHandler, entries: list[Entry]) -> int:
        handled = 0
        for entry_id, fields in entries:
            if fields:  # an entry trimmed away while pending has no fields: nothing to handle
                await handler(SagaEvent.model_validate_json(fields["event"]))
                handled += 1
            await self.client.xack(self.stream, consumer, entry_id)
        return handled


def _entry_id(entry_id: str) -> tuple[int, int]:
    milliseconds, sequence = entry_id.split("-")
    return int(milliseconds), int(sequence)
