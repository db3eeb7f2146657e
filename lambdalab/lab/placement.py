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

import contextlib
import json
import logging
import time
import uuid
from dataclasses import dataclass

from sandbox.pool import ALWAYS_COLD

from . import rds

log = logging.getLogger(__name__)

SHARED_QUEUE = "lab"
HEARTBEAT_S = 2.0
HEARTBEAT_TTL_S = 8  # a worker silent this long is gone
OWN_QUEUE_EXPIRES_S = 30  # a call routed to a worker that is not there by then is dropped by Celery

# Admission and placement of one request, in one round trip. ARGV: function id, version key,
# owner tag, address, calls, new environments at most, the minute, rate limit, live limit,
# placements to make, the token of the function as the caller read it ('' to skip the check),
# the revision's id, the reserved concurrency ('' for none), '1' if every call must be cold (the
# always-cold mode), then the request ids (kept pending until a worker writes their rows). Returns {'stale'} (the
# function changed since the caller read it), {'throttled', 'rate'|'live', n}, or
# {'placed', p1, p2, ...} with p = 'warm|<worker>|<env>' or 'cold|<reason>|<detail>'.
REQUEST = """
local fid, key, owner, address = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local calls, new, minute = tonumber(ARGV[5]), tonumber(ARGV[6]), ARGV[7]
local rate_limit, live_limit, placements = tonumber(ARGV[8]), tonumber(ARGV[9]), tonumber(ARGV[10])
if ARGV[11] ~= '' and redis.call('GET', 'll:fnver:' .. fid) ~= ARGV[11] then return {'stale'} end
local refused = ADMIT(fid, owner, address, calls, new, minute, rate_limit, live_limit)
if refused then return refused end
for i = 15, #ARGV do
  redis.call('SET', 'll:pending:' .. ARGV[i], fid, 'EX', 3600)
end
local reserved = tonumber(ARGV[13])  -- nil: no reserved concurrency
local running = 'll:running:' .. fid
local out = {'placed'}
local ids = #ARGV - 14
local fresh = ARGV[14] == '1'
local per = ids / placements  -- one placement per call (a burst), or one for them all (a series)
for i = 1, placements do
  local first, last = (i - 1) * per + 1, i * per
  if reserved and redis.call('HLEN', running) >= reserved then
    -- over the function's reserved concurrency: throttled, never run (Lambda's 429)
    out[#out + 1] = 'throttled|'
    local now = redis.call('TIME')
    for j = first, last do
      local rid = ARGV[14 + j]
      redis.call('DEL', 'll:pending:' .. rid)
      local seq = redis.call('INCR', 'll:seq:' .. fid)
      redis.call('XADD', 'll:ev:' .. fid, 'MAXLEN', '~', 12000, seq .. '-0', 'e', cjson.encode({
        type = 'invoke.end', seq = seq, time = now[1] * 1000 + math.floor(now[2] / 1000),
        function_id = fid, request_id = rid, environment = '', status = 'throttled',
        error_type = 'TooManyRequestsException', reason = 'ReservedFunctionConcurrentInvocationLimitExceeded',
        payload = cjson.encode({Type = 'User', message = 'Rate Exceeded.',
                                Reason = 'ReservedFunctionConcurrentInvocationLimitExceeded'}),
        duration_ms = 0, billed_duration_ms = 0, report = ''}))
    end
  else
    if reserved then redis.call('HSET', running, ARGV[14 + last], 1) end  -- a series holds one slot
    local placed = fresh and 'cold|always_cold|' or CLAIM_ONE(fid, key)
    out[#out + 1] = placed
    if string.sub(placed, 1, 5) == 'warm|' then
      -- in flight on that worker from now: if it dies before it even takes the task, the call ends
      local worker = string.match(placed, '^warm|([^|]+)|')
      for j = first, last do
        redis.call('HSET', 'll:inflight:' .. worker, ARGV[14 + j], fid .. '|' .. ARGV[12])
      end
    end
  end
end
return out
"""

