"""One execution environment: a jail, its agent and runtime, kept alive and frozen between calls.

An Environment is driven by one thread at a time (the pool sees to that): the
thread that invokes it reads its control socket until the invocation ends, so
a warm call involves no thread hand-off. Everything the agent sends is
untrusted: frames are bounded, checked against the invocation in flight, and
the host keeps its own clocks, limits and counters.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import math
import os
import select
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from . import events, report
from .cgroup import EnvironmentCgroup
from .logs import InvocationLog
from .runtime import contract, frames
from .spec import FunctionSpec

INIT_LIMIT_S = 10.0
PROVISIONED_INIT_LIMIT_S = 130.0
SHUTDOWN_GRACE_S = 2.0
AGENT_REPLY_S = 2.0
RESET_REPLY_S = 5.0
MAX_PAYLOAD = 6 * 1024 * 1024 + 100
PIDS_MAX = 1024
# Page tables, the agent and the jail's bookkeeping, beyond the function's memory.
MEMORY_HEADROOM_MB = 16


class EnvironmentLost(Exception):
    """The jail or its agent is gone or broke the protocol; the environment is unusable."""


@dataclass
class InvokeResult:
    request_id: str
    environment_id: str
    cold: bool
    status: str  # success | error | timeout | failure
    error_type: str | None
    payload: bytes
    duration_ms: float
    billed_duration_ms: int
    max_memory_used_mb: int
    init_duration_ms: float | None
    report: str
    function: str = ""
    logs: list[str] = field(default_factory=list)
    log_truncated: bool = False

    def to_dict(self) -> dict:
        data = {name: getattr(self, name) for name in _RESULT_FIELDS}
        data["payload"] = self.payload.decode("utf-8", "replace")
        data["logs"] = list(self.logs)
        return data

    def json(self):
        return json.loads(self.payload)


_RESULT_FIELDS = tuple(f.name for f in dataclasses.fields(InvokeResult))
# invoke.end carries the result; the envelope has the ids, and the lines came as log events
_EVENT_FIELDS = tuple(
    n for n in _RESULT_FIELDS if n not in ("request_id", "environment_id", "function", "logs", "payload")
)


@dataclass
class Isolation:
    """What the pool could give every environment on this host."""

    cgroup_controllers: tuple[str, ...]
    seccomp_program: bytes | None
    pool_tag: str


class _Outcome:
    """How a phase ended, as seen from the host."""

    def __init__(self, kind: str, error_type: str | None = None, body: bytes = b"", detail: str = ""):
        self.kind = kind  # ok | error | exit | timeout | too_large
        self.error_type = error_type
        self.body = body
        self.detail = detail


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
    ) -> None:
        self.id = uuid.uuid4().hex
        self.spec: FunctionSpec | None = None  # set by assign()
        self.tmp_mb = tmp_mb
        # The jail's /var/task: empty until assign() links the function's code in,
        # so a jail can be started before anyone knows which function it will run.
        self.task_dir = task_root / self.id
        self.runtime_dir = runtime_dir
        self.python = python
        self.isolation = isolation
        self.spawner = spawner
        self.uid = uid
        self._emit = emit
        self.runtime_version = runtime_version
        self.initialization_type = "on-demand"
        self.launched = False
        self.created = time.time()
        self.last_used = time.monotonic()
        self.invocations = 0
        self.state = "new"  # new, idle (frozen), busy, dead
        self.frozen = False
        self.runtime_ready = False
        self.init_duration_ms: float | None = None
        self.proc: subprocess.Popen | None = None
        self.sock: socket.socket | None = None
        self.cgroup: EnvironmentCgroup | None = None
        self.keep_pids: set[int] = set()
        self._oom_kills = 0
        self._reader = frames.FrameReader()
        self._frames: collections.deque = collections.deque()
        self._poll = select.poll()
        self.log = InvocationLog(self.emit)
        # The execution role's credentials, as Lambda puts them in the environment: placeholders
        # (no network reaches AWS from a jail), one set per environment, so that SDK clients build.
        self.credentials = placeholder_credentials()

    # -- events and logs ---------------------------------------------------

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

    # -- control channel ---------------------------------------------------

    def _send(self, header: dict, body: bytes = b"") -> None:
        """Send a frame, reading meanwhile so a chatty agent cannot deadlock us."""
        data = memoryview(frames.encode(header, body))
        deadline = time.monotonic() + AGENT_REPLY_S + len(data) / 50e6
        while data:
            try:
                sent = self.sock.send(data)
                data = data[sent:]
                continue
            except BlockingIOError:
                pass
            except OSError as exc:
                raise EnvironmentLost(f"control channel: {exc}") from None
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise EnvironmentLost("agent stopped reading its control channel")
            self._poll.modify(self.sock, select.POLLIN | select.POLLOUT)
            try:
                for _, mask in self._poll.poll(remaining * 1000):
                    if mask & (select.POLLIN | select.POLLHUP | select.POLLERR):
                        self._read_available()
            finally:
                self._poll.modify(self.sock, select.POLLIN)

    def _read_available(self) -> None:
        try:
            data = self.sock.recv(1 << 20)
        except BlockingIOError:
            return
        except OSError as exc:
            raise EnvironmentLost(f"control channel: {exc}") from None
        if not data:
            raise EnvironmentLost("agent closed its control channel")
        try:
            self._frames.extend(self._reader.feed(data))
        except frames.FrameError as exc:
            raise EnvironmentLost(f"agent broke the protocol: {exc}") from None

    def _recv(self, deadline: float):
        """The next frame, or None at the deadline. Log frames are handled here."""
        while True:
            while self._frames:
                header, body = self._frames.popleft()
                kind = header["t"]
                if kind == "log":
                    self.log.output(body)
                elif kind == "log.dropped":
                    self.log.truncate()
                else:
                    return header, body
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            if self._poll.poll(remaining * 1000):
                self._read_available()

    # -- lifecycle: create and init -----------------------------------------

    def assign(self, spec: FunctionSpec, code_dir: Path, initialization_type: str = "on-demand") -> None:
        """Bind this environment to a function: its code, limits and identity."""
        self.spec = spec
        self.initialization_type = initialization_type
        self._make_task_dir()
        _link_tree(code_dir, self.task_dir)
        self._apply_limits()

    def _make_task_dir(self) -> None:
        self.task_dir.mkdir(mode=0o755, exist_ok=True)
        os.chmod(self.task_dir, 0o755)  # whatever the umask: the jail's uid must read it

    def _apply_limits(self) -> None:
        """The function's memory and CPU share, once both the jail and the function are known."""
        if self.cgroup is not None and self.spec is not None:
            self.cgroup.set_limits(
                memory_bytes=(self.spec.memory_mb + MEMORY_HEADROOM_MB) * 1024 * 1024,
                memory_mb=self.spec.memory_mb,
            )

    def start(self) -> None:
        """Cold start: build the jail unless it is up already, start the runtime, run Init.

        Init is held to 10 s on demand (max(130 s, timeout) when provisioned).
        """
        t0 = time.monotonic()
        self.log.begin(None)
        self.emit("init.start", phase="init", initialization_type=self.initialization_type)
        self.log.platform(report.init_start_line(*self.runtime_version))
        limit = INIT_LIMIT_S
        if self.initialization_type == "provisioned-concurrency":
            limit = max(PROVISIONED_INIT_LIMIT_S, float(self.spec.timeout_s))
        deadline = t0 + limit
        if not self.launched:
            self.launch(deadline)
        outcome = self._run_init(deadline)
        duration = (time.monotonic() - t0) * 1000
        if outcome.kind == "ok":
            self.init_duration_ms = duration
            self.emit("init.function.done", duration_ms=round(duration, 3))
        else:
            status = "timeout" if outcome.kind == "timeout" else "error"
            self._init_failed("init", duration, status, outcome)
        self.log.flush()
        self.state = "busy"

    def launch(self, deadline: float) -> None:
        """Build the jail and start the agent; the runtime waits for an init frame."""
        self._make_task_dir()
        controllers = self.isolation.cgroup_controllers
        if controllers:
            self.cgroup = EnvironmentCgroup(self.isolation.pool_tag, self.id, controllers)
            self.cgroup.create(pids_max=PIDS_MAX)
            self._apply_limits()
            self.cgroup.limit_cpu(False)
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
                tmp_bytes=self.tmp_mb * 1024 * 1024,
                control_fd=jail_sock.fileno(),
                seccomp_fd=seccomp_fd,
                hostname="lambdalab-" + self.id[:8],
            )
            pass_fds = (jail_sock.fileno(),) + ((seccomp_fd,) if seccomp_fd is not None else ())
            self.proc = self.spawner.spawn(argv, pass_fds=pass_fds, uid=self.uid, cgroup=self.cgroup)
        finally:
            jail_sock.close()
            if seccomp_fd is not None:
                os.close(seccomp_fd)
        self.sock = host_sock
        self.sock.setblocking(False)
        self._poll.register(self.sock, select.POLLIN)
        try:
            hello = self._recv(deadline)
        except EnvironmentLost:
            hello = None
        if hello is None or hello[0]["t"] != "hello":
            raise EnvironmentLost(f"the jail did not start: {self._bwrap_error()}")
        self.proc.stderr.close()
        self.keep_pids = self._agent_pids()
        self._confine_runtime()
        self.launched = True

    def _bwrap_error(self) -> str:
        try:
            self.proc.wait(timeout=1)
        except subprocess.TimeoutExpired:
            return "no answer from the agent"
        err = self.proc.stderr.read(4096).decode("utf-8", "replace").strip()
        return err or f"bwrap exited with {self.proc.returncode}"

    def _agent_pids(self) -> set[int]:
        """Host pids of bwrap and the agent, the jail's pid 1 (the chain above the runtime).

        With cgroups, this is also where the jail's membership is made sure of:
        bwrap may have forked before it was moved in. The agent's own child, the
        pre-forked runtime, is idle until the init frame: it is moved under the
        function's CPU quota by _confine_runtime before any user code runs.
        """
        chain, pid = [self.proc.pid], self.proc.pid
        for _ in range(1):
            try:
                children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            except OSError:
                children = []
            if len(children) != 1:
                raise EnvironmentLost("the jail's process tree is not bwrap and the agent")
            pid = int(children[0])
            chain.append(pid)
        found = set(chain)
        if self.cgroup is not None:
            # walk the real process tree: what bwrap forked before its move is not in the groups
            strays = [pid for pid in self._tree_pids() if not self.cgroup.members(pid)]
            if strays:
                self.cgroup.adopt(strays)
                if not all(self.cgroup.members(pid) for pid in strays):
                    raise EnvironmentLost("could not move the jail into its cgroups")
        return found

    def _confine_runtime(self) -> None:
        """Every process but the agent's chain goes under the function's CPU quota."""
        if self.cgroup is None:
            return
        loose = [
            pid for pid in self.cgroup.pids() if pid not in self.keep_pids and not self.cgroup.confined(pid)
        ]
        if loose:
            self.cgroup.confine(loose)

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
        env.update(spec.environment)
        return env

    def _run_init(self, deadline: float) -> _Outcome:
        """Start the runtime and wait until it asks for work (Init is done)."""
        self._confine_runtime()
        self._send(
            {
                "t": "init",
                "runtime": "python" if self.spec.runtime == "python3.11" else "provided",
                "handler": self.spec.handler,
                "env": self.runtime_env(),
            }
        )
        while True:
            frame = self._recv(deadline)
            if frame is None:
                self._kill_runtime()
                return _Outcome("timeout")
            header, body = frame
            kind = header["t"]
            if kind == "runtime.done":
                self.emit("init.runtime.done")
            elif kind == "init.done":
                self.runtime_ready = True
                if self.cgroup is not None:
                    self.cgroup.limit_cpu(True)
                return _Outcome("ok")
            elif kind == "init.error":
                outcome = _Outcome("error", _error_type(header, body, "Runtime.Unknown"), body[:MAX_PAYLOAD])
                self._kill_runtime()  # the runtime exits after reporting; make sure of it
                return outcome
            elif kind == "exit":
                return _Outcome("exit", "Runtime.ExitError", detail=str(header.get("status", ""))[:100])

    def _init_failed(self, phase: str, duration: float, status: str, outcome: _Outcome) -> None:
        error_type = outcome.error_type if status == "error" else None
        self.runtime_ready = False
        self.emit(
            "init.report",
            phase=phase,
            status=status,
            error_type=error_type,
            duration_ms=round(duration, 3),
        )
        self.log.platform(report.init_report_line(duration, phase, status, error_type))

    # -- lifecycle: invoke ----------------------------------------------------

    def invoke(
        self, payload: bytes, *, request_id: str, cold: bool, headers: dict | None = None
    ) -> InvokeResult:
        """One invocation, start to REPORT; the environment is left frozen."""
        spec = self.spec
        self.invocations += 1
        if self.frozen:
            self._thaw(request_id)
        if not cold:
            self.log.begin(request_id)
        self.log.request_id = request_id  # a cold start's log began with its Init
        t0 = time.monotonic()
        deadline = t0 + spec.timeout_s
        if self.cgroup is not None:
            self.cgroup.reset_peak()
        outcome = None
        if not self.runtime_ready:
            outcome = self._suppressed_init(request_id, deadline)
        if outcome is None:
            self._started(request_id, cold)
            outcome = self._run_invoke(payload, request_id, deadline, headers or {})
        duration = (time.monotonic() - t0) * 1000
        if outcome.kind == "exit" and self.cgroup is not None:
            kills = self.cgroup.oom_kills()
            if kills > self._oom_kills:  # the memory cgroup's OOM killer took the runtime
                outcome.error_type = "Runtime.OutOfMemory"
            self._oom_kills = kills
        result = self._finish(request_id, cold, outcome, duration)
        self._freeze()  # a write to cgroup.freeze (~5 µs); the kernel completes it meanwhile
        self.last_used = time.monotonic()
        return result

    def _suppressed_init(self, request_id: str, deadline: float) -> _Outcome | None:
        """Init again inside the invocation, bounded by its timeout (after a reset or failed Init)."""
        t0 = time.monotonic()
        self.emit(
            "init.start", request_id=request_id, phase="invoke", initialization_type=self.initialization_type
        )
        if self.cgroup is not None:
            self.cgroup.limit_cpu(False)
        outcome = self._run_init(deadline)
        duration = (time.monotonic() - t0) * 1000
        if outcome.kind == "ok":
            self.emit(
                "init.function.done", request_id=request_id, phase="invoke", duration_ms=round(duration, 3)
            )
            return None
        if outcome.kind == "timeout":
            self._started(request_id, False)
            return outcome
        self._init_failed("invoke", duration, "error", outcome)
        self._started(request_id, False)
        return outcome

    def _started(self, request_id: str, cold: bool) -> None:
        self.emit("invoke.start", request_id=request_id, cold=cold)
        self.log.platform(report.start_line(request_id))

    def _run_invoke(self, payload: bytes, request_id: str, deadline: float, headers: dict) -> _Outcome:
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
        self._send(header, payload)
        while True:
            frame = self._recv(deadline)
            if frame is None:
                self._kill_runtime()
                return _Outcome("timeout")
            header, body = frame
            kind = header["t"]
            if kind in ("response", "error", "too_large") and header.get("id") != request_id:
                continue  # a stale or forged answer: not this invocation's
            if kind == "response":
                return _Outcome("ok", body=body)
            if kind == "error":
                return _Outcome("error", _error_type(header, body, "Runtime.Unknown"), body[:MAX_PAYLOAD])
            if kind == "too_large":
                return _Outcome("too_large", "Function.ResponseSizeTooLarge")
            if kind == "exit":
                self.runtime_ready = False
                return _Outcome("exit", "Runtime.ExitError", detail=str(header.get("status", ""))[:100])

    def _finish(self, request_id: str, cold: bool, outcome: _Outcome, duration: float) -> InvokeResult:
        spec = self.spec
        self.log.flush()
        status, error_type, payload, report_status = "success", None, outcome.body, None
        if outcome.kind == "timeout":
            status, error_type, report_status = "timeout", "Sandbox.Timedout", "timeout"
            duration = float(spec.timeout_ms)  # CloudWatch reports the limit: "Duration: 3000.00 ms"
            message = f"RequestId: {request_id} Error: Task timed out after {spec.timeout_s:.2f} seconds"
            self.log.function_line(report.timeout_line(request_id, spec.timeout_s))
            payload = _error_body(error_type, message)
        elif outcome.kind == "exit":
            status, error_type, report_status = "error", outcome.error_type, "error"
            reason = f"Runtime exited with error: {outcome.detail}"
            if outcome.detail == "exit status 0":
                reason = "Runtime exited without providing a reason"
            message = f"RequestId: {request_id} Error: {reason}"
            self.log.function_line(message)
            self.log.function_line("Runtime.ExitError")
            payload = _error_body(error_type, message)
        elif outcome.kind == "too_large":
            status, error_type = "error", outcome.error_type
            payload = _error_body(
                error_type,
                f"Response payload size exceeded maximum allowed payload size ({MAX_PAYLOAD} bytes).",
            )
        elif outcome.kind == "error":
            status, error_type = "error", outcome.error_type
            if not self.runtime_ready:  # the error came from a failed (suppressed) init
                report_status = "error"
        init_ms = self.init_duration_ms if cold else None
        timeout_ms = spec.timeout_ms if outcome.kind == "timeout" else None
        billed = report.billed_ms(duration, init_ms, timeout_ms)
        peak = self.cgroup.peak_bytes() if self.cgroup is not None else self._peak_rss()
        max_mb = math.ceil(peak / (1024 * 1024)) if peak else 0
        self.log.platform(report.end_line(request_id))
        line = report.report_line(
            request_id,
            duration_ms=duration,
            billed_ms=billed,
            memory_mb=spec.memory_mb,
            max_memory_mb=max_mb,
            init_ms=init_ms,
            status=report_status,
            error_type=error_type if report_status == "error" else None,
        )
        self.log.platform(line)
        result = InvokeResult(
            request_id=request_id,
            environment_id=self.id,
            cold=cold,
            status=status,
            error_type=error_type,
            payload=payload,
            duration_ms=round(duration, 3),
            billed_duration_ms=billed,
            max_memory_used_mb=max_mb,
            init_duration_ms=round(init_ms, 3) if init_ms is not None else None,
            report=line,
            function=spec.key,
            logs=list(self.log.lines),
            log_truncated=self.log.truncated,
        )
        fields = {name: getattr(result, name) for name in _EVENT_FIELDS}
        fields["payload"] = result.payload.decode("utf-8", "replace")
        self.emit("invoke.end", request_id=request_id, **fields)
        return result

    # -- freeze, thaw, reset ------------------------------------------------

    def _freeze(self) -> None:
        if self.cgroup is not None and self.cgroup.freezes:
            self.cgroup.request_freeze()
        else:
            self._signal_jail(signal.SIGSTOP)
        self.frozen = True
        self.emit("freeze")

    def _thaw(self, request_id: str | None = None) -> None:
        if self.cgroup is not None and self.cgroup.freezes:
            self.cgroup.thaw()
        else:
            self._signal_jail(signal.SIGCONT)
        self.frozen = False
        self.emit("thaw", request_id=request_id)

    def _signal_jail(self, sig: int) -> None:
        """Fallback freezer: signal every process in the jail, agent included."""
        for pid in self.cgroup.pids() if self.cgroup is not None else self._tree_pids():
            if pid != self.proc.pid:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass

    def _peak_rss(self) -> int:
        """Without a memory cgroup: the runtime's processes' peak RSS (VmHWM), summed."""
        total = 0
        for pid in self._tree_pids():
            if pid in self.keep_pids:
                continue
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        total += int(line.split()[1]) * 1024
            except OSError:
                pass
        return total

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

    def _kill_runtime(self) -> None:
        """Kill the runtime and everything it started, from outside; the jail stays."""
        self.runtime_ready = False
        if self.cgroup is not None:
            # Unthrottled, so that a runtime which spent the quota cannot slow its own cleanup;
            # the re-init that follows runs unthrottled anyway.
            self.cgroup.limit_cpu(False)
            self.cgroup.kill(keep=self.keep_pids)
        self._send({"t": "reset"})
        deadline = time.monotonic() + RESET_REPLY_S
        while True:
            frame = self._recv(deadline)
            if frame is None:
                raise EnvironmentLost("agent did not confirm the reset")
            if frame[0]["t"] == "reset.done":
                break
        self._confine_runtime()  # the agent's fresh pre-fork: under the quota, and frozen with the rest
        self.emit("reset", request_id=self.log.request_id, reason="runtime killed")

    # -- shutdown -----------------------------------------------------------

    def begin_shutdown(self, reason: str) -> None:
        """Ask the agent to stop the runtime (SIGTERM, 2 s grace); see finish_shutdown."""
        self.shutdown_reason = reason
        if self.state == "dead" or self.proc is None:
            return
        try:
            if self.frozen:
                self._thaw()
            self._send({"t": "shutdown", "grace_ms": int(SHUTDOWN_GRACE_S * 1000)})
        except EnvironmentLost:
            pass

    def finish_shutdown(self, deadline: float) -> None:
        if self.state == "dead":
            return
        if self.proc is not None:
            try:
                self.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        self.destroy()
        self.emit("shutdown", reason=getattr(self, "shutdown_reason", "request"))

    def shutdown(self, reason: str) -> None:
        self.begin_shutdown(reason)
        self.finish_shutdown(time.monotonic() + SHUTDOWN_GRACE_S + 0.5)

    def destroy(self) -> None:
        """Kill whatever is left, now. Safe to call twice."""
        if self.state == "dead":
            return
        self.state = "dead"
        if self.cgroup is not None:
            self.cgroup.thaw()
        if self.proc is not None:
            if self.proc.poll() is None:
                if self.cgroup is None:
                    self._signal_jail(signal.SIGCONT)
                self.proc.kill()  # bwrap's pid 1 follows it, and with it the pid namespace
                try:
                    self.proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    pass
            if self.proc.stderr and not self.proc.stderr.closed:
                self.proc.stderr.close()
        if self.cgroup is not None:
            self.cgroup.destroy()
        shutil.rmtree(self.task_dir, ignore_errors=True)
        if self.sock is not None:
            try:
                self._poll.unregister(self.sock)
            except (KeyError, ValueError):
                pass
            self.sock.close()


