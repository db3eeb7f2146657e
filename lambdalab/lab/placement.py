"""Placement of calls across workers, in Redis: warm calls reach the worker holding the environment.

Each worker process owns one ``EnvironmentPool`` and a queue of its own
(``lab.w.<worker>``). The publisher (``stream.py``) keeps, from the engine's
own events, a list of the idle environments of each version (most recently
frozen first) and of the live ones. ``claim`` pops an idle environment whose
worker is alive, atomically, and the call goes to that worker's queue;
otherwise the call goes to the shared queue, where any worker starts a new
environment, and ``claim`` says why the call is cold (as far as every worker
together knows: the environments of that version all busy, the last one
evicted or lost, a new revision, or the first call).

Workers heartbeat (``ll:w:<worker>``, a few seconds' expiry); a worker that
stops is cleared by whichever worker's janitor notices first: its
environments leave the registry, and the calls it had in flight are marked
failed, with their ``invoke.end``, so nothing waits on it.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from . import rds

log = logging.getLogger(__name__)

SHARED_QUEUE = "lab"
HEARTBEAT_S = 2.0
HEARTBEAT_TTL_S = 8  # a worker silent this long is gone
OWN_QUEUE_EXPIRES_S = 30  # a call routed to a worker that is not there by then is dropped by Celery

# KEYS: idle list, live hash, gone, last key of the function. ARGV[1]: the version's key.
CLAIM = """
local key = ARGV[1]
while true do
  local entry = redis.call('LPOP', KEYS[1])
  if not entry then break end
  local bar = string.find(entry, '|', 1, true)
  if redis.call('EXISTS', 'll:w:' .. string.sub(entry, 1, bar - 1)) == 1 then
    redis.call('SET', KEYS[4], key, 'EX', 86400)
    return {'warm', entry}
  end
end
local last = redis.call('GET', KEYS[4])
redis.call('SET', KEYS[4], key, 'EX', 86400)
local live = redis.call('HLEN', KEYS[2])
if live > 0 then return {'cold', 'busy', tostring(live)} end
local gone = redis.call('GET', KEYS[3])
if gone then return {'cold', 'gone', gone} end
if last and last ~= key then return {'cold', 'new_revision', ''} end
return {'cold', 'first_call', ''}
"""


@dataclass(frozen=True)
class Placement:
    queue: str
    environment: str | None  # the idle environment claimed, for a warm call
    reason: str | None  # why it is cold (InitReason.code), None if warm
    reason_text: str | None


def worker_queue(worker: str) -> str:
    return f"lab.w.{worker}"


def claim(function_id: str, key: str) -> Placement:
    """Claim an idle environment of version ``key`` for one call, or say why there is none."""
    r = rds.client()
    script = r.register_script(CLAIM)
    keys = [rds.key("idle", key), rds.key("live", key), rds.key("gone", key), rds.key("lastkey", function_id)]
    answer = [x.decode() for x in script(keys=keys, args=[key])]
    if answer[0] == "warm":
        worker, _, env = answer[1].partition("|")
        return Placement(worker_queue(worker), env, None, None)
    reason, detail = answer[1], answer[2]
    if reason == "busy":
        n = int(detail)
        words = "its only warm environment was busy" if n == 1 else f"all {n} warm environments were busy"
        return Placement(SHARED_QUEUE, None, "busy", words)
    if reason == "gone":
        gone = json.loads(detail)
        why, idle_s = gone.get("reason"), gone.get("idle_s") or 0
        code, words = {
            "idle": ("evicted", f"the last environment was evicted after {idle_s:.0f} s idle"),
            "capacity": ("capacity", "the last environment was shut down to make room"),
            "failure": ("lost", "the last environment was lost"),
            "request": ("shut_down", "the environments were shut down on request"),
            "close": ("shut_down", "the worker holding the environments stopped"),
        }.get(why, ("shut_down", "the environments were shut down"))
        return Placement(SHARED_QUEUE, None, code, words)
    if reason == "new_revision":
        return Placement(SHARED_QUEUE, None, "new_revision", "the code or a setting changed: a new revision")
    return Placement(SHARED_QUEUE, None, "first_call", "the first call")


# -- workers ---------------------------------------------------------------------------


def heartbeat(worker: str) -> None:
    r = rds.client()
    with r.pipeline() as pipe:
        pipe.set(rds.key("w", worker), "1", ex=HEARTBEAT_TTL_S)
        pipe.sadd(rds.key("workers"), worker)
        pipe.execute()


def worker_alive(worker: str) -> bool:
    return bool(rds.client().exists(rds.key("w", worker)))


def start_call(worker: str, request_id: str, function_id: str) -> None:
    rds.client().hset(rds.key("inflight", worker), request_id, function_id)


def end_call(worker: str, request_id: str) -> None:
    rds.client().hdel(rds.key("inflight", worker), request_id)


def dead_workers() -> list[str]:
    r = rds.client()
    workers = [w.decode() for w in r.smembers(rds.key("workers"))]
    return [w for w in workers if not r.exists(rds.key("w", w))]


def take_dead_worker(worker: str) -> tuple[list[tuple[str, str, str]], dict[str, str]] | None:
    """Clear a dead worker's entries, once (whoever gets the lock): its environments
    ``(function_id, key, env)`` and its calls in flight ``{request_id: function_id}``."""
    r = rds.client()
    if not r.set(rds.key("reaping", worker), "1", nx=True, ex=60):
        return None
    envs = [tuple(x.decode().split("|", 2)) for x in r.smembers(rds.key("wenvs", worker))]
    inflight = {k.decode(): v.decode() for k, v in r.hgetall(rds.key("inflight", worker)).items()}
    with r.pipeline() as pipe:
        for function_id, key, env in envs:
            pipe.hdel(rds.key("envs", function_id), env)
            pipe.hdel(rds.key("live", key), env)
            pipe.lrem(rds.key("idle", key), 0, f"{worker}|{env}")
            pipe.set(rds.key("gone", key), json.dumps({"reason": "failure", "idle_s": 0}), ex=86400)
        pipe.delete(rds.key("wenvs", worker), rds.key("inflight", worker))
        pipe.srem(rds.key("workers"), worker)
        pipe.execute()
    return envs, inflight
