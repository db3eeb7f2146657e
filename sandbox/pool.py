"""EnvironmentPool: the environments of one process, one invocation at a time each."""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from . import cgroup, inspector, jail
from .environment import SHUTDOWN_GRACE_S, TEARDOWN_WAIT_S, Environment, EnvironmentLost, Isolation, State
from .isolation import disabled_from_env, probe
from .result import InitReason, InvokeResult
from .scratch import ScratchDisk, ScratchFullError
from .service import MAX_FUNCTIONS, LabService
from .spec import FunctionSpec

log = logging.getLogger(__name__)
DEFAULT_MAX_ENVIRONMENTS = 256
DEFAULT_STEM_CELLS = 2
STEM_CELL_TMP_MB = 512  # Lambda's default /tmp: what nearly every function asks for
MAX_EVENT_BYTES = 6 * 1024 * 1024
MAX_REMEMBERED = 4096  # versions whose last environment's end the pool remembers
CLOSE_WAIT_S = 30.0  # how long close() lets calls in flight finish before it tears them down
PROVISIONED_IDLE_S = 3600.0  # a provisioned environment unused this long is shut down all the same
ALWAYS_COLD = InitReason(
    "always_cold", "always-cold mode: a new environment for every call, as a local emulator"
)


class PoolError(Exception):
    """The pool cannot take the call (closed, or at capacity)."""


class PoolCapacityError(PoolError):
    """Every environment slot is in use; Lambda would answer 429 TooManyRequestsException."""


class EnvironmentNotFound(PoolError):
    """No live environment of this pool has that id."""


class EnvironmentBusy(PoolError):
    """The environment is not idle (an invocation, its Init or a control is running in it)."""


