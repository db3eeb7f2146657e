"""Power tuning: the handler run at several memory sizes, a few calls each, and what a call costs
at each size (as AWS Lambda Power Tuning does it, on the lab's own execution environments).

The API admits a tuning (``tuning_request``): its calls count against the same calls per
minute and live environments as invocations, per owner and per address, in one Redis script;
one tuning runs per function at a time, and a few per owner per hour. One worker runs it
(``tuning_run``): for each size, a spec of the function's revision with that memory and a
revision of its own (``<n>@<size>MB``), so its environments never serve, nor take, the
function's own warm calls; ``count`` calls in a row, each written as an invocation row (mode
``tune``) as any call is; then that environment is shut down. Progress and the result are JSON
in Redis (``ll:tune:<id>``, kept a day) and ``tune.progress`` / ``tune.end`` events on the
function's stream. A tuning whose worker went quiet for longer than a call can last reads as
failed (``tuning_state``).
"""

from __future__ import annotations

import dataclasses
import json
import math
import statistics
import time
import uuid

from django.conf import settings

from sandbox import PoolError
from sandbox.result import InitReason, InvokeResult

from . import placement, rds, services
from .models import Function, FunctionVersion, Invocation

DEFAULT_SIZES = (128, 256, 512, 1024, 1769, 3008)
DEFAULT_COUNT = 5
MAX_COUNT = 10
MAX_SIZES = 8
PER_HOUR = 10  # tunings an owner may start in an hour
TTL_S = 86_400
QUEUE_WAIT_S = 120  # a tuning no worker took by then has failed (and its task expires)
INIT_LIMIT_S = 10  # Lambda's bound on an on-demand Init
SLACK_S = 30  # beyond a call's own bound: thaw, freeze, the row's write, a busy host
ERROR_CHARS = 300

# Prices (us-east-1, x86, the first 6 billion GB-s of a month), docs: lambda-model.md section 8.
REQUEST_USD = 0.20 / 1_000_000
GB_S_USD = 0.0000166667
PRICES = {"request_usd": REQUEST_USD, "gb_s_usd": GB_S_USD, "region": "us-east-1", "arch": "x86_64"}


def gb_seconds(memory_mb: int, ms: float) -> float:
    return memory_mb / 1024 * ms / 1000


def call_cost_usd(memory_mb: int, billed_ms: float) -> float:
    """One call: the request, and its billed duration at this memory (which, for a cold call of
    an on-demand zip function, includes its Init since Aug 2025)."""
    return REQUEST_USD + gb_seconds(memory_mb, billed_ms) * GB_S_USD


# -- asking for one ---------------------------------------------------------------------------

# ARGV: function id, tuning id, owner tag, address, calls, the minute, rate limit, live limit,
# the hour, tunings per hour, the lock's expiry (s), the state (JSON). The rate and live checks
# are placement.ADMIT's, as for invocations (a tuning holds one environment at a time). Returns
# {'ok'}, {'running', <tuning id>}, {'hourly', n}, or {'throttled', 'rate'|'live', n}.
ADMIT_TUNING = (
    placement.ADMIT
    + """
local fid, tid, owner, address = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local calls, minute = tonumber(ARGV[5]), ARGV[6]
local rate_limit, live_limit = tonumber(ARGV[7]), tonumber(ARGV[8])
local hourly = 'll:tune:h:' .. owner .. ':' .. ARGV[9]
local running = redis.call('GET', 'll:tune:fn:' .. fid)
if running then return {'running', running} end
local started = tonumber(redis.call('GET', hourly) or '0')
if started >= tonumber(ARGV[10]) then return {'hourly', tostring(started)} end
local refused = ADMIT(fid, owner, address, calls, 1, minute, rate_limit, live_limit)
if refused then return refused end
redis.call('INCR', hourly)
redis.call('EXPIRE', hourly, 3700)
redis.call('SET', 'll:tune:fn:' .. fid, tid, 'EX', tonumber(ARGV[11]))
redis.call('SET', 'll:tune:' .. tid, ARGV[12], 'EX', 86400)
redis.call('SET', 'll:tune:last:' .. fid, tid, 'EX', 86400)
return {'ok'}
"""
)


