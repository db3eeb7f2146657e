"""One publisher of lifecycle events: a per-function sequence number, a bounded stream, live state.

Every event a worker's engine emits goes through ``Publisher``: batched on a
thread of its own, and written by one Lua script per batch, which gives each
event the next number of its function's counter (one counter, so a burst that
spans workers still orders), appends it to the function's stream (trimmed to
``STREAM_KEEP`` entries) and keeps the registry of live environments in step
(see ``placement.py``). Readers (the WebSocket consumer) read the stream from
the last number they saw, so a page that reconnects gets what it missed,
exactly once, or a snapshot when that is older than what is kept.
"""

from __future__ import annotations

import collections
import json
import logging
import threading
import time

from . import rds

log = logging.getLogger(__name__)

# Events kept per function for a page that reconnects: above one call's worst flood (10,000
# output lines and its platform lines), so a page keeping up never misses one. A function's
# stream and counter expire a day after its last event.
STREAM_KEEP = 12_000
STREAM_TTL_S = 86_400
PREVIEW_BYTES = 1024  # of a response, in invoke.end; the API gives it in full
MAX_BATCH = 200
QUEUE_BOUND = 100_000  # events waiting to be written; past it a worker is far behind Redis

# KEYS: none (single Redis; keys are built from the events). ARGV[1]: worker, ARGV[2]: keep,
# ARGV[3]: expiry (s), ARGV[4..]: events (JSON). Returns the last sequence number given.
PUBLISH = """
local worker, keep, ttl = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local last = 0
local touched = {}
for i = 4, #ARGV do
  local event = cjson.decode(ARGV[i])
  local fid, key, env = event['function_id'], event['function'], event['environment']
  last = redis.call('INCR', 'll:seq:' .. fid)
  touched[fid] = true
  event['seq'] = last
  redis.call('XADD', 'll:ev:' .. fid, 'MAXLEN', '~', keep, last .. '-0', 'e', cjson.encode(event))
  local t = event['type']
  local entry = worker .. '|' .. env
  if t == 'init.start' or t == 'invoke.start' or t == 'thaw' or t == 'freeze' then
    local state = (t == 'init.start' and event['phase'] == 'init') and 'initializing'
      or (t == 'freeze' and 'frozen') or 'busy'
    local current = redis.call('HGET', 'll:envs:' .. fid, env)
    local since, init = event['time'], event['initialization_type']
    if current then
      current = cjson.decode(current)
      since, init = current['since'], init or current['init']
    end
    redis.call('HSET', 'll:envs:' .. fid, env, cjson.encode({
      state = state, since = since, changed = event['time'], worker = worker, revision = event['revision'],
      key = key, init = init}))
    redis.call('HSET', 'll:live:' .. key, env, worker)
    redis.call('SADD', 'll:wenvs:' .. worker, fid .. '|' .. key .. '|' .. env)
    if t == 'freeze' then
      redis.call('LREM', 'll:idle:' .. key, 0, entry)
      redis.call('LPUSH', 'll:idle:' .. key, entry)
    elseif t == 'thaw' then
      redis.call('LREM', 'll:idle:' .. key, 0, entry)
    end
  elseif t == 'shutdown' then
    redis.call('HDEL', 'll:envs:' .. fid, env)
    redis.call('HDEL', 'll:live:' .. key, env)
    redis.call('LREM', 'll:idle:' .. key, 0, entry)
    redis.call('SREM', 'll:wenvs:' .. worker, fid .. '|' .. key .. '|' .. env)
    if event['reason'] ~= 'discarded' then  -- an always-cold call's end says nothing of the next call
      redis.call('SET', 'll:gone:' .. key, cjson.encode({reason = event['reason'], idle_s = event['idle_s']}),
        'EX', 86400)
    end
  end
end
for fid in pairs(touched) do
  redis.call('EXPIRE', 'll:seq:' .. fid, ttl)
  redis.call('EXPIRE', 'll:ev:' .. fid, ttl)
end
return last
"""


def trim(event: dict) -> dict:
    """Bounded for the stream: a response is previewed, never carried whole (up to 6 MB)."""
    if event.get("type") == "invoke.end":
        payload = event.get("payload") or ""
        data = payload.encode("utf-8", "replace")
        if len(data) > PREVIEW_BYTES:
            event["payload"] = data[:PREVIEW_BYTES].decode("utf-8", "ignore")
            event["payload_truncated"] = True
        event["payload_bytes"] = len(data)
    return event


# Written at once by the thread that emits them, with everything queued before: a call's start;
# the freeze right after its end (so its invoke.end, and the environment's place among the idle
# ones that warm calls are placed on, go out together, at once); a shutdown. The rest waits up
# to LINGER_S, so a call's events go in a few batches rather than a round trip each.
URGENT = frozenset({"invoke.start", "freeze", "shutdown"})
LINGER_S = 0.02


class Publisher:
    """Writes a worker's events to Redis, in order, in batches.

    Events queue up and a thread of the publisher's own writes them in batches,
    at most ``LINGER_S`` after they came; but the ``URGENT`` ones are written at
    once by the thread that emits them, with everything queued before (one
    writer at a time, so the order holds): no thread hand-off between a call's
    end and the page that waits for it.
    """

    def __init__(self, worker: str) -> None:
        self.worker = worker
        self._pending: collections.deque[str] = collections.deque()
        self._cond = threading.Condition()
        self._writing = threading.Lock()
        self._script = rds.client().register_script(PUBLISH)
        self.dropped = 0
        self._thread = threading.Thread(target=self._run, name="lambdalab-publisher", daemon=True)
        self._thread.start()

    def submit(self, event: dict) -> None:
        """Queue one event (with ``function_id`` and ``revision`` set)."""
        data = json.dumps(trim(event), separators=(",", ":"))
        with self._cond:
            if len(self._pending) >= QUEUE_BOUND:
                self.dropped += 1
                log.error(
                    "event queue full: %s event of %s dropped", event.get("type"), event.get("function_id")
                )
                return
            self._pending.append(data)
            if event.get("type") not in URGENT:
                if len(self._pending) == 1:
                    self._cond.notify()
                return
        self.flush()

    def flush(self) -> None:
        """Write everything submitted so far, in this thread."""
        with self._writing:
            while True:
                with self._cond:
                    batch = [self._pending.popleft() for _ in range(min(MAX_BATCH, len(self._pending)))]
                if not batch:
                    return
                self._write(batch)

    def _write(self, batch: list[str]) -> None:
        for attempt in range(20):
            try:
                self._script(args=[self.worker, STREAM_KEEP, STREAM_TTL_S, *batch])
                return
            except Exception:  # noqa: BLE001 - Redis away: wait for it, in order
                log.exception("publishing %d events failed (attempt %d)", len(batch), attempt + 1)
                time.sleep(min(2.0, 0.05 * 2**attempt))
        log.error("%d events lost: Redis did not take them", len(batch))

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending:
                    self._cond.wait()
            time.sleep(LINGER_S)  # gather what else comes: a batch, not a round trip per event
            self.flush()


def last_seq(function_id: str) -> int:
    value = rds.client().get(rds.key("seq", function_id))
    return int(value) if value else 0


def environments(function_id: str) -> list[dict]:
    """The function's live environments, as the publisher keeps them: id, state, since, worker."""
    raw = rds.client().hgetall(rds.key("envs", function_id))
    envs = []
    for env_id, value in raw.items():
        data = json.loads(value)
        data["id"] = env_id.decode()
        envs.append(data)
    return sorted(envs, key=lambda e: e.get("since") or 0)