class EnvironmentPool:
    """Creates, reuses, freezes and evicts execution environments.

    ``invoke`` is thread-safe and blocks until the invocation's REPORT. A call
    takes the most recently used idle environment of the same function
    (warm), or starts a new one (cold). ``on_event`` receives every lifecycle
    event (see ``sandbox.events``), on the invoking thread except eviction's
    ``shutdown`` (the pool's janitor thread); it must be quick.

    ``stem_cells`` jails are kept built and waiting, agent running, for no
    function in particular (as Lambda keeps microVMs ready): a cold start
    with the default /tmp size takes one, links the code in and starts the
    runtime, skipping the ~25 ms of building a jail and starting Python.
    Its Init Duration then counts from there, as Lambda's does.

    ``service`` (on by default) gives every environment the lab service: a
    key-value store per function at ``/var/lab/kv.sock`` (``service.py``).
    """

    def __init__(
        self,
        on_event: Callable[[dict], Any] | None = None,
        *,
        max_environments: int = DEFAULT_MAX_ENVIRONMENTS,
        stem_cells: int = DEFAULT_STEM_CELLS,
        require: str = "partial",
        disable: Iterable[str] | None = None,
        max_tasks: int | None = None,
        memory_budget_mb: int | None = None,
        service: bool = True,
    ) -> None:
        if max_environments < 1:
            raise ValueError("max_environments must be at least 1")
        if not 0 <= stem_cells <= 64:
            raise ValueError("stem_cells must be between 0 and 64")
        self.on_event = on_event
        self.max_environments = max_environments
        # The sum of Memory Size over this pool's environments may not pass it (None: no budget):
        # a new one first shuts down idle ones, least recently used first, else the call is refused.
        self.memory_budget_mb = memory_budget_mb
        # what to act as if missing: the argument, else LAMBDALAB_DISABLE (see isolation.DISABLEABLE)
        self.isolation_report = probe(frozenset(disable) if disable is not None else disabled_from_env())
        if require == "strong" and self.isolation_report.level != "strong":
            raise PoolError(f"isolation below strong here: {self.isolation_report.summary()}")
        if self.isolation_report.blocking:
            raise PoolError(f"cannot build jails here: {self.isolation_report.blocking}")
        self._state_dir = jail.state_dir()
        self._python = jail.runtime_python()
        self._runtime_dir = jail.prepare_runtime(self._python, self._state_dir)
        self._runtime_version = jail.runtime_version(self._runtime_dir)
        jail.prune_state(self._state_dir, self._runtime_dir)
        controllers = self.isolation_report.cgroup_controllers
        if controllers:
            cgroup.clean_stale(controllers)
        self._isolation = Isolation(
            cgroup_controllers=controllers,
            seccomp_program=self.isolation_report.seccomp_program,
            pool_tag=cgroup.pool_tag(),
        )
        if "pids" in controllers:
            cgroup.cap_pool_tasks(self._isolation.pool_tag, max_tasks)
        self._scratch = ScratchDisk.shared(self._state_dir) if self.isolation_report.scratch else None
        if self.isolation_report.scratch and self._scratch is None:
            log.warning("no scratch disk after all: every /tmp is a tmpfs, counted as memory")
        self._task_root = jail.task_root(self._state_dir, self._isolation.pool_tag)
        self._service = (
            LabService(
                self._state_dir,
                self._isolation.pool_tag,
                self._emit,
                max_functions=max(MAX_FUNCTIONS, max_environments),
            )
            if service
            else None
        )
        self._spawner = jail.Spawner()
        self._uids = jail.UidAllocator.shared(self._state_dir)
        self._lock = threading.Lock()
        # One lock, a condition per kind of waiter, so that the hot path (a release)
        # wakes no thread that has nothing to do.
        self._changed = threading.Condition(self._lock)  # calls waiting for a slot; close()
        self._waiting_calls = 0
        self._grow_due = threading.Condition(self._lock)  # the stem-cell grower
        self._evict_due = threading.Condition(self._lock)  # the janitor
        self._janitor_wakes_at = 0.0
        self._idle: dict[str, list[Environment]] = {}
        self._all: dict[str, Environment] = {}
        self._starting = 0  # environments being built for a call, counted against the bound
        self._starting_mb = 0  # their Memory Size, counted against the memory budget
        self._gone: dict[str, tuple[str, float]] = {}  # key -> how its last environment ended
        self._revisions: dict[str, str] = {}  # function id -> the key of its latest revision seen
        self._stem_cells: list[Environment] = []
        self._stem_target = min(stem_cells, max_environments)
        self._growing = 0
        self._closed = False
        self._code_lock = threading.Lock()
        self._janitor = threading.Thread(target=self._evict_idle, name="lambdalab-janitor", daemon=True)
        self._janitor.start()
        self._grower = threading.Thread(
            target=self._grow_stem_cells, name="lambdalab-stem-cells", daemon=True
        )
        self._grower.start()

    # -- public -------------------------------------------------------------

    def __enter__(self) -> EnvironmentPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def invoke(
        self,
        spec: FunctionSpec,
        event: Any = None,
        *,
        request_id: str | None = None,
        client_context: str | None = None,
        prefer: str | None = None,
        cold_reason: InitReason | None = None,
        discard: bool = False,
    ) -> InvokeResult:
        """Run one invocation and return its result (never raises for the function's own failures).

        ``event`` is JSON-encoded, or sent as is if bytes; no event is ``{}``, as
        Lambda does for an empty payload. ``prefer`` names the idle environment to
        take if it still is (placement claimed it); ``cold_reason`` says why the call
        is cold if it turns out so, when the caller knows better than this pool (a
        placement across workers). The result's ``init_reason`` says why the call ran
        an Init: a cold start, or a re-init after a reset.

        ``discard``: the always-cold mode of a local emulator (serverless-offline's
        ``--reloadHandler``): the call gets a new environment, never frozen, shut down
        (``discarded``) right after it; no warm environment is taken or left behind.
        """
        if event is None:
            payload = b"{}"
        elif isinstance(event, (bytes, bytearray)):
            payload = bytes(event) or b"{}"
        else:
            payload = json.dumps(event).encode()
        if len(payload) > MAX_EVENT_BYTES:
            raise ValueError(f"event: {len(payload)} bytes is over the 6 MB request limit")
        request_id = request_id or str(uuid.uuid4())
        env, reason = self._acquire(spec, prefer, fresh=discard)
        if discard:
            reason = ALWAYS_COLD
        elif reason is not None and cold_reason is not None:
            reason = cold_reason
        headers = {"client_context": client_context} if client_context else {}
        try:
            # Never raises for what happens in the jail: a lost environment ends the call as a
            # Sandbox.Failure (with its invoke.end, END and REPORT) and is torn down.
            return env.invoke(
                bytes(payload), request_id=request_id, cold_reason=reason, headers=headers, freeze=not discard
            )
        finally:
            if discard:
                env.shutdown("discarded")
                self._forget(env)
            else:
                self._release(env)

    def provision(self, spec: FunctionSpec, n: int) -> list[str]:
        """Initialise ``n`` environments ahead of calls (provisioned concurrency); their ids."""
        if n < 1:
            raise ValueError("n must be at least 1")
        with self._lock:
            self._check_open()
            if self._count() + n > self.max_environments:
                raise PoolCapacityError(
                    f"cannot provision {n}: the pool holds at most {self.max_environments} environments"
                )
            victims = self._make_memory_room(spec.memory_mb * n)  # or PoolCapacityError
            self._starting += n
            self._starting_mb += spec.memory_mb * n
        for old in victims:
            old.shutdown("capacity")
            self._forget(old)
        code_dir = self._code_dir(spec)

        def one(_) -> Environment:
            env = self._new_environment(spec.tmp_mb)
            try:
                env.assign(spec, code_dir, "provisioned-concurrency")
                self._attach_service(env)
                env.initialize()
                env.freeze()
            except BaseException:
                env.destroy()
                self._detach_service(env)
                self._uids.release(env.uid)
                raise
            return env

        ready: list[Environment] = []
        error = None
        with ThreadPoolExecutor(min(n, 8)) as ex:
            for fut in [ex.submit(one, i) for i in range(n)]:
                try:
                    ready.append(fut.result())
                except Exception as exc:  # noqa: BLE001 - reported below
                    error = exc
        with self._lock:
            self._starting -= n
            self._starting_mb -= spec.memory_mb * n
            for env in ready:
                env.transition(State.IDLE)
                self._all[env.id] = env
                self._idle.setdefault(spec.key, []).append(env)
            self._changed.notify_all()
        if error is not None:
            raise PoolError(f"provisioning failed: {error}") from error
        return [env.id for env in ready]

    def environments(self) -> list[dict]:
        """A snapshot of every environment: id, function, state, counts."""
        with self._lock:
            return [
                {
                    "id": env.id,
                    "function": env.spec.key,
                    "function_name": env.spec.function_name,
                    "state": env.state.value,
                    "invocations": env.invocations,
                    "initialization_type": env.initialization_type,
                    "provisioned": env.provisioned,
                    "idle_s": round(time.monotonic() - env.last_used, 3),
                }
                for env in self._all.values()
            ]

    def service_stats(self, function_id: str) -> dict | None:
        """The lab service's counts for a function (``FunctionSpec.function_id``, else its key):
        connections opened and open, commands, keys; None if it has no store here."""
        return self._service.stats(function_id) if self._service is not None else None

    def shutdown_environment(self, environment_id: str, reason: str = "request") -> bool:
        """Shut one idle environment down; False if it is busy or unknown."""
        with self._lock:
            env = self._all.get(environment_id)
            if env is None or env.state != State.IDLE:
                return False
            self._take_idle(env)
        env.shutdown(reason)
        self._forget(env)
        return True

    def unprovision(self, environment_id: str) -> bool:
        """Provisioned no more (its function's provisioned concurrency went down, or moved to a
        new revision): shut down now if idle, else an ordinary environment that idles out after
        its call. Its initialization type stays what it was. False if unknown."""
        with self._lock:
            env = self._all.get(environment_id)
            if env is None:
                return False
            env.provisioned = False
        self.shutdown_environment(environment_id, reason="request")
        return True

    def reset_environment(self, environment_id: str) -> bool:
        """Kill an idle environment's runtime now, as a crash would: the next call re-initialises
        in it, /tmp kept. False if it is busy or unknown."""
        with self._lock:
            env = self._all.get(environment_id)
            if env is None or env.state != State.IDLE:
                return False
            idle = self._idle.get(env.spec.key, [])
            idle.remove(env)
            if not idle:
                self._idle.pop(env.spec.key, None)
            env.transition(State.BUSY)
        try:
            env.reset_runtime()
        except EnvironmentLost as exc:
            log.warning("environment %s lost while resetting it: %s", env.id, exc)
            env.destroy()
            env.emit("shutdown", reason="failure", detail=str(exc)[:200], idle_s=0.0)
        finally:
            self._release(env)
        return True

    def inspect(self, environment_id: str) -> dict:
        """What an idle (frozen) environment holds, without thawing it or running its code: its
        module's names as described before its last freeze, its threads, and its /tmp listed
        now (``inspector.py``). Held out of the idle list meanwhile, as a reset is, so no call
        thaws it mid-listing. Raises ``EnvironmentNotFound`` or ``EnvironmentBusy``."""
        with self._lock:
            env = self._all.get(environment_id)
            if env is None or env.spec is None:
                raise EnvironmentNotFound(f"no environment {environment_id} in this pool")
            if env.state != State.IDLE:
                raise EnvironmentBusy(f"environment {environment_id} is {env.state.value}")
            idle = self._idle.get(env.spec.key, [])
            idle.remove(env)
            if not idle:
                self._idle.pop(env.spec.key, None)
            env.transition(State.BUSY)
        try:
            return inspector.inspect(env)
        finally:
            self._release(env)

    def age_environment(self, environment_id: str, seconds: float) -> bool:
        """Move an idle environment's idle clock on by ``seconds`` (idle eviction then comes
        that much sooner). False if it is busy or unknown."""
        with self._lock:
            env = self._all.get(environment_id)
            if env is None or env.state != State.IDLE:
                return False
            env.last_used -= seconds
            self._janitor_wakes_at = 0.0
            self._evict_due.notify()
        return True

    def close(self) -> None:
        """Shut every environment down (idle ones at once, busy ones after their call)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for condition in (self._changed, self._grow_due, self._evict_due):
                condition.notify_all()
            envs = list(self._all.values())
        deadline = time.monotonic() + SHUTDOWN_GRACE_S + TEARDOWN_WAIT_S
        idle = [e for e in envs if e.state == State.IDLE]
        for env in idle:
            env.begin_shutdown("close")
        for env in idle:
            env.finish_shutdown(deadline)
            self._forget(env)
        # Busy environments are torn down by their invoking thread on release.
        with self._lock:
            end = time.monotonic() + CLOSE_WAIT_S
            while self._all and time.monotonic() < end:
                self._changed.wait(0.5)
            leftovers = list(self._all.values())
        for env in leftovers:
            env.destroy()
            self._forget(env)
        self._grower.join(timeout=15)
        with self._lock:
            cells, self._stem_cells = self._stem_cells, []
        for env in cells:
            self._drop_stem_cell(env)
        self._janitor.join(timeout=5)
        self._spawner.close()
        if self._service is not None:
            self._service.close()
        shutil.rmtree(self._task_root, ignore_errors=True)

    # -- placement ------------------------------------------------------------

    def _acquire(
        self, spec: FunctionSpec, prefer: str | None = None, fresh: bool = False
    ) -> tuple[Environment, InitReason | None]:
        """An environment for the call: warm (reason None), or a new one and why it is cold
        (always a new one if ``fresh``)."""
        victim = cell = None
        victims: list[Environment] = []
        give_up = time.monotonic() + 15
        with self._lock:
            while True:
                self._check_open()
                idle = None if fresh else self._idle.get(spec.key)
                if idle:
                    env = next((e for e in idle if e.id == prefer), idle[-1])  # else the most recently
                    idle.remove(env)  # used: keeps the fewest environments warm
                    if not idle:
                        del self._idle[spec.key]
                    env.idle_timeout_s = spec.idle_timeout_s
                    env.transition(State.BUSY)
                    self._note_revision(spec)
                    return env, None
                if self._stem_cells:
                    cell = self._stem_cells.pop()
                    self._grow_due.notify()  # the grower makes another
                    if self._scratch is None and spec.tmp_mb != cell.tmp_mb:
                        victim, cell = cell, None  # a tmpfs of the wrong size: it frees its slot instead
                    break
                if self._count() < self.max_environments:
                    break
                victim = self._oldest_idle()
                if victim is not None:
                    self._take_idle(victim)
                    break
                if self._growing and time.monotonic() < give_up:
                    self._waiting_calls += 1
                    try:  # a stem cell is nearly ready, or a call may finish first
                        self._changed.wait(give_up - time.monotonic())
                    finally:
                        self._waiting_calls -= 1
                    continue
                raise PoolCapacityError(
                    f"all {self.max_environments} environments of this pool are busy; "
                    "retry later (Lambda would answer 429 TooManyRequestsException)"
                )
            reason = self._cold_reason(spec)
            self._note_revision(spec)
            refused = None
            try:
                victims = self._make_memory_room(spec.memory_mb, leaving=victim)
            except PoolCapacityError as exc:
                refused = exc
                if cell is not None:  # the stem cell goes back: it was not used
                    self._stem_cells.append(cell)
                    cell = None
            else:
                self._starting += 1
                self._starting_mb += spec.memory_mb
        if refused is not None:
            if victim is not None:  # already taken out for the bound: it goes anyway
                self._retire(victim)
            raise refused
        try:
            for old in victims:
                old.shutdown("capacity")
                self._forget(old)
            if victim is not None:
                self._retire(victim)
            env = cell or self._new_environment(spec.tmp_mb)
            try:
                env.assign(spec, self._code_dir(spec), "on-demand")
                self._attach_service(env)
            except BaseException as exc:
                env.destroy()
                self._detach_service(env)
                self._uids.release(env.uid)
                if isinstance(exc, ScratchFullError):
                    raise PoolCapacityError(f"no room for /tmp: {exc}") from None
                raise
        except BaseException:
            with self._lock:
                self._starting -= 1
                self._starting_mb -= spec.memory_mb
            raise
        with self._lock:
            self._starting -= 1
            self._starting_mb -= spec.memory_mb
            env.idle_timeout_s = spec.idle_timeout_s
            self._all[env.id] = env  # NEW until its Init starts in invoke
        return env, reason

    def _retire(self, victim: Environment) -> None:
        """Shut down what was taken out to make room: a stem cell, or an idle environment."""
        if victim.spec is None:
            self._drop_stem_cell(victim)
        else:
            victim.shutdown("capacity")
            self._forget(victim)

    def _cold_reason(self, spec: FunctionSpec) -> InitReason:
        """Why a call of ``spec`` finds no idle environment here (under the lock)."""
        live = sum(1 for env in self._all.values() if env.spec is not None and env.spec.key == spec.key)
        if live:
            words = (
                "its only warm environment was busy"
                if live == 1
                else f"all {live} warm environments were busy"
            )
            return InitReason("busy", words)
        gone = self._gone.get(spec.key)
        if gone is not None:
            why, idle_s = gone
            return {
                "idle": InitReason("evicted", f"the last environment was evicted after {idle_s:.0f} s idle"),
                "capacity": InitReason("capacity", "the last environment was shut down to make room"),
                "failure": InitReason("lost", "the last environment was lost"),
            }.get(why, InitReason("shut_down", "the environments were shut down"))
        if spec.function_id and self._revisions.get(spec.function_id, spec.key) != spec.key:
            return InitReason("new_revision", "the code or a setting changed: a new revision")
        return InitReason("first_call", "the first call")

    def _note_revision(self, spec: FunctionSpec) -> None:
        if spec.function_id:
            self._revisions.pop(spec.function_id, None)  # re-inserted last: the oldest go first
            self._revisions[spec.function_id] = spec.key
            while len(self._revisions) > MAX_REMEMBERED:
                del self._revisions[next(iter(self._revisions))]

    def _make_memory_room(self, memory_mb: int, leaving: Environment | None = None) -> list[Environment]:
        """Idle environments to shut down (least recently used first) so that one more of
        ``memory_mb`` fits the pool's memory budget; refuse the call if they cannot make it fit
        (under the lock; the victims are already taken out of the idle lists)."""
        if self.memory_budget_mb is None:
            return []
        promised = self._starting_mb + sum(
            e.spec.memory_mb for e in self._all.values() if e.spec is not None and e is not leaving
        )
        over = promised + memory_mb - self.memory_budget_mb
        if over <= 0:
            return []
        idle = sorted((e for envs in self._idle.values() for e in envs), key=lambda e: e.last_used)
        victims, freed = [], 0
        for env in idle:
            if freed >= over:
                break
            victims.append(env)
            freed += env.spec.memory_mb
        if freed < over:
            raise PoolCapacityError(
                f"no memory for another {memory_mb} MB environment: this worker's budget is "
                f"{self.memory_budget_mb:,} MB and {promised:,} MB is held by environments in use; "
                "retry later (Lambda would answer 429 TooManyRequestsException)"
            )
        for env in victims:
            self._take_idle(env)
        return victims

    def _release(self, env: Environment) -> None:
        with self._lock:
            if env.state == State.DEAD:
                pass
            elif self._closed:
                env.transition(State.SHUTTING_DOWN)
            else:
                env.transition(State.IDLE)
                self._idle.setdefault(env.spec.key, []).append(env)
                if self._waiting_calls:
                    self._changed.notify_all()
                if env.last_used + env.idle_timeout_s < self._janitor_wakes_at:
                    self._evict_due.notify()  # due before the janitor's next look
                return
        if env.state == State.SHUTTING_DOWN:
            env.shutdown("close")
        self._forget(env)

    def _count(self) -> int:
        """Environments held against the bound: live, being built, and stem cells."""
        return len(self._all) + self._starting + len(self._stem_cells) + self._growing

    def _new_environment(self, tmp_mb: int) -> Environment:
        return Environment(
            tmp_mb=tmp_mb,
            task_root=self._task_root,
            runtime_dir=self._runtime_dir,
            python=self._python,
            isolation=self._isolation,
            spawner=self._spawner,
            uid=self._uids.acquire(),
            emit=self._emit,
            runtime_version=self._runtime_version,
            scratch=self._scratch,
            service_root=self._service.root if self._service is not None else None,
        )

    def _drop_stem_cell(self, env: Environment) -> None:
        env.destroy()
        self._uids.release(env.uid)

    def _grow_stem_cells(self) -> None:
        """Keep ``stem_cells`` jails built and waiting (never beyond the pool's bound)."""
        failures = 0
        while True:
            with self._lock:
                while not self._closed and (
                    len(self._stem_cells) + self._growing >= self._stem_target
                    or self._count() >= self.max_environments
                ):
                    self._grow_due.wait()
                if self._closed:
                    return
                self._growing += 1
            env = None
            try:
                env = self._new_environment(STEM_CELL_TMP_MB)
                env.build_jail(time.monotonic() + 10)
                failures = 0
            except Exception as exc:  # noqa: BLE001 - a host problem: calls build their own jails
                log.warning("could not build a stem cell: %s", exc)
                if env is not None:
                    self._drop_stem_cell(env)
                env = None
                failures += 1
            with self._lock:
                self._growing -= 1
                if env is not None and not self._closed:
                    self._stem_cells.append(env)
                    env = None
                self._changed.notify_all()
                if failures:
                    self._grow_due.wait(min(30, 0.5 * 2**failures))
            if env is not None:
                self._drop_stem_cell(env)

    def _attach_service(self, env: Environment) -> None:
        if self._service is not None:
            spec = env.spec
            self._service.attach(
                env.id,
                function_id=spec.function_id or spec.key,
                key=spec.key,
                name=spec.function_name,
                uid=env.uid,
            )

    def _detach_service(self, env: Environment) -> None:
        if self._service is not None:
            self._service.detach(env.id)

    def _forget(self, env: Environment) -> None:
        with self._lock:
            if self._all.pop(env.id, None) is not None:
                self._uids.release(env.uid)
                if env.spec is not None and env.shutdown_reason != "discarded":
                    # why the next cold call of its version finds none (not a discarded one's end)
                    self._gone[env.spec.key] = (env.shutdown_reason or "failure", env.idle_seconds())
                    while len(self._gone) > MAX_REMEMBERED:
                        del self._gone[next(iter(self._gone))]
            self._take_idle(env)
            self._changed.notify_all()
            self._grow_due.notify()
        self._detach_service(env)

    def _take_idle(self, env: Environment) -> None:
        idle = self._idle.get(env.spec.key)
        if idle and env in idle:
            idle.remove(env)
            if env.state == State.IDLE:
                env.transition(State.SHUTTING_DOWN)
            if not idle:
                del self._idle[env.spec.key]

    def _oldest_idle(self) -> Environment | None:
        candidates = [e for envs in self._idle.values() for e in envs]
        return min(candidates, key=lambda e: e.last_used) if candidates else None

    def _check_open(self) -> None:
        if self._closed:
            raise PoolError("the pool is closed")

    def _code_dir(self, spec: FunctionSpec) -> Path:
        # One cache per function, never shared with another (see environment._link_tree).
        target = self._state_dir / "code" / spec.key
        if target.is_dir():
            os.utime(target)  # in use: keeps prune_state away
            return target
        with self._code_lock:
            if not target.is_dir():
                target.parent.mkdir(parents=True, exist_ok=True)
                os.chmod(target.parent, 0o711)
                try:
                    spec.write_code(target)
                except FileExistsError:
                    pass
                except OSError:
                    if not target.is_dir():
                        raise
        return target

    def _emit(self, event: dict) -> None:
        if self.on_event is None:
            return
        try:
            self.on_event(event)
        except Exception:  # a broken listener must not break the engine
            log.exception("on_event callback failed")

    # -- idle eviction --------------------------------------------------------

    def _evict_idle(self) -> None:
        while True:
            with self._lock:
                if self._closed:
                    return
                now = time.monotonic()
                due, next_due = [], now + 60
                for envs in self._idle.values():
                    for env in envs:
                        # provisioned ones are kept, not idled out; but a host is not Lambda's
                        # fleet: unused for PROVISIONED_IDLE_S, they go too
                        at = env.last_used + (PROVISIONED_IDLE_S if env.provisioned else env.idle_timeout_s)
                        if at <= now:
                            due.append(env)
                        else:
                            next_due = min(next_due, at)
                for env in due:
                    self._take_idle(env)
                if not due:
                    self._janitor_wakes_at = next_due
                    self._evict_due.wait(max(0.01, next_due - now))
                    continue
            for env in due:
                env.begin_shutdown("idle")
            deadline = time.monotonic() + SHUTDOWN_GRACE_S + TEARDOWN_WAIT_S
            for env in due:
                env.finish_shutdown(deadline)
                self._forget(env)