def max_memory_mb() -> int:
    """The largest size a tuning may ask for: Lambda's 10,240 MB, or a worker's memory budget."""
    from .worker import memory_budget_mb

    return min(services.LIMITS["memory_mb"][1], memory_budget_mb())


def _clean_sizes(sizes) -> list[int]:
    low, high = services.LIMITS["memory_mb"][0], max_memory_mb()
    if not isinstance(sizes, list) or not sizes:
        raise services.LabError("Sizes must be a list of memory sizes in MB", field="sizes")
    if len(sizes) > MAX_SIZES:
        raise services.LabError(f"At most {MAX_SIZES} memory sizes", field="sizes")
    for size in sizes:
        if isinstance(size, bool) or not isinstance(size, int):
            raise services.LabError("Each size must be a whole number of MB", field="sizes")
        if not low <= size <= high:
            raise services.LabError(f"Each size must be between {low:,} and {high:,} MB", field="sizes")
    if len(set(sizes)) != len(sizes):
        raise services.LabError("Each size once", field="sizes")
    return sorted(sizes)


def _clean_count(count) -> int:
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_COUNT:
        raise services.LabError(f"Calls per size must be a whole number from 1 to {MAX_COUNT}", field="count")
    return count


def _key(tune_id: str) -> str:
    return rds.key("tune", tune_id)


def _lock_ttl_s(timeout_s: int) -> int:
    """How long a running tuning may go without progress: one call's bound, and some."""
    return timeout_s + INIT_LIMIT_S + SLACK_S