CLAIM_ONE = """
local function CLAIM_ONE(fid, key)
  local idle = 'll:idle:' .. key
  while true do
    local entry = redis.call('LPOP', idle)
    if not entry then break end
    local bar = string.find(entry, '|', 1, true)
    if redis.call('EXISTS', 'll:w:' .. string.sub(entry, 1, bar - 1)) == 1 then
      redis.call('SET', 'll:lastkey:' .. fid, key, 'EX', 86400)
      return 'warm|' .. entry
    end
  end
  local last = redis.call('GET', 'll:lastkey:' .. fid)
  redis.call('SET', 'll:lastkey:' .. fid, key, 'EX', 86400)
  local live = redis.call('HLEN', 'll:live:' .. key)
  if live > 0 then return 'cold|busy|' .. live end
  local gone = redis.call('GET', 'll:gone:' .. key)
  if gone then return 'cold|gone|' .. gone end
  if last and last ~= key then return 'cold|new_revision|' end
  return 'cold|first_call|'
end
"""
# Admission, for every way calls are asked for (invocations, a power tuning): calls this minute and
# live environments, per owner and per address. Returns nil (admitted, and counted) or
# {'throttled', 'rate'|'live', n}.
ADMIT = """
local function ADMIT(fid, owner, address, calls, new, minute, rate_limit, live_limit)
  for _, tag in ipairs({'o:' .. owner, 'a:' .. address}) do
    local used = tonumber(redis.call('GET', 'll:rate:' .. tag .. ':' .. minute) or '0')
    if used + calls > rate_limit then return {'throttled', 'rate', tostring(used)} end
    redis.call('SADD', 'll:fns:' .. tag, fid)
    redis.call('EXPIRE', 'll:fns:' .. tag, 86400)
    local live = 0
    for _, member in ipairs(redis.call('SMEMBERS', 'll:fns:' .. tag)) do
      live = live + redis.call('HLEN', 'll:envs:' .. member)
    end
    if live + new > live_limit then return {'throttled', 'live', tostring(live)} end
  end
  for _, tag in ipairs({'o:' .. owner, 'a:' .. address}) do
    redis.call('INCRBY', 'll:rate:' .. tag .. ':' .. minute, calls)
    redis.call('EXPIRE', 'll:rate:' .. tag .. ':' .. minute, 120)
  end
  return nil
end
"""
REQUEST = ADMIT + CLAIM_ONE + REQUEST


@dataclass(frozen=True)
class Placement:
    queue: str
    environment: str | None  # the idle environment claimed, for a warm call
    reason: str | None  # why it is cold (InitReason.code), None if warm
    reason_text: str | None


def worker_queue(worker: str) -> str:
    return f"lab.w.{worker}"


class Stale(Exception):
    """The function changed since the caller read it: read it again."""


class Refused(Exception):
    """Over a bound: ``what`` is ``rate`` (calls this minute) or ``live`` (environments), ``used`` how many."""

    def __init__(self, what: str, used: int) -> None:
        super().__init__(what)
        self.what = what
        self.used = used


