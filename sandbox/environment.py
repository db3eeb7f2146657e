"""One execution environment: a jail, its agent and runtime, kept alive and frozen between calls.

An Environment is driven by one thread at a time (the pool sees to that): the
thread that invokes it reads its control channel until the invocation ends,
so a warm call involves no thread hand-off. Everything the agent sends is
untrusted (``channel.py``); the host keeps its own clocks, limits and counters.

Every call ends in the event stream: ``invoke`` emits ``invoke.start`` and
exactly one ``invoke.end`` (with END and REPORT lines) whatever happens —
a failing handler, a timeout, a crash, or the environment lost under it.
"""

from __future__ import annotations

import enum
import logging
import math
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from . import events, report, service
from .cgroup import EnvironmentCgroup
from .channel import ControlChannel, EnvironmentLost
from .logs import InvocationLog
from .result import InitReason, InvokeResult, Outcome, error_type_of, init_report_error_type, judge
from .runtime import contract
from .scratch import ScratchDisk
from .spec import FunctionSpec

log = logging.getLogger(__name__)

INIT_LIMIT_S = 10.0
PROVISIONED_INIT_LIMIT_S = 130.0
INIT_BOOST_S = 10.0  # the first Init runs unthrottled this long; re-inits are held to the quota
# With no extension registered, Lambda's Shutdown phase is 0 ms: the runtime gets no SIGTERM
# grace. (The graces with extensions come with the Extensions API.)
SHUTDOWN_GRACE_S = 0.0
TEARDOWN_WAIT_S = 2.0  # how long shutdown waits for the jail to exit before killing it
RESET_REPLY_S = 5.0
PIDS_MAX = 1024
MIB = 1024 * 1024

__all__ = ["Environment", "EnvironmentLost", "InvokeResult", "Isolation", "State"]


class State(enum.StrEnum):
    """Where an environment is in its life. Transitions are ``Environment.transition``'s alone."""

    NEW = "new"  # jail built or being built, no Init yet (a stem cell, or a cold start's first step)
    INITIALIZING = "initializing"
    BUSY = "busy"  # an invocation is in flight
    IDLE = "idle"  # frozen, waiting for the next call
    SHUTTING_DOWN = "shutting_down"
    DEAD = "dead"


_TRANSITIONS = {
    State.NEW: {State.INITIALIZING},
    State.INITIALIZING: {State.BUSY, State.IDLE},
    State.BUSY: {State.IDLE, State.SHUTTING_DOWN},
    State.IDLE: {State.BUSY, State.SHUTTING_DOWN},
    State.SHUTTING_DOWN: set(),
    State.DEAD: set(),
}


@dataclass
class Isolation:
    """What the pool could give every environment on this host."""

    cgroup_controllers: tuple[str, ...]
    seccomp_program: bytes | None
    pool_tag: str


class _Call:
    """One invocation's bookkeeping, so that however it ends, it ends once."""

    def __init__(self, request_id: str, reason: InitReason | None) -> None:
        self.request_id = request_id
        self.cold = reason is not None
        self.reason = reason  # why it runs an Init: cold, or a re-init after a reset
        self.began = time.monotonic()
        self.t0 = self.began  # when the invoke phase began (after a cold start's Init)
        self.started = False  # invoke.start and START are out
        self.ended = False  # invoke.end, END and REPORT are out