def tuning_request(
    *,
    function: Function,
    sizes=DEFAULT_SIZES,
    count=DEFAULT_COUNT,
    event=None,
    owner_tag: str,
    address: str,
) -> dict:
    """Admit a tuning and hand it to a worker on the shared queue; its state (queued)."""
    sizes = _clean_sizes(list(sizes) if isinstance(sizes, tuple) else sizes)
    count = _clean_count(count)
    text = services.event_text(event) if event is not None else function.event
    if function.reserved_concurrency == 0:  # one call at a time fits any other reservation
        raise services.Throttled(
            "Reserved concurrency is 0: every call of this function is throttled, a tuning would run none",
            field="reserved_concurrency",
            code="TooManyRequestsException",
        )
    version = function.latest
    now = _now_ms()
    tune_id = str(uuid.uuid4())
    state = {
        "id": tune_id,
        "function_id": str(function.pk),
        "version": version.pk,
        "revision": version.number,
        "timeout_s": version.timeout_s,
        "sizes": sizes,
        "count": count,
        "status": "queued",
        "error": None,
        "worker": None,
        "created": now,
        "updated": now,
        "ended": None,
        "done": 0,
        "total": len(sizes) * count,
        "results": [_empty_result(size) for size in sizes],
        "fastest": None,
        "cheapest": None,
        "balanced": None,
        "prices": PRICES,
    }
    answer = [
        x.decode()
        for x in rds.client().register_script(ADMIT_TUNING)(
            args=[
                str(function.pk),
                tune_id,
                owner_tag,
                address,
                len(sizes) * count,
                int(time.time() // 60),
                settings.LAB_INVOCATIONS_PER_MINUTE,
                settings.LAB_MAX_LIVE_ENVIRONMENTS,
                int(time.time() // 3600),
                PER_HOUR,
                QUEUE_WAIT_S + SLACK_S,
                json.dumps(state),
            ]
        )
    ]
    if answer[0] == "running":
        raise _Conflict(answer[1])
    if answer[0] == "hourly":
        raise services.Throttled(
            f"At most {PER_HOUR} power tunings an hour: try again later", code="TooManyRequestsException"
        )
    if answer[0] == "throttled":
        if answer[1] == "rate":
            message = (
                f"Rate exceeded: a tuning of {len(sizes) * count} calls is over the "
                f"{settings.LAB_INVOCATIONS_PER_MINUTE} invocations per minute ({answer[2]} used); "
                "try again in a minute"
            )
        else:
            message = (
                f"You have {answer[2]} live execution environments (at most "
                f"{settings.LAB_MAX_LIVE_ENVIRONMENTS}); shut some down or wait for them to be evicted"
            )
        raise services.Throttled(message, code="TooManyRequestsException")
    from .tasks import tune

    tune.apply_async((tune_id, text), queue=placement.SHARED_QUEUE, expires=QUEUE_WAIT_S)
    return state


class _Conflict(services.LabError):
    status = 409

    def __init__(self, running: str) -> None:
        super().__init__(
            "A power tuning of this function is running already: wait for it to end",
            code="ResourceConflictException",
        )
        self.running = running


def _empty_result(size: int) -> dict:
    return {
        "memory_mb": size,
        "status": "pending",  # pending | running | ok | error
        "error_type": None,
        "error": None,
        "calls": [],
        "p50_ms": None,
        "mean_ms": None,
        "billed_mean_ms": None,
        "cost_per_call_usd": None,
        "init_ms": None,
        "init_billed_ms": None,
        "init_cost_usd": None,
        "total_cost_usd": None,
        "max_memory_used_mb": None,
    }


# -- reading one ------------------------------------------------------------------------------


def tuning_state(*, function: Function, tune_id: str) -> dict | None:
    """The tuning as it stands, None if there is none of this function; a tuning that has not
    moved for longer than a call can last (its worker died, or none took it) reads as failed."""
    try:
        uuid.UUID(str(tune_id))
    except ValueError:
        return None
    raw = rds.client().get(_key(tune_id))
    if raw is None:
        return None
    state = json.loads(raw)
    if state.get("function_id") != str(function.pk):
        return None
    return _judged(state)


def tuning_latest(*, function: Function) -> dict | None:
    """The function's last tuning (for the page to show again after a reload), if kept."""
    tune_id = rds.client().get(rds.key("tune", "last", function.pk))
    return tuning_state(function=function, tune_id=tune_id.decode()) if tune_id else None


def _judged(state: dict) -> dict:
    quiet_s = (_now_ms() - state["updated"]) / 1000
    if state["status"] == "queued" and quiet_s > QUEUE_WAIT_S:
        state["status"] = "failed"
        state["error"] = f"No worker took the tuning within {QUEUE_WAIT_S} s: the lab is busy, try again"
    elif state["status"] == "running" and quiet_s > _lock_ttl_s(state["timeout_s"]):
        state["status"] = "failed"
        state["error"] = (
            f"The worker running the tuning ({state.get('worker')}) went quiet for {quiet_s:.0f} s: "
            "it stopped; the sizes it finished are kept"
        )
    return state


# -- running one, on a worker -----------------------------------------------------------------


def tuning_run(*, tune_id: str, event: str) -> None:
    """On a worker: each size in turn, ``count`` calls in a row, then its environment shut down."""
    from .worker import runtime

    rt = runtime()
    raw = rds.client().get(_key(tune_id))
    if raw is None:
        return
    state = json.loads(raw)
    if state["status"] != "queued":
        return
    state.update(status="running", worker=rt.worker)
    run = _Run(rt, state)
    run.save()
    try:
        version = FunctionVersion.objects.select_related("function").filter(pk=state["version"]).first()
        if version is None:
            raise _Stop("The function was deleted")
        for index, size in enumerate(state["sizes"]):
            run.size(version, index, size, event.encode())
        state["status"] = "done"
    except _Stop as stop:
        state.update(status="failed", error=str(stop)[:ERROR_CHARS])
    except Exception as exc:  # noqa: BLE001 - a tuning that breaks ends, said so, never hangs
        state.update(status="failed", error=f"{type(exc).__name__}: {exc}"[:ERROR_CHARS])
        raise
    finally:
        _verdict(state)
        state["ended"] = _now_ms()
        run.save(final=True)


class _Stop(Exception):
    """The tuning cannot go on (its function is gone, or the worker is stopping)."""


class _Run:
    """One tuning's bookkeeping on its worker: its state in Redis and its events."""

    def __init__(self, rt, state: dict) -> None:
        self.rt = rt
        self.state = state

    def size(self, version: FunctionVersion, index: int, size: int, event: bytes) -> None:
        state, rt = self.state, self.rt
        function = version.function
        result = state["results"][index]
        result["status"] = "running"
        self.save(size=size)
        spec = _spec(version, function.idle_timeout_s, size)
        rt.register_spec(spec, function_id=str(function.pk), revision=f"{version.number}@{size}MB")
        reason = InitReason("power_tuning", f"power tuning: a new environment of {size} MB")
        environments: set[str] = set()
        try:
            for n in range(state["count"]):
                request_id = str(uuid.uuid4())
                row = Invocation(
                    request_id=request_id,
                    function=function,
                    version=version,
                    batch=state["id"],
                    mode="tune",
                    position=index * state["count"] + n + 1,
                    worker=rt.worker,
                )
                placement.start_call(rt.worker, request_id, str(function.pk), version.pk)
                try:
                    called = rt.pool.invoke(spec, event, request_id=request_id, cold_reason=reason)
                except PoolError as exc:  # no room here for this size: said so, and on to the next
                    services._refuse(row, str(exc), rt)
                    result["calls"].append(_refused_call(str(exc)))
                    state["done"] += state["count"] - n
                    if "closed" in str(exc):
                        raise _Stop("The worker is stopping") from None
                    break
                finally:
                    placement.end_call(rt.worker, request_id, str(function.pk))
                services._record(row, called)
                environments.add(called.environment_id)
                result["calls"].append(_call(called))
                state["done"] += 1
                self.save(size=size)
        finally:
            for env_id in environments:
                _shut_down(rt.pool, env_id)
            _summarise(result)

    def save(self, *, size: int | None = None, final: bool = False) -> None:
        """The state to Redis (the running lock's expiry moved on) and an event to the stream."""
        state = self.state
        state["updated"] = _now_ms()
        r = rds.client()
        fid = state["function_id"]
        with r.pipeline() as pipe:
            pipe.set(_key(state["id"]), json.dumps(state), ex=TTL_S)
            if final:
                # the lock is this tuning's only while it holds it
                pipe.eval(
                    "if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end",
                    1,
                    rds.key("tune", "fn", fid),
                    state["id"],
                )
            else:
                pipe.set(rds.key("tune", "fn", fid), state["id"], ex=_lock_ttl_s(state["timeout_s"]))
            pipe.execute()
        event = {
            "type": "tune.end" if final else "tune.progress",
            "time": state["updated"],
            "function": "",
            "function_name": "",
            "environment": "",
            "request_id": None,
            "function_id": fid,
            "revision": "",
            "tune": state["id"],
            "status": state["status"],
            "done": state["done"],
            "total": state["total"],
            "size": size,
            "error": state["error"],
        }
        self.rt.publisher.submit(event)
        if final:
            self.rt.publisher.flush()


def _spec(version: FunctionVersion, idle_timeout_s: float, size: int):
    """The revision at another memory size, a revision of its own: never the function's own warm
    environments, nor theirs for its calls."""
    base = version.spec(idle_timeout_s=idle_timeout_s)
    return dataclasses.replace(base, memory_mb=size, revision=f"{version.number}@{size}MB")


def _shut_down(pool, env_id: str) -> None:
    """Shut the size's environment down (it is idle once its call returned; a reset after a
    timeout or a crash may hold it a moment longer)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if pool.shutdown_environment(env_id, reason="request"):
            return
        if not any(env["id"] == env_id for env in pool.environments()):
            return  # gone already (lost)
        time.sleep(0.05)  # busy being reset: it is idle again in a moment


def _call(result: InvokeResult) -> dict:
    return {
        "request_id": result.request_id,
        "status": result.status,
        "error_type": result.error_type,
        "cold": result.cold,
        "duration_ms": round(result.duration_ms, 2),
        "billed_duration_ms": result.billed_duration_ms,
        "init_duration_ms": None if result.init_duration_ms is None else round(result.init_duration_ms, 2),
        "max_memory_used_mb": result.max_memory_used_mb,
    }


def _refused_call(why: str) -> dict:
    return {
        "request_id": None,
        "status": "refused",
        "error_type": "TooManyRequestsException",
        "error": why[:ERROR_CHARS],
        "cold": None,
        "duration_ms": None,
        "billed_duration_ms": None,
        "init_duration_ms": None,
        "max_memory_used_mb": None,
    }


def _summarise(result: dict) -> None:
    """A size's figures from its calls: the duration of the warm calls (of every successful one
    if none was warm), what such a call costs, and the cold call's Init, billed on its own."""
    size, calls = result["memory_mb"], result["calls"]
    ran = [c for c in calls if c["billed_duration_ms"] is not None]
    result["total_cost_usd"] = sum(call_cost_usd(size, c["billed_duration_ms"]) for c in ran) if ran else None
    used = [c["max_memory_used_mb"] for c in ran if c["max_memory_used_mb"] is not None]
    result["max_memory_used_mb"] = max(used) if used else None
    failed = [c for c in calls if c["status"] != "success"]
    if failed or not calls:
        first = failed[0] if failed else {"error_type": "Incomplete", "status": "error"}
        result["status"] = "error"
        result["error_type"] = first.get("error_type") or first["status"]
        result["error"] = first.get("error") or f"{len(failed)} of {len(calls)} calls failed"
    else:
        result["status"] = "ok"
    ok = [c for c in calls if c["status"] == "success"]
    measured = [c for c in ok if not c["cold"]] or ok
    if measured:
        durations = [c["duration_ms"] for c in measured]
        # a cold call's billed duration holds its Init: a steady call bills its own duration only
        billed = [
            c["billed_duration_ms"] if not c["cold"] else max(1, math.ceil(c["duration_ms"]))
            for c in measured
        ]
        result["p50_ms"] = round(statistics.median(durations), 2)
        result["mean_ms"] = round(statistics.fmean(durations), 2)
        result["billed_mean_ms"] = round(statistics.fmean(billed), 2)
        result["cost_per_call_usd"] = call_cost_usd(size, result["billed_mean_ms"])
    cold = next((c for c in calls if c["cold"] and c["init_duration_ms"]), None)
    if cold is not None:
        result["init_ms"] = cold["init_duration_ms"]
        result["init_billed_ms"] = math.ceil(cold["init_duration_ms"])
        result["init_cost_usd"] = gb_seconds(size, result["init_billed_ms"]) * GB_S_USD


BALANCE_WEIGHT = 0.5  # Power Tuning's "balanced" strategy: cost and speed, each by its worst


def _verdict(state: dict) -> None:
    """The fastest, the cheapest and the best balance of the sizes whose calls all succeeded."""
    ok = [r for r in state["results"] if r["status"] == "ok" and r["cost_per_call_usd"] is not None]
    if not ok:
        return
    state["fastest"] = min(ok, key=lambda r: (r["p50_ms"], r["memory_mb"]))["memory_mb"]
    state["cheapest"] = min(ok, key=lambda r: (r["cost_per_call_usd"], r["memory_mb"]))["memory_mb"]
    worst_cost = max(r["cost_per_call_usd"] for r in ok)
    worst_ms = max(r["p50_ms"] for r in ok) or 1.0
    state["balanced"] = min(
        ok,
        key=lambda r: (
            BALANCE_WEIGHT * r["cost_per_call_usd"] / worst_cost
            + (1 - BALANCE_WEIGHT) * r["p50_ms"] / worst_ms,
            r["memory_mb"],
        ),
    )["memory_mb"]


def _now_ms() -> int:
    return int(time.time() * 1000)