def request(
    *,
    function_id: str,
    key: str,
    owner: str,
    address: str,
    request_ids: list[str],
    version_id: int = 0,
    reserved: int | None = None,
    always_cold: bool = False,
    new_environments: int,
    placements: int,
    rate_limit: int,
    live_limit: int,
    token: str = "",
) -> list[Placement]:
    """Admit a request (calls per minute, live environments, per owner and per address) and place
    its calls (one placement per task), atomically, in one round trip. Raises ``Refused``, or
    ``Stale`` when ``token`` is given and the function has changed since."""
    r = rds.client()
    script = r.register_script(REQUEST)
    minute = int(time.time() // 60)
    answer = [
        x.decode()
        for x in script(
            args=[
                function_id,
                key,
                owner,
                address,
                len(request_ids),
                new_environments,
                minute,
                rate_limit,
                live_limit,
                placements,
                token,
                version_id,
                "" if reserved is None else reserved,
                "1" if always_cold else "",
                *request_ids,
            ]
        )
    ]
    if answer[0] == "stale":
        raise Stale()
    if answer[0] == "throttled":
        raise Refused(answer[1], int(answer[2]))
    return [_placement(p) for p in answer[1:]]


THROTTLED = "throttled"


def _placement(answer: str) -> Placement:
    kind, _, rest = answer.partition("|")
    if kind == THROTTLED:
        return Placement(THROTTLED, None, None, None)
    if kind == "warm":
        worker, _, env = rest.partition("|")
        return Placement(worker_queue(worker), env, None, None)
    reason, _, detail = rest.partition("|")
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
    if reason == "always_cold":
        return Placement(SHARED_QUEUE, None, "always_cold", ALWAYS_COLD.text)
    if reason == "new_revision":
        return Placement(SHARED_QUEUE, None, "new_revision", "the code or a setting changed: a new revision")
    return Placement(SHARED_QUEUE, None, "first_call", "the first call")


def pending(request_id: str) -> str | None:
    """The function of a call asked for and not yet written by a worker, else None."""
    value = rds.client().get(rds.key("pending", request_id))
    return value.decode() if value else None


def written(request_id: str) -> None:
    rds.client().delete(rds.key("pending", request_id))


# -- workers ---------------------------------------------------------------------------


def heartbeat(worker: str) -> None:
    r = rds.client()
    with r.pipeline() as pipe:
        pipe.set(rds.key("w", worker), "1", ex=HEARTBEAT_TTL_S)
        pipe.sadd(rds.key("workers"), worker)
        pipe.execute()


def start_call(worker: str, request_id: str, function_id: str, version_id: int) -> None:
    rds.client().hset(rds.key("inflight", worker), request_id, f"{function_id}|{version_id}")


def end_call(worker: str, request_id: str, function_id: str) -> None:
    with rds.client().pipeline() as pipe:
        pipe.hdel(rds.key("inflight", worker), request_id)
        pipe.hdel(rds.key("running", function_id), request_id)  # its reserved concurrency slot
        pipe.execute()


def dead_workers() -> list[str]:
    r = rds.client()
    workers = [w.decode() for w in r.smembers(rds.key("workers"))]
    return [w for w in workers if not r.exists(rds.key("w", w))]


def take_dead_worker(worker: str) -> tuple[list[tuple[str, str, str]], dict[str, tuple[str, str]]] | None:
    """Clear a dead worker's entries, once (whoever gets the lock): its environments
    ``(function_id, key, env)`` and its calls in flight ``{request_id: (function_id, version_id)}``."""
    r = rds.client()
    if not r.set(rds.key("reaping", worker), "1", nx=True, ex=60):
        return None
    envs = [tuple(x.decode().split("|", 2)) for x in r.smembers(rds.key("wenvs", worker))]
    inflight = {
        k.decode(): tuple(v.decode().split("|", 1)) for k, v in r.hgetall(rds.key("inflight", worker)).items()
    }
    with r.pipeline() as pipe:
        for function_id, key, env in envs:
            pipe.hdel(rds.key("envs", function_id), env)
            pipe.hdel(rds.key("live", key), env)
            pipe.lrem(rds.key("idle", key), 0, f"{worker}|{env}")
            pipe.set(rds.key("gone", key), json.dumps({"reason": "failure", "idle_s": 0}), ex=86400)
        for request_id, (function_id, _) in inflight.items():
            pipe.hdel(rds.key("running", function_id), request_id)
        pipe.delete(rds.key("wenvs", worker), rds.key("inflight", worker))
        pipe.srem(rds.key("workers"), worker)
        pipe.execute()
    return envs, inflight


# -- provisioned concurrency ---------------------------------------------------------------


def provisioned_holder(function_id: str) -> str | None:
    """The live worker holding the function's provisioned environments, if any."""
    r = rds.client()
    worker = r.get(rds.key("pc", function_id))
    if worker is None:
        return None
    worker = worker.decode()
    return worker if r.exists(rds.key("w", worker)) else None


def set_provisioned_holder(function_id: str, worker: str | None) -> None:
    r = rds.client()
    old = r.get(rds.key("pc", function_id))
    with r.pipeline() as pipe:
        if old is not None:
            pipe.srem(rds.key("pcw", old.decode()), function_id)
        if worker is None:
            pipe.delete(rds.key("pc", function_id))
        else:
            pipe.set(rds.key("pc", function_id), worker, ex=7 * 86400)
            pipe.sadd(rds.key("pcw", worker), function_id)
        pipe.execute()


def provisioned_by(worker: str) -> list[str]:
    """The functions whose provisioned environments a (dead) worker held: to provision again."""
    r = rds.client()
    functions = [f.decode() for f in r.smembers(rds.key("pcw", worker))]
    r.delete(rds.key("pcw", worker))
    return functions


@contextlib.contextmanager
def provisioning(function_id: str, hold_s: int):
    """One reconciliation of a function's provisioned environments at a time: yields whether this
    caller holds the lock (it expires after ``hold_s`` should its holder die)."""
    r = rds.client()
    token = uuid.uuid4().hex
    mine = bool(r.set(rds.key("pclock", function_id), token, nx=True, ex=hold_s))
    try:
        yield mine
    finally:
        if mine and r.get(rds.key("pclock", function_id)) == token.encode():
            r.delete(rds.key("pclock", function_id))
