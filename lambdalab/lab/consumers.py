"""The WebSocket a page follows its function on: ``/ws/functions/<id>/events?after=<seq>``.

Events come from the function's stream in Redis (``stream.py``), read from
the last sequence number the page saw: a reconnect gets exactly what it
missed, in order, or a snapshot (invocations and live environments) when
that is older than what is kept. Reading the stream (a blocking XREAD on a
connection of its own) rather than the channel layer: the layer is
at-most-once and drops to a full channel silently, the stream neither.
"""

from __future__ import annotations

import asyncio
import json
import logging

import redis.asyncio as aioredis
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from . import placement, rds, selectors, services, stream

log = logging.getLogger(__name__)

BLOCK_MS = 10_000  # a ping after this long without events: the page knows the socket is alive
BATCH = 500
READ_TIMEOUT_S = 30  # above BLOCK_MS: a blocking read is not cut by the client's own timeout


class FunctionEventsConsumer(AsyncWebsocketConsumer):
    async def connect(self):
        self.function_id = str(self.scope["url_route"]["kwargs"]["function_id"])
        session = self.scope.get("session")
        function = await database_sync_to_async(selectors.function_for)(
            user=self.scope["user"],
            session_key=session.session_key if session else None,
            function_id=self.function_id,
        )
        if function is None:
            await self.close(code=4404)
            return
        self.function = function
        try:
            after = int(_query(self.scope).get("after", "0"))
        except ValueError:
            after = 0
        await self.accept()
        self.redis = aioredis.from_url(
            settings.REDIS_URL, socket_timeout=READ_TIMEOUT_S, client_name=f"ll-ws-{self.function_id}"
        )
        self.pump = asyncio.create_task(self._pump(after))

    async def disconnect(self, code):
        pump = getattr(self, "pump", None)
        if pump is not None:
            pump.cancel()
            try:
                await pump
            except (asyncio.CancelledError, Exception):  # noqa: BLE001 - closing anyway
                pass
        client = getattr(self, "redis", None)
        if client is not None:
            await client.aclose()

    async def receive(self, text_data=None, bytes_data=None):
        """The page may invoke over the socket too (the API's invoke, without an HTTP round trip):
        ``{"action": "invoke", "ref": <any>, "mode", "count", "event"}`` → ``{"type": "invoked",
        "ref", "batch", "request_ids", "revision"}`` or ``{"type": "error", "ref", "error": {...}}``."""
        try:
            message = json.loads(text_data or "")
        except ValueError:
            return
        if not isinstance(message, dict) or message.get("action") != "invoke":
            return
        ref = message.get("ref")
        try:
            asked = await sync_to_async(self._invoke, thread_sensitive=False)(message)
        except services.LabError as exc:
            error = {"type": exc.code, "field": exc.field, "message": exc.message, "status": exc.status}
            await self.send(text_data=json.dumps({"type": "error", "ref": ref, "error": error}))
            return
        await self.send(
            text_data=json.dumps(
                {
                    "type": "invoked",
                    "ref": ref,
                    "batch": asked.batch,
                    "request_ids": asked.request_ids,
                    "revision": asked.revision,
                }
            )
        )

    def _invoke(self, message: dict) -> services.Requested:
        """Ask for the calls with the function as this socket last read it (a warm call then
        touches no table on its way to a worker), reading it again if it changed since."""
        session = self.scope.get("session")
        session_key = session.session_key if session else None
        user = self.scope["user"]
        owner = services.owner_tag(user.pk if user.is_authenticated else None, session_key)
        client = self.scope.get("client") or ("unknown", 0)
        for _ in range(3):
            try:
                return services.invocation_request(
                    function=self.function,
                    mode=message.get("mode", "once"),
                    count=message.get("count", 1),
                    event=message.get("event"),
                    owner_tag=owner,
                    address=client[0],
                    checked=False,
                )
            except placement.Stale:
                function = selectors.function_for(
                    user=user, session_key=session_key, function_id=self.function_id
                )
                if function is None:  # deleted, or no longer theirs
                    raise services.LabError("Function not found", code="ResourceNotFoundException") from None
                self.function = function
                services.note_latest(function)
        raise services.LabError("The function keeps changing: try again", code="ResourceConflictException")

    async def _pump(self, after: int) -> None:
        try:
            await self._follow(after)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - Redis away: the page reconnects with ?after= and misses nothing
            log.exception("event stream of %s failed", self.function_id)
            await self.close(code=4500)

    async def _follow(self, after: int) -> None:
        key = rds.key("ev", self.function_id)
        oldest = await self.redis.xrange(key, count=1)
        if oldest and after < int(oldest[0][0].split(b"-")[0]) - 1 and after > 0:
            after = await self._snapshot()  # what it missed is no longer kept
        elif not oldest and after > 0 and after < await _last_seq(self.redis, self.function_id):
            after = await self._snapshot()
        last = after
        while True:
            found = await self.redis.xread({key: f"{last}-0"}, count=BATCH, block=BLOCK_MS)
            if not found:
                await self.send(text_data=json.dumps({"type": "ping"}))
                continue
            entries = found[0][1]
            if int(entries[0][0].split(b"-")[0]) != last + 1 and last > 0:
                # fell behind a trim of the stream: what it missed is gone, so a snapshot instead
                last = await self._snapshot()
                continue
            last = int(entries[-1][0].split(b"-")[0])
            events = [json.loads(fields[b"e"]) for _, fields in entries]
            await self.send(text_data=json.dumps({"type": "events", "events": events}))

    async def _snapshot(self) -> int:
        seq = await _last_seq(self.redis, self.function_id)
        invocations = await database_sync_to_async(selectors.invocations_of)(
            function=self.function, limit=200
        )
        environments = await database_sync_to_async(stream.environments)(self.function_id)
        await self.send(
            text_data=json.dumps(
                {"type": "snapshot", "seq": seq, "invocations": invocations, "environments": environments}
            )
        )
        return seq


async def _last_seq(client, function_id: str) -> int:
    value = await client.get(rds.key("seq", function_id))
    return int(value) if value else 0


def _query(scope) -> dict:
    from urllib.parse import parse_qs

    return {k: v[-1] for k, v in parse_qs(scope.get("query_string", b"").decode()).items()}