def placeholder_credentials() -> dict[str, str]:
    """Credentials shaped like an execution role's (ASIA... key id, session token), marked as fake."""
    tag = uuid.uuid4().hex.upper()
    return {
        "AWS_ACCESS_KEY_ID": "ASIALAMBDALAB" + tag[:7],
        "AWS_SECRET_ACCESS_KEY": "lambdalab-placeholder-not-a-secret-" + tag[7:12].lower(),
        "AWS_SESSION_TOKEN": "lambdalab-placeholder-session-token-" + tag.lower(),
    }


def _trace_id() -> str:
    ids = os.urandom(20).hex()
    return f"Root=1-{int(time.time()):08x}-{ids[:24]};Parent={ids[24:]};Sampled=0"


def _link_tree(source: Path, target: Path) -> None:
    """Fill ``target`` with hard links to the code cache (a copy across filesystems)."""
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


def _error_body(error_type: str, message: str) -> bytes:
    return json.dumps({"errorType": error_type, "errorMessage": message}).encode()


def _error_type(header: dict, body: bytes, default: str) -> str:
    """The error type: the runtime's body says it; the header is the fallback."""
    try:
        doc = json.loads(body)
        value = doc.get("errorType") if isinstance(doc, dict) else None
        if isinstance(value, str) and 0 < len(value) <= 128:
            return value
    except ValueError:
        pass
    value = header.get("error_type")
    return value[:128] if isinstance(value, str) and value else default