class Environment:
    def __init__(
        self,
        *,
        tmp_mb: int,
        task_root: Path,
        runtime_dir: Path,
        python: str,
        isolation: Isolation,
        spawner,
        uid: int | None,
        emit: Callable[[dict], None],
        runtime_version: tuple[str, str],
        scratch: ScratchDisk | None = None,
        service_root: Path | None = None,
    ) -> None:
        self.id = uuid.uuid4().hex
        self.spec: FunctionSpec | None = None  # set by assign()
        self.tmp_mb = tmp_mb
        self.scratch = scratch  # where /tmp lives: a directory of it, or a tmpfs without one
        self.tmp_dir: Path | None = None
        # The jail's /var/task: empty until assign() puts the function's code in,
        # so a jail can be built before anyone knows which function it will run.
        self.task_dir = task_root / self.id
        # The jail's /var/lab: the lab service puts the function's socket in it (service.py).
        self.service_dir = service_root / self.id if service_root is not None else None
        self.runtime_dir = runtime_dir
        self.python = python
        self.isolation = isolation
        self.spawner = spawner
        self.uid = uid
        self._emit = emit
        self.runtime_version = runtime_version
        self.initialization_type = "on-demand"
        self.provisioned = False
        self.state = State.NEW
        self.shutdown_reason: str | None = None
        self.jail_built = False
        self.created = time.time()
        self.last_used = time.monotonic()
        self.idle_timeout_s = 600.0  # the latest call's: not a setting Lambda restarts for
        self.invocations = 0
        self.frozen = False
        self.runtime_ready = False
        self.init_duration_ms: float | None = None
        self.reset_reason: InitReason | None = None  # why the runtime is down, for the next call's re-init
        self.proc: subprocess.Popen | None = None
        self.channel: ControlChannel | None = None
        self.cgroup: EnvironmentCgroup | None = None
        self.keep_pids: set[int] = set()  # bwrap and the agent: never the runtime's
        # The runtime's pages it shares with the agent it was forked from (charged to the agent's
        # group, not the function's): the function is limited to Memory Size minus this.
        self.baseline_bytes = 0
        self.max_memory_bytes = 0  # the environment's high-water mark, as Lambda's Max Memory Used
        self._oom_kills = 0
        self._caller: int | None = None  # the thread of the call in flight
        self.log = InvocationLog(self.emit)
        # The execution role's credentials, as Lambda puts them in the environment: placeholders
        # (no network reaches AWS from a jail), one set per environment, so that SDK clients build.
        self.credentials = placeholder_credentials()
        # The State inspector's view of the module (inspector.py): the runtime's description from
        # before the latest freeze, raw (parsed only when inspected), and when it came.
        self.module_state: tuple[bytes, float] | None = None

    def _on_module_state(self, body: bytes) -> None:
        self.module_state = (body, time.time()) if len(body) <= contract.STATE_MAX_BYTES else None

    # -- state and events ------------------------------------------------------

    def transition(self, to: State) -> None:
        """Move to ``to``; DEAD and (from anywhere alive) SHUTTING_DOWN are always allowed."""
        if self.state == State.DEAD:
            raise EnvironmentLost("the environment was torn down")
        if to in (State.DEAD, State.SHUTTING_DOWN) or to in _TRANSITIONS[self.state]:
            self.state = to
            return
        raise RuntimeError(f"environment {self.id}: no transition from {self.state.value} to {to.value}")

    def emit(self, type: str, request_id: str | None = None, **fields) -> None:
        if self.spec is None:
            return  # a jail nobody has claimed yet has no story to tell
        self._emit(
            events.make(
                type,
                function=self.spec.key,
                function_name=self.spec.function_name,
                environment=self.id,
                request_id=request_id,
                **fields,
            )
        )

    # -- building: the jail, then the function's code and limits ----------------

    def assign(self, spec: FunctionSpec, code_dir: Path, initialization_type: str = "on-demand") -> None:
        """Bind this environment to a function: its code, limits and identity."""
        self.size_tmp(spec.tmp_mb)
        self.spec = spec
        self.initialization_type = initialization_type
        self.provisioned = initialization_type == "provisioned-concurrency"
        self._make_task_dir()
        _link_tree(code_dir, self.task_dir)
        self._apply_limits()

    def size_tmp(self, tmp_mb: int) -> None:
        """Make /tmp, or give it a new size (a quota change: a stem cell can serve any size).

        Raises ``ScratchFullError`` when the disk cannot hold one more /tmp of that size.
        """
        if self.scratch is None:
            if self.jail_built and tmp_mb != self.tmp_mb:
                raise ValueError("a tmpfs /tmp cannot change size once its jail is built")
        elif self.tmp_dir is None:
            self.tmp_dir = self.scratch.create(self.id, size_mb=tmp_mb, uid=self.uid)
        elif tmp_mb != self.tmp_mb:
            self.scratch.resize(self.id, tmp_mb)
        self.tmp_mb = tmp_mb

    def _make_task_dir(self) -> None:
        self.task_dir.mkdir(mode=0o755, exist_ok=True)
        os.chmod(self.task_dir, 0o755)  # whatever the umask: the jail's uid must read it

    def _apply_limits(self) -> None:
        """The function's memory and CPU share, once both the jail and the function are known."""
        if self.cgroup is not None and self.spec is not None:
            self.cgroup.set_limits(
                memory_mb=self.spec.memory_mb,
                function_bytes=self.spec.memory_mb * MIB - self.baseline_bytes,
            )

    def build_jail(self, deadline: float) -> None:
        """Build the jail and start the agent; its pre-forked runtime waits for an init frame."""
        self._make_task_dir()
        if self.service_dir is not None:
            service.make_directory(self.service_dir)
        self.size_tmp(self.tmp_mb)
        controllers = self.isolation.cgroup_controllers
        if controllers:
            self.cgroup = EnvironmentCgroup(self.isolation.pool_tag, self.id, controllers)
            self.cgroup.create(pids_max=PIDS_MAX)
            self.cgroup.limit_cpu(False)  # the agent's start is the platform's, as Init's boost
        host_sock, jail_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        seccomp_fd = None
        try:
            from .jail import bwrap_argv
            from .seccomp import filter_fd

            if self.isolation.seccomp_program is not None:
                seccomp_fd = filter_fd(self.isolation.seccomp_program)
            argv = bwrap_argv(
                python=self.python,
                runtime_dir=self.runtime_dir,
                code_dir=self.task_dir,
                tmp_bytes=self.tmp_mb * MIB,
                tmp_dir=self.tmp_dir,
                control_fd=jail_sock.fileno(),
                seccomp_fd=seccomp_fd,
                hostname="lambdalab-" + self.id[:8],
                service_dir=self.service_dir,
            )
            pass_fds = (jail_sock.fileno(),) + ((seccomp_fd,) if seccomp_fd is not None else ())
            self.proc = self.spawner.spawn(argv, pass_fds=pass_fds, uid=self.uid, cgroup=self.cgroup)
        finally:
            jail_sock.close()
            if seccomp_fd is not None:
                os.close(seccomp_fd)
        self.channel = ControlChannel(
            host_sock,
            on_log=self.log.output,
            on_log_dropped=self.log.truncate,
            on_state=self._on_module_state,
        )
        try:
            hello = self.channel.receive(deadline)
        except EnvironmentLost:
            hello = None
        if hello is None or hello[0]["t"] != "hello":
            raise EnvironmentLost(f"the jail did not start: {self._bwrap_error()}")
        self.proc.stderr.close()
        self.keep_pids = self._agent_pids()
        self._apply_limits()
        self._confine_runtime()
        self.jail_built = True

    def _bwrap_error(self) -> str:
        try:
            self.proc.wait(timeout=1)
        except subprocess.TimeoutExpired:
            return "no answer from the agent"
        err = self.proc.stderr.read(4096).decode("utf-8", "replace").strip()
        return err or f"bwrap exited with {self.proc.returncode}"

    def _agent_pids(self) -> set[int]:
        """Host pids of bwrap and its one child, the agent (the jail's pid 1).

        With cgroups, this is also where the jail's membership is made sure of:
        bwrap may have forked before it was moved in. The agent's own child, the
        pre-forked runtime, is idle until the init frame: ``_confine_runtime``
        moves it into the function's groups before any user code runs.
        """
        try:
            children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
        except OSError:
            children = []
        if len(children) != 1:
            raise EnvironmentLost("the jail's process tree is not bwrap and the agent")
        if self.cgroup is not None:
            # walk the real process tree: what bwrap forked before its move is not in the groups
            strays = [pid for pid in self._tree_pids() if not self.cgroup.members(pid)]
            if strays:
                self.cgroup.adopt(strays)
                if not all(self.cgroup.members(pid) for pid in strays):
                    raise EnvironmentLost("could not move the jail into its cgroups")
        return {self.proc.pid, int(children[0])}

    def _runtime_pids(self) -> list[int]:
        """The function's processes: everything in the jail but bwrap and the agent."""
        pids = self.cgroup.pids() if self.cgroup is not None else self._tree_pids()
        return [pid for pid in pids if pid not in self.keep_pids]

    def _confine_runtime(self) -> None:
        """Every process but the agent goes into the function's groups (its memory, freeze and kill)."""
        if self.cgroup is None:
            return
        loose = [pid for pid in self._runtime_pids() if not self.cgroup.confined(pid)]
        if loose:
            self.cgroup.confine(loose)

    def _tree_pids(self) -> list[int]:
        """bwrap and all its descendants, from /proc."""
        found, todo = [], [self.proc.pid]
        while todo and len(found) < 4096:
            pid = todo.pop()
            found.append(pid)
            try:
                todo += [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
            except OSError:
                pass
        return found

    def runtime_env(self) -> dict[str, str]:
        """Lambda's variables for this environment (``contract.LAMBDA_VARIABLES``), then the function's."""
        spec = self.spec
        env = {
            "PATH": "/var/lang/bin:/usr/local/bin:/usr/bin/:/bin:/opt/bin",
            "LD_LIBRARY_PATH": "/var/lang/lib:/lib64:/usr/lib64:/var/runtime:/var/runtime/lib:"
            "/var/task:/var/task/lib:/opt/lib",
            "LANG": "en_US.UTF-8",
            "TZ": ":UTC",
            "PYTHONPATH": contract.RUNTIME_DIR,
            "LAMBDA_TASK_ROOT": contract.TASK_ROOT,
            "LAMBDA_RUNTIME_DIR": contract.RUNTIME_DIR,
            "_HANDLER": spec.handler,
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_LAMBDA_FUNCTION_NAME": spec.function_name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_mb),
            "AWS_LAMBDA_FUNCTION_VERSION": report.VERSION,
            "AWS_LAMBDA_INITIALIZATION_TYPE": self.initialization_type,
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{spec.function_name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": report.log_stream_name(self.id, self.created),
            "AWS_LAMBDA_RUNTIME_API": contract.RUNTIME_API,
            **self.credentials,
        }
        if spec.runtime == "python3.11":
            env["AWS_EXECUTION_ENV"] = "AWS_Lambda_python3.11"
        if self.service_dir is not None:  # the lab's, not Lambda's
            env[service.SOCKET_VARIABLE] = service.SOCKET_PATH
        env.update(spec.environment)
        return env

    # -- Init ----------------------------------------------------------------------

    def initialize(self) -> None:
        """Cold start: build the jail unless it is up already, start the runtime, run Init.

        Init is held to 10 s on demand (max(130 s, timeout) when provisioned), and runs
        unthrottled for its first 10 s (Lambda's init boost). A failed Init is reported
        here and retried inside the first invocation.
        """
        t0 = time.monotonic()
        self.transition(State.INITIALIZING)
        self.log.begin(None)
        self.emit("init.start", phase="init", initialization_type=self.initialization_type)
        self.log.platform(report.init_start_line(*self.runtime_version))
        limit = INIT_LIMIT_S
        if self.provisioned:
            limit = max(PROVISIONED_INIT_LIMIT_S, float(self.spec.timeout_s))
        deadline = t0 + limit
        if not self.jail_built:
            self.build_jail(deadline)
        outcome = self._run_init(deadline, boost_until=t0 + INIT_BOOST_S)
        duration = (time.monotonic() - t0) * 1000
        if outcome.kind == "ok":
            self.init_duration_ms = duration
            self.emit("init.function.done", duration_ms=round(duration, 3))
        else:
            self._init_failed("init", duration, "timeout" if outcome.kind == "timeout" else "error", outcome)
        self.log.flush()

    def _run_init(self, deadline: float, boost_until: float | None) -> Outcome:
        """Start the runtime and wait until it asks for work (Init is done)."""
        self._confine_runtime()
        self.channel.send(
            {
                "t": "init",
                "runtime": "python" if self.spec.runtime == "python3.11" else "provided",
                "handler": self.spec.handler,
                "env": self.runtime_env(),
            }
        )
        while True:
            frame = self.channel.receive(min(deadline, boost_until) if boost_until else deadline)
            if frame is None:
                if boost_until is not None and time.monotonic() < deadline:
                    boost_until = None  # the boost is spent: the rest of Init counts against the quota
                    self._limit_cpu(True)
                    continue
                self._kill_runtime(
                    "init timed out", InitReason("init_retry", "Init timed out before: retried")
                )
                return Outcome("timeout", init_failed=True)
            header, body = frame
            kind = header["t"]
            if kind == "runtime.done":
                self.emit("init.runtime.done")
            elif kind == "init.done":
                self.runtime_ready = True
                self._limit_cpu(True)
                self._sample_memory()
                return Outcome("ok")
            elif kind == "init.error":
                outcome = Outcome("error", error_type_of(header, body), body, init_failed=True)
                # the runtime exits after reporting; make sure of it
                self._kill_runtime("init failed", InitReason("init_retry", "Init failed before: retried"))
                return outcome
            elif kind == "exit":
                outcome = self._exited(header, init_failed=True)
                self._kill_runtime("runtime exited", _after_exit(outcome))
                return outcome

    def _init_failed(self, phase: str, duration: float, status: str, outcome: Outcome) -> None:
        error_type = init_report_error_type(outcome.error_type) if status == "error" else None
        self.runtime_ready = False
        self.emit(
            "init.report", phase=phase, status=status, error_type=error_type, duration_ms=round(duration, 3)
        )
        self.log.platform(report.init_report_line(duration, phase, status, error_type))

    # -- Invoke --------------------------------------------------------------------

    def invoke(
        self,
        payload: bytes,
        *,
        request_id: str,
        cold_reason: InitReason | None = None,
        headers: dict | None = None,
        freeze: bool = True,
    ) -> InvokeResult:
        """One invocation, Init first on a cold start, START to REPORT; left frozen (unless not
        ``freeze``: it is to be shut down next), or dead if lost.

        Never raises for what happens in the jail: a lost environment is a ``Sandbox.Failure``
        result (and the environment is torn down), with its invoke.end, END and REPORT.
        """
        call = _Call(request_id, cold_reason)
        self._caller = threading.get_ident()
        self.invocations += 1
        try:
            if call.cold:
                self.initialize()
            else:
                self.log.begin(request_id)
            self.log.request_id = request_id  # a cold start's log began with its Init
            if self.state != State.BUSY:  # a warm one was marked busy as the pool took it
                self.transition(State.BUSY)
            if self.frozen:
                self.thaw(request_id)
            call.t0 = time.monotonic()
            outcome = self._run_call(call, payload, headers or {})
            result = self._finish(call, outcome)
            if freeze:
                self.freeze()  # a write to cgroup.freeze (~5 µs); the kernel completes it meanwhile
            self.last_used = time.monotonic()
            return result
        except BaseException as exc:
            why = str(exc) if isinstance(exc, EnvironmentLost) else f"host error: {type(exc).__name__}: {exc}"
            if not isinstance(exc, EnvironmentLost):
                log.exception("environment %s: invocation %s failed on the host", self.id, request_id)
            result = self._lose(call, why)
            if not isinstance(exc, Exception):
                raise  # KeyboardInterrupt and the like, after the call is ended in the stream
            return result
        finally:
            self._caller = None

    def _run_call(self, call: _Call, payload: bytes, headers: dict) -> Outcome:
        """Re-init if the runtime is down (after a reset or a failed Init), then the invocation."""
        deadline = call.t0 + self.spec.timeout_s
        if not self.runtime_ready:
            if call.reason is None:
                call.reason = self.reset_reason or InitReason("init_retry", "re-initialised")
            outcome = self._suppressed_init(call, deadline)
            if outcome is not None:
                self._started(call)
                return outcome
        self._started(call)
        return self._run_invoke(payload, call.request_id, deadline, headers)

    def _suppressed_init(self, call: _Call, deadline: float) -> Outcome | None:
        """Init again inside the invocation, bounded by its timeout and held to the CPU quota."""
        t0 = time.monotonic()
        rid = call.request_id
        self.emit("init.start", request_id=rid, phase="invoke", initialization_type=self.initialization_type)
        self._limit_cpu(True)
        outcome = self._run_init(deadline, boost_until=None)
        duration = (time.monotonic() - t0) * 1000
        if outcome.kind == "ok":
            self.emit("init.function.done", request_id=rid, phase="invoke", duration_ms=round(duration, 3))
            return None
        if outcome.kind != "timeout":
            self._init_failed("invoke", duration, "error", outcome)
        return outcome

    def _started(self, call: _Call) -> None:
        call.started = True
        reason = call.reason
        self.emit(
            "invoke.start",
            request_id=call.request_id,
            cold=call.cold,
            init_reason=reason.code if reason else None,
            init_reason_text=reason.text if reason else None,
        )
        self.log.platform(report.start_line(call.request_id))

    def _run_invoke(self, payload: bytes, request_id: str, deadline: float, headers: dict) -> Outcome:
        deadline_ms = int((time.time() + (deadline - time.monotonic())) * 1000)
        header = {
            "t": "invoke",
            "id": request_id,
            "deadline_ms": deadline_ms,
            "arn": f"arn:aws:lambda:us-east-1:000000000000:function:{self.spec.function_name}",
            "trace_id": _trace_id(),
        }
        header.update(
            {k: v for k, v in headers.items() if k in ("client_context", "cognito_identity", "content_type")}
        )
        self.module_state = None  # the call's own description comes before its result
        self.channel.send(header, payload)
        while True:
            frame = self.channel.receive(deadline)
            if frame is None:
                self._kill_runtime("timeout", InitReason("reset_timeout", "re-initialised after a timeout"))
                return Outcome("timeout")
            header, body = frame
            kind = header["t"]
            if kind in ("response", "error", "too_large") and header.get("id") != request_id:
                continue  # a stale or forged answer: not this invocation's
            if kind == "response":
                return Outcome("ok", body=body)
            if kind == "error":
                return Outcome("error", error_type_of(header, body), body)
            if kind == "too_large":
                return Outcome("too_large")
            if kind == "exit":
                outcome = self._exited(header)
                # the runtime's children outlive it unless taken too: kill its whole tree
                self._kill_runtime("runtime exited", _after_exit(outcome))
                return outcome

    def _exited(self, header: dict, init_failed: bool = False) -> Outcome:
        """The runtime exited: Runtime.ExitError, or Runtime.OutOfMemory if the OOM killer took it."""
        error_type = "Runtime.ExitError"
        if self.cgroup is not None:
            kills = self.cgroup.oom_kills()
            if kills > self._oom_kills:
                error_type = "Runtime.OutOfMemory"
                self.max_memory_bytes = self.spec.memory_mb * MIB  # it reached the limit
            self._oom_kills = kills
        detail = header.get("status")
        detail = detail[:100] if isinstance(detail, str) else "signal: killed"
        return Outcome("exit", error_type, detail=detail, init_failed=init_failed)

    # -- ending a call -------------------------------------------------------------

    def _finish(self, call: _Call, outcome: Outcome) -> InvokeResult:
        """END and REPORT, the result, and invoke.end: once per call."""
        spec = self.spec
        measured = (time.monotonic() - call.t0) * 1000
        verdict = judge(outcome, request_id=call.request_id, timeout_s=spec.timeout_s, duration_ms=measured)
        self.log.flush()
        for line in verdict.log_lines:
            self.log.function_line(line)
        init_ms = self.init_duration_ms if call.cold else None
        billed = report.billed_ms(verdict.duration_ms, init_ms)
        max_mb = self._max_memory_mb()
        self.log.platform(report.end_line(call.request_id))
        report_error = None
        if verdict.report_status == "error":
            report_error = (
                init_report_error_type(verdict.error_type) if outcome.init_failed else verdict.error_type
            )
        line = report.report_line(
            call.request_id,
            duration_ms=verdict.duration_ms,
            billed_ms=billed,
            memory_mb=spec.memory_mb,
            max_memory_mb=max_mb,
            init_ms=init_ms,
            status=verdict.report_status,
            error_type=report_error,
        )
        self.log.platform(line)
        result = InvokeResult(
            request_id=call.request_id,
            environment_id=self.id,
            cold=call.cold,
            status=verdict.status,
            error_type=verdict.error_type,
            payload=verdict.payload,
            duration_ms=round(verdict.duration_ms, 3),
            billed_duration_ms=billed,
            max_memory_used_mb=max_mb,
            init_duration_ms=round(init_ms, 3) if init_ms is not None else None,
            report=line,
            function=spec.key,
            logs=list(self.log.lines),
            log_truncated=self.log.truncated,
            init_reason=call.reason.code if call.reason else None,
            init_reason_text=call.reason.text if call.reason else None,
        )
        call.ended = True
        self.emit("invoke.end", request_id=call.request_id, **result.event_fields())
        return result

    def idle_seconds(self) -> float:
        return time.monotonic() - self.last_used

    def _lose(self, call: _Call, why: str) -> InvokeResult:
        """The environment broke down under a call: end the call in the stream, then tear down."""
        log.warning("environment %s lost: %s", self.id, why)
        result = None
        if not call.ended:
            if self.init_duration_ms is None:
                call.t0 = call.began  # lost during Init: the whole call is what was measured
            self.log.request_id = call.request_id
            if not call.started:
                self._started(call)
            result = self._finish(call, Outcome("lost", detail=why[:300]))
        self.destroy()
        self.emit("shutdown", reason="failure", detail=why[:200], idle_s=0.0)
        return result

    # -- memory ------------------------------------------------------------------

    def _sample_memory(self) -> None:
        """Fold the runtime's footprint into the environment's high-water mark (it never goes down).

        Max Memory Used counts the runtime's whole resident memory, as Lambda's does, while
        its memory group is charged only for the pages the runtime made itself: the rest
        (interpreter pages shared with the agent it was forked from, libraries first loaded
        elsewhere) is the baseline, measured on the runtime's first process. The footprint is
        that process's own high-water mark, or the baseline plus what the group holds now
        (every process of the function, shared pages once), whichever is more; the group is
        limited to Memory Size minus the baseline, so the function runs out of memory where
        its footprint passes Memory Size. /tmp's page cache is in neither.
        """
        pid = self._runtime_pid()
        if pid is None:
            return
        resident, high_water = _status_bytes(pid, "VmRSS", "VmHWM")
        charged = self.cgroup.function_charged_bytes() if self.cgroup is not None else None
        if charged is not None and self.runtime_ready:
            uncharged = resident - charged
            if uncharged > self.baseline_bytes:
                self.baseline_bytes = uncharged
                try:
                    self._apply_limits()
                except OSError:
                    pass  # already above the new limit: it meets it at its next allocation
        footprint = max(high_water, self.baseline_bytes + (charged or 0))
        self.max_memory_bytes = max(self.max_memory_bytes, footprint)

    def _runtime_pid(self) -> int | None:
        """The runtime's first process: the agent's first child (any later ones are orphans it adopted)."""
        agent = next((p for p in self.keep_pids if p != self.proc.pid), None)
        try:
            children = Path(f"/proc/{agent}/task/{agent}/children").read_text().split()
        except OSError:
            return None
        return int(children[0]) if children else None

    def _max_memory_mb(self) -> int:
        """Max Memory Used: the environment's high-water mark of the runtime's whole resident memory
        (shared interpreter pages included, /tmp's page cache not), never above Memory Size."""
        self._sample_memory()
        return min(self.spec.memory_mb, math.ceil(self.max_memory_bytes / MIB))

    # -- freeze, thaw, reset -------------------------------------------------------

    def freeze(self) -> None:
        if self.cgroup is not None and self.cgroup.freezes:
            self.cgroup.request_freeze()
        else:
            self._signal_jail(signal.SIGSTOP)
        self.frozen = True
        self.emit("freeze")

    def thaw(self, request_id: str | None = None) -> None:
        if self.cgroup is not None and self.cgroup.freezes:
            self.cgroup.thaw()
        else:
            self._signal_jail(signal.SIGCONT)
        self.frozen = False
        self.emit("thaw", request_id=request_id)

    def _signal_jail(self, sig: int) -> None:
        """Fallback freezer: signal every process in the jail, agent included (not bwrap)."""
        for pid in self.cgroup.pids() if self.cgroup is not None else self._tree_pids():
            if pid != self.proc.pid:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass

    def reset_runtime(self) -> None:
        """Kill the runtime now, between calls (the lab's lifecycle control); left frozen."""
        if self.frozen:
            self.thaw()
        if self.runtime_ready:
            self._kill_runtime(
                "reset on request",
                InitReason("reset_request", "re-initialised: its runtime was reset on request"),
            )
        self.freeze()

    def _limit_cpu(self, limited: bool) -> None:
        if self.cgroup is not None:
            self.cgroup.limit_cpu(limited)

    def _kill_runtime(self, reason: str, next_init: InitReason) -> None:
        """Kill the runtime and everything it started, from outside; the jail, agent and /tmp stay.

        ``next_init`` is why the next call will run an Init in this environment.
        """
        self._sample_memory()
        self.runtime_ready = False
        self.module_state = None  # its module is gone with it
        self.reset_reason = next_init
        if self.cgroup is not None:
            # Unthrottled, so that a runtime which spent the quota cannot slow its own cleanup.
            self._limit_cpu(False)
            self.cgroup.kill(keep=self.keep_pids)
        self.channel.send({"t": "reset"})
        deadline = time.monotonic() + RESET_REPLY_S
        while True:
            frame = self.channel.receive(deadline)
            if frame is None:
                raise EnvironmentLost("agent did not confirm the reset")
            if frame[0]["t"] == "reset.done":
                break
        self._confine_runtime()  # the agent's fresh pre-fork: into the function's groups
        self._limit_cpu(True)
        self.emit("reset", request_id=self.log.request_id, reason=reason)

    # -- shutdown ------------------------------------------------------------------

    def begin_shutdown(self, reason: str) -> None:
        """Ask the agent to stop the runtime (no grace without extensions); see finish_shutdown."""
        self.shutdown_reason = reason
        if self.state == State.DEAD or self.channel is None:
            return
        self.transition(State.SHUTTING_DOWN)
        try:
            if self.frozen:
                self.thaw()
            self.channel.send({"t": "shutdown", "grace_ms": int(SHUTDOWN_GRACE_S * 1000)})
        except EnvironmentLost:
            pass

    def finish_shutdown(self, deadline: float) -> None:
        if self.state == State.DEAD:
            return
        if self.proc is not None:
            try:
                self.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        idle_s = round(self.idle_seconds(), 1)
        self.destroy()
        self.emit("shutdown", reason=self.shutdown_reason or "request", idle_s=idle_s)

    def shutdown(self, reason: str) -> None:
        self.begin_shutdown(reason)
        self.finish_shutdown(time.monotonic() + SHUTDOWN_GRACE_S + TEARDOWN_WAIT_S)

    def destroy(self) -> None:
        """Kill whatever is left, now. Safe to call twice, and from another thread than a call's."""
        if self.state != State.DEAD:
            self.state = State.DEAD
            if self.cgroup is not None:
                self.cgroup.thaw()
            if self.proc is not None:
                if self.proc.poll() is None:
                    if self.cgroup is None:
                        self._signal_jail(signal.SIGCONT)
                    self.proc.kill()  # the agent, pid 1, follows it, and with it the pid namespace
                    try:
                        self.proc.wait(timeout=5)
                    except subprocess.TimeoutExpired:
                        pass
                if self.proc.stderr and not self.proc.stderr.closed:
                    self.proc.stderr.close()
            if self.cgroup is not None:
                self.cgroup.destroy()
            shutil.rmtree(self.task_dir, ignore_errors=True)
            if self.service_dir is not None:
                shutil.rmtree(self.service_dir, ignore_errors=True)
            if self.scratch is not None and self.tmp_dir is not None:
                self.scratch.remove(self.id)  # /tmp goes with the environment
        if self.channel is not None:
            # Only the thread of a call in flight closes its channel (it may be polling it); any
            # other thread wakes it by shutting the socket down, and it sees the environment lost.
            if self._caller is not None and self._caller != threading.get_ident():
                self.channel.interrupt()
            else:
                self.channel.close()


def _after_exit(outcome: Outcome) -> InitReason:
    if outcome.error_type == "Runtime.OutOfMemory":
        return InitReason("reset_oom", "re-initialised after running out of memory")
    if outcome.init_failed:
        return InitReason("init_retry", "Init failed before: retried")
    return InitReason("reset_crash", "re-initialised after the runtime exited")


def placeholder_credentials() -> dict[str, str]:
    """Credentials shaped like an execution role's (ASIA... key id, session token), marked as fake."""
    tag = uuid.uuid4().hex.upper()
    return {
        "AWS_ACCESS_KEY_ID": "ASIALAMBDALAB" + tag[:7],
        "AWS_SECRET_ACCESS_KEY": "lambdalab-placeholder-not-a-secret-" + tag[7:12].lower(),
        "AWS_SESSION_TOKEN": "lambdalab-placeholder-session-token-" + tag.lower(),
    }


def _status_bytes(pid: int, *fields: str) -> list[int]:
    """``kB`` fields of /proc/<pid>/status (VmRSS, VmHWM) in bytes, from one read; 0s if gone."""
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            text = f.read()
    except OSError:
        return [0] * len(fields)
    values = []
    for field in fields:
        at = text.find(field.encode() + b":")  # absent for a zombie
        values.append(int(text[at + len(field) + 1 :].split(None, 1)[0]) * 1024 if at >= 0 else 0)
    return values


def _trace_id() -> str:
    ids = os.urandom(20).hex()
    return f"Root=1-{int(time.time()):08x}-{ids[:24]};Parent={ids[24:]};Sampled=0"


def _link_tree(source: Path, target: Path) -> None:
    """Fill ``target`` with hard links to the function's code cache (a copy across filesystems).

    The cache is the function's own (``EnvironmentPool._code_dir``), never shared with
    another function: a link count, a ``flock`` or an inotify watch on its files tells
    an environment only about environments of its own function.
    """
    for dirpath, dirnames, filenames in os.walk(source):
        rel = os.path.relpath(dirpath, source)
        dest = target if rel == "." else target / rel
        for name in dirnames:
            (dest / name).mkdir(mode=0o755, exist_ok=True)
        for name in filenames:
            src = os.path.join(dirpath, name)
            try:
                os.link(src, dest / name)
            except OSError:
                shutil.copy2(src, dest / name)
