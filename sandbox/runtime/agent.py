"""The agent: LambdaLab's in-jail init process, the counterpart of Lambda's RAPID.

It runs as pid 1 of the jail's pid namespace (bwrap ``--as-pid-1``), with an
empty environment and one inherited socket to the host. As the namespace's
init it cannot be killed or stopped from inside (the kernel drops SIGKILL and
SIGSTOP sent to a namespace's init by its own members, and every signal it has
no handler for), and it makes itself non-dumpable, so user code, though it
runs as the same uid, can neither open its ``/proc/1/mem`` nor take its
descriptors. It reaps the orphans the runtime leaves behind. It serves the real Runtime
API on the jail's own loopback, starts the runtime (our Python runtime is
forked from this process, so it shares its imported pages; any other runtime
is exec'd from /var/task/bootstrap), collects the runtime's output and relays
every state change to the host as a frame.

It is single-threaded (one selector loop), so forking the runtime is safe.
Only the standard library is used: this file runs inside the jail.
"""

# Imports are what a cold start waits for: only C modules and our own, no
# selectors/socket/signal/json/re (each pulls in enum, re, functools ...).
import _signal as signal
import _socket as socket
import gc
import os
import resource
import select
import sys
import time

from . import (
    bootstrap,  # pre-imported: forked runtimes share its pages
    contract,
    fastjson,
    frames,
    http,
)

EVENT_READ, EVENT_WRITE = select.EPOLLIN, select.EPOLLOUT
EBADF = 9
PR_SET_DUMPABLE = 4


def set_dumpable(value: int) -> None:
    """prctl(PR_SET_DUMPABLE): _ctypes alone (~1 ms), not the ctypes package (~10 ms of imports)."""
    import _ctypes

    prctl = _ctypes.dlsym(_ctypes.dlopen(None, 0), "prctl")
    if _ctypes.call_function(prctl, (PR_SET_DUMPABLE, value, 0, 0, 0)) != 0:
        raise OSError("prctl(PR_SET_DUMPABLE) failed")


class Key:
    __slots__ = ("fd", "data")

    def __init__(self, fd, data):
        self.fd = fd
        self.data = data


class Selector:
    """The slice of ``selectors.EpollSelector`` the agent needs, on ``select.epoll``."""

    def __init__(self):
        self.epoll = select.epoll()
        self.keys = {}

    @staticmethod
    def _fd(obj):
        return obj if isinstance(obj, int) else obj.fileno()

    def register(self, obj, events, data):
        fd = self._fd(obj)
        self.epoll.register(fd, events)
        self.keys[fd] = Key(fd, data)

    def modify(self, obj, events, data):
        fd = self._fd(obj)
        self.epoll.modify(fd, events)
        self.keys[fd].data = data

    def unregister(self, obj):
        fd = self._fd(obj)
        if self.keys.pop(fd, None) is None:
            raise KeyError(fd)
        self.epoll.unregister(fd)

    def select(self, timeout=-1):
        ready = []
        for fd, mask in self.epoll.poll(timeout):
            key = self.keys.get(fd)
            if key is not None:
                if mask & (select.EPOLLHUP | select.EPOLLERR):
                    mask |= EVENT_READ  # let the reader see EOF or the error
                ready.append((key, mask))
        return ready


API_HOST, API_PORT = contract.API_HOST, contract.API_PORT
# Our runtime uses the abstract Unix socket (less CPU per call under a 128 MB function's
# 7% CPU quota than loopback TCP); other runtimes use TCP.
API_UNIX = contract.API_UNIX
PREFIX = contract.API_PREFIX
MAX_PAYLOAD = contract.MAX_PAYLOAD
MAX_CONNECTIONS = 32
# Output forwarded per phase (one byte more than the host keeps, so it sees the cut).
LOG_LIMIT = contract.LOG_LIMIT + 1
READ_CHUNK = 64 * 1024
# Datagrams read from the state socket per forward: its queue is bounded by the kernel, and a
# function flooding it only loses its own State inspector's view.
STATE_DRAIN = 1024
SIGNAL_NAMES = {
    signal.SIGKILL: "killed",
    signal.SIGSEGV: "segmentation fault",
    signal.SIGABRT: "aborted",
    signal.SIGTERM: "terminated",
    signal.SIGBUS: "bus error",
    signal.SIGILL: "illegal instruction",
    signal.SIGFPE: "floating point exception",
    signal.SIGINT: "interrupt",
    signal.SIGHUP: "hangup",
    signal.SIGPIPE: "broken pipe",
    signal.SIGQUIT: "quit",
    signal.SIGXCPU: "CPU time limit exceeded",
    signal.SIGXFSZ: "file size limit exceeded",
}


def exit_description(status: int) -> str:
    """Describe a wait status as Lambda does ('exit status 1', 'signal: killed')."""
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        return "signal: " + SIGNAL_NAMES.get(sig, f"signal {sig}")
    return f"exit status {os.WEXITSTATUS(status)}"


class Connection(http.Connection):
    """One HTTP/1.1 keep-alive connection from the runtime: its protocol state and its socket."""

    def __init__(self, sock) -> None:
        super().__init__()
        self.sock = sock


class Runtime:
    def __init__(
        self, pid: int, pidfd: int, log_fd: int, status_fd: int | None, cfg_fd: int | None, state_sock
    ) -> None:
        self.pid = pid
        self.pidfd = pidfd
        self.log_fd = log_fd
        self.status_fd = status_fd
        self.cfg_fd = cfg_fd  # open until the runtime is started
        # Our Python runtime's description of its module before each freeze (snapshot.py): a
        # datagram socket of its own, not the Runtime API, so that no other runtime sees it.
        self.state_sock = state_sock
        self.status = 0  # wait status, once reaped


class Agent:
    def __init__(self, ctrl_fd: int) -> None:
        self.ctrl = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM, 0, ctrl_fd)
        self.ctrl.setblocking(True)
        self.reader = frames.FrameReader()
        self.sel = Selector()
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((API_HOST, API_PORT))
        self.listener.listen(16)
        self.listener.setblocking(False)
        self.unix_listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.unix_listener.bind(API_UNIX)
        self.unix_listener.listen(16)
        self.unix_listener.setblocking(False)
        self.sel.register(self.unix_listener, EVENT_READ, "accept-unix")
        self.sel.register(self.ctrl, EVENT_READ, "ctrl")
        self.sel.register(self.listener, EVENT_READ, "accept")
        self.conns: dict[int, Connection] = {}
        self.runtime: Runtime | None = None
        self.config: dict = {}
        # none: no runtime; init: runtime starting; ready: waiting for work;
        # busy: an invocation is out; failed: init reported an error.
        self.state = "none"
        self.parked: Connection | None = None
        self.pending: tuple[dict, bytes] | None = None
        self.current_id: str | None = None
        self.log_sent = 0
        self.log_dropped = 0
        self.shutting_down = False

    # -- host channel -------------------------------------------------------

    def send(self, header: dict, body: bytes = b"", before: bytes = b"") -> None:
        """One frame to the host (``before``: frames already encoded, sent ahead of it in the same write)."""
        data = frames.encode(header, body)
        try:
            if before:  # one write for the usual small result; no copy of a large one
                if len(data) < READ_CHUNK:
                    data = before + data
                else:
                    self.ctrl.sendall(before)
            self.ctrl.sendall(data)
        except OSError:
            os._exit(0)  # the host is gone; nothing left to serve

    def on_ctrl(self) -> None:
        try:
            data = self.ctrl.recv(1 << 20)
        except BlockingIOError:
            return
        if not data:
            self.kill_all()
            os._exit(0)
        for header, body in self.reader.feed(data):
            kind = header["t"]
            if kind == "init":
                self.start_runtime(header)
            elif kind == "invoke":
                self.pending = (header, body)
                self.dispatch()
            elif kind == "reset":
                self.reset()
            elif kind == "shutdown":
                self.shutdown(header.get("grace_ms", 0))

    # -- runtime process ----------------------------------------------------

    def prefork(self) -> None:
        """Fork the next runtime now, idle until its config arrives.

        The fork is then off the cold path, and the host can move the child
        into the function's CPU group (the agent itself is not held to the
        function's CPU quota) before any user code runs.
        """
        cfg_r, cfg_w = os.pipe()
        log_r, log_w = os.pipe()
        status_r, status_w = os.pipe()
        state_r, state_w = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        pid = os.fork()
        if pid == 0:
            os.close(cfg_w)
            os.close(log_r)
            os.close(status_r)
            self.become_runtime(cfg_r, log_w, status_w, state_w.fileno())
        for fd in (cfg_r, log_w, status_w):
            os.close(fd)
        state_w.close()
        state_r.setblocking(False)
        os.set_blocking(log_r, False)
        pidfd = os.pidfd_open(pid)
        self.runtime = Runtime(pid, pidfd, log_r, status_r, cfg_w, state_r)
        self.sel.register(log_r, EVENT_READ, "log")
        self.sel.register(pidfd, EVENT_READ, "exit")
        self.sel.register(status_r, EVENT_READ, "status")

    def start_runtime(self, config: dict) -> None:
        if self.runtime is not None and self.runtime.cfg_fd is None:
            self.reset(report=False)  # a runtime is running: a new init replaces it
        if self.runtime is None:
            self.prefork()
        self.config = config
        self.state = "init"
        self.pending = None  # an event meant for a runtime that died is not replayed to the next
        self.begin_phase()
        rt = self.runtime
        data = fastjson.dumps(config).encode()
        while data:
            data = data[os.write(rt.cfg_fd, data) :]
        os.close(rt.cfg_fd)
        rt.cfg_fd = None

    def become_runtime(self, cfg_r: int, log_w: int, status_w: int, state_w: int) -> None:
        """In the forked child: drop the agent's descriptors, wait for a config, become the runtime."""
        try:
            devnull = os.open("/dev/null", os.O_RDONLY)
            os.dup2(devnull, 0)
            os.dup2(log_w, 1)
            os.dup2(log_w, 2)
            keep = {0, 1, 2, status_w, cfg_r, state_w}
            for name in os.listdir("/proc/self/fd"):
                fd = int(name)
                if fd not in keep:
                    try:
                        os.close(fd)
                    except OSError:
                        pass
            for sig in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, signal.SIG_DFL)
            os.setsid()
            set_dumpable(1)  # the agent is not; the function's own processes are, as anywhere
            try:  # the runtime, not the agent, is what the OOM killer should take
                with open("/proc/self/oom_score_adj", "w") as f:
                    f.write("1000")
            except OSError:
                pass
            chunks = []
            while True:
                chunk = os.read(cfg_r, 65536)
                if not chunk:
                    break
                chunks.append(chunk)
            os.close(cfg_r)
            if not chunks:
                os._exit(0)  # the agent went away without starting us
            config = fastjson.loads(b"".join(chunks))
            os.environ.clear()
            os.environ.update(config["env"])
            os.chdir(config.get("task_root", "/var/task"))
            if config["runtime"] == "python":
                # as a fresh interpreter (awslambdaric's) has them: a write to a connection the
                # other end closed raises BrokenPipeError, rather than killing the runtime
                signal.signal(signal.SIGPIPE, signal.SIG_IGN)
                signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
                bootstrap.run_forked(config["handler"], status_w, state_w)
                os._exit(0)
            os.close(status_w)
            os.close(state_w)  # another runtime describes nothing
            for candidate in ("/var/task/bootstrap", "/opt/bootstrap"):
                if os.access(candidate, os.X_OK):
                    os.execve(candidate, [candidate], config["env"])
            bootstrap.report_init_error(
                "Runtime.InvalidEntrypoint",
                "Couldn't find valid bootstrap(s): [/var/task/bootstrap /opt/bootstrap]",
            )
            os._exit(1)
        except SystemExit as exc:
            os._exit(exc.code if isinstance(exc.code, int) else 1)
        except BaseException as exc:  # noqa: BLE001 - last words of a child
            try:
                os.write(2, f"runtime failed to start: {exc!r}\n".encode())
            finally:
                os._exit(127)

    def on_status(self) -> None:
        rt = self.runtime
        data = os.read(rt.status_fd, 64)
        self.sel.unregister(rt.status_fd)
        os.close(rt.status_fd)
        rt.status_fd = None
        if data:
            self.send({"t": "runtime.done"})

    def on_exit(self) -> None:
        rt = self.runtime
        try:
            _, status = os.waitpid(rt.pid, 0)
        except ChildProcessError:  # already collected by reap()
            status = rt.status
        self.drain_logs()
        self.release_runtime()
        if self.state != "none":
            self.flush_dropped()
            self.send({"t": "exit", "status": exit_description(status), "state": self.state})
        self.state = "none"
        self.current_id = None
        self.pending = None
        if not self.shutting_down:
            self.prefork()

    def release_runtime(self) -> None:
        rt = self.runtime
        if rt is None:
            return
        for fd in (rt.pidfd, rt.log_fd, rt.status_fd, rt.cfg_fd):
            if fd is not None:
                try:
                    self.sel.unregister(fd)
                except (KeyError, ValueError):
                    pass
                os.close(fd)
        rt.state_sock.close()
        self.runtime = None
        if self.parked is not None:
            self.drop(self.parked)
        for conn in list(self.conns.values()):
            self.drop(conn)

    def kill_all(self, sig: int = signal.SIGKILL) -> None:
        """Signal every process of the jail but ourselves (pid 1)."""
        me = os.getpid()
        for name in os.listdir("/proc"):
            if name.isdigit() and int(name) not in (1, me):
                try:
                    os.kill(int(name), sig)
                except OSError:
                    pass

    def reset(self, report: bool = True) -> None:
        """Kill the runtime and all it started; the jail, /tmp and agent stay."""
        rt = self.runtime
        for _ in range(400):  # bounded: ~1 s
            self.kill_all()
            self.reap()
            if not self.others_alive():
                break
            time.sleep(0.0005)
        if rt is not None:
            try:
                os.waitpid(rt.pid, 0)
            except ChildProcessError:
                pass
            self.drain_logs()
            self.release_runtime()
        self.state = "none"
        self.current_id = None
        self.pending = None
        self.prefork()
        if report:
            self.send({"t": "reset.done"})

    def reap(self) -> None:
        """Collect our dead children: the runtime, and the orphans reparented to us as pid 1."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if self.runtime is not None and pid == self.runtime.pid:
                self.runtime.status = status

    def others_alive(self) -> bool:
        """Is any process but pid 1 and us still running (zombies aside)?"""
        me = os.getpid()
        for name in os.listdir("/proc"):
            if name.isdigit() and int(name) not in (1, me):
                try:
                    with open(f"/proc/{name}/stat", "rb") as f:
                        state = f.read().rsplit(b")", 1)[1].split()[0]
                except (OSError, IndexError):
                    continue
                if state not in (b"Z", b"X"):
                    return True
        return False

    def shutdown(self, grace_ms: int) -> None:
        """SIGTERM and a grace only when one is given (with extensions); else SIGKILL at once."""
        self.shutting_down = True
        rt = self.runtime
        if rt is not None and grace_ms > 0:
            self.kill_all(signal.SIGTERM)
            waiter = select.poll()
            waiter.register(rt.pidfd, select.POLLIN)
            waiter.poll(grace_ms)
            self.drain_logs()
        self.kill_all()
        self.send({"t": "bye"})
        os._exit(0)

    # -- logs ---------------------------------------------------------------

    def begin_phase(self) -> None:
        self.log_sent = 0
        self.log_dropped = 0

    def on_log(self) -> None:
        rt = self.runtime
        try:
            data = os.read(rt.log_fd, READ_CHUNK)
        except BlockingIOError:
            return
        if not data:
            self.sel.unregister(rt.log_fd)
            os.close(rt.log_fd)
            rt.log_fd = None
            return
        self.forward_log(data)

    def forward_log(self, data: bytes) -> None:
        room = LOG_LIMIT - self.log_sent
        if room > 0:
            chunk = data[:room]
            self.log_sent += len(chunk)
            self.send({"t": "log"}, chunk)
        self.log_dropped += max(0, len(data) - max(room, 0))

    def drain_logs(self) -> None:
        """Forward what the runtime wrote before its last API call, in order."""
        rt = self.runtime
        if rt is None or rt.log_fd is None:
            return
        for _ in range(64):  # bounded: a writer in the background could go on forever
            try:
                data = os.read(rt.log_fd, READ_CHUNK)
            except BlockingIOError:
                return
            if not data:
                return
            self.forward_log(data)

    def state_frame(self) -> bytes:
        """The runtime's latest description of its module, as a frame to send the host ahead of
        the result or init.done that lets it freeze; empty and oversized datagrams are dropped."""
        rt = self.runtime
        if rt is None:
            return b""
        latest = None
        for _ in range(STATE_DRAIN):
            try:
                data = rt.state_sock.recv(contract.STATE_MAX_BYTES + 1)
            except OSError:  # nothing more queued (BlockingIOError), or closed
                break
            if 0 < len(data) <= contract.STATE_MAX_BYTES:
                latest = data
        return frames.encode({"t": "state"}, latest) if latest is not None else b""

    def flush_dropped(self) -> None:
        if self.log_dropped:
            self.send({"t": "log.dropped", "bytes": self.log_dropped})
            self.log_dropped = 0

    # -- Runtime API --------------------------------------------------------

    def on_accept(self, listener) -> None:
        try:
            fd, _ = listener._accept()
        except BlockingIOError:
            return
        sock = socket.socket(listener.family, socket.SOCK_STREAM, 0, fd)
        if len(self.conns) >= MAX_CONNECTIONS:
            sock.close()
            return
        sock.setblocking(False)
        if listener.family == socket.AF_INET:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = Connection(sock)
        self.conns[sock.fileno()] = conn
        self.sel.register(sock, EVENT_READ, conn)

    def on_readable(self, conn: Connection) -> None:
        if conn.blocked():  # not read until its answers drain; a send shows a hangup or an error
            self.flush(conn)
            return
        try:
            data = conn.sock.recv(READ_CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self.drop(conn)
            return
        conn.feed(data)
        self.parse(conn)

    def parse(self, conn: Connection) -> None:
        while conn.sock.fileno() >= 0:
            item = conn.next()
            if item is None:
                if conn.outbuf:  # a 100 Continue, or answers held back
                    self.flush(conn)
                return
            if isinstance(item, http.Refusal):
                if item.status == 413:
                    self.too_large(conn, item)
                else:
                    self.reply(conn, item.status, item.body, close=item.close)
                continue
            method, path, headers, body = item
            self.route(conn, method, path.split("?", 1)[0], headers, body)
            if conn is self.parked:
                if conn.outbuf:  # a 100 Continue: sent now, not with the answer
                    self.flush(conn)
                return

    def route(self, conn: Connection, method: str, path: str, headers: dict, body: bytes) -> None:
        if method == "GET" and path == PREFIX + "/invocation/next":
            return self.on_next(conn)
        if method == "POST" and path == PREFIX + "/init/error":
            return self.on_init_error(conn, headers, body)
        if method == "POST" and path.startswith(PREFIX + "/invocation/"):
            request_id, _, verb = path[len(PREFIX + "/invocation/") :].partition("/")
            if verb in ("response", "error"):
                return self.on_result(conn, request_id, verb, headers, body)
        self.reply(conn, 404, {"errorMessage": f"no route for {method} {path}", "errorType": "NotFound"})

    def on_next(self, conn: Connection) -> None:
        if self.state == "init":
            self.state = "ready"
            self.flush_dropped()
            self.send({"t": "init.done"}, before=self.state_frame())
        elif self.state == "failed":
            return self.reply(conn, 403, transition_error("initError", "next"))
        elif self.state == "busy":
            return self.reply(conn, 403, transition_error("invoke", "next"))
        if self.parked is not None and self.parked is not conn:
            self.drop(self.parked)
        self.parked = conn
        self.dispatch()

    def dispatch(self) -> None:
        if self.pending is None or self.parked is None or self.state != "ready":
            return
        header, body = self.pending
        self.pending = None
        conn, self.parked = self.parked, None
        self.reap()  # orphans of the runtime are ours (we are pid 1): no zombie outlives a call
        self.state = "busy"
        self.current_id = header["id"]
        self.begin_phase()
        extra = [
            ("Lambda-Runtime-Aws-Request-Id", header["id"]),
            ("Lambda-Runtime-Deadline-Ms", str(header["deadline_ms"])),
            ("Lambda-Runtime-Invoked-Function-Arn", header["arn"]),
            ("Lambda-Runtime-Trace-Id", header.get("trace_id", "")),
        ]
        for name, key in (
            ("Lambda-Runtime-Client-Context", "client_context"),
            ("Lambda-Runtime-Cognito-Identity", "cognito_identity"),
        ):
            if header.get(key):
                extra.append((name, header[key]))
        self.write_response(conn, 200, body, header.get("content_type", "application/json"), extra)

    def on_result(self, conn, request_id, verb, headers, body) -> None:
        if self.state != "busy":
            return self.reply(conn, 403, transition_error(self.state, verb))
        if request_id != self.current_id:
            return self.reply(
                conn, 400, {"errorMessage": "Invalid request ID", "errorType": "InvalidRequestID"}
            )
        self.reply(conn, 202, {"status": "OK"})
        self.drain_logs()
        self.flush_dropped()
        self.state = "ready"
        self.current_id = None
        state = self.state_frame()
        if verb == "response":
            self.send(
                {"t": "response", "id": request_id, "content_type": headers.get("content-type", "")},
                body,
                before=state,
            )
        else:
            self.send({"t": "error", "id": request_id, "error_type": error_type(headers)}, body, before=state)

    def on_init_error(self, conn, headers, body) -> None:
        if self.state != "init":
            return self.reply(conn, 403, transition_error(self.state, "initError"))
        self.reply(conn, 202, {"status": "OK"})
        self.drain_logs()
        self.flush_dropped()
        self.state = "failed"
        self.send({"t": "init.error", "error_type": error_type(headers)}, body[:MAX_PAYLOAD])

    def too_large(self, conn: Connection, refusal: http.Refusal) -> None:
        self.reply(conn, 413, refusal.body, close=refusal.close)
        if self.state == "busy" and refusal.path.endswith("/response"):
            self.drain_logs()
            self.flush_dropped()
            self.state = "ready"
            state = self.state_frame()
            self.send({"t": "too_large", "id": self.current_id, "size": refusal.length}, before=state)
            self.current_id = None

    # -- HTTP output --------------------------------------------------------

    def reply(self, conn: Connection, status: int, obj: dict, close: bool = False) -> None:
        self.write_response(conn, status, fastjson.dumps(obj).encode(), "application/json", [], close)

    def write_response(self, conn, status, body, content_type, extra, close=False) -> None:
        conn.write(status, body, content_type, extra, close)
        self.flush(conn)

    def flush(self, conn: Connection) -> None:
        try:
            while conn.outbuf:
                sent = conn.sock.send(conn.outbuf)
                del conn.outbuf[:sent]
        except BlockingIOError:
            # Over the output bound, the connection is not read (nor parsed) until it drains.
            events = EVENT_WRITE if conn.blocked() else EVENT_READ | EVENT_WRITE
            self.sel.modify(conn.sock, events, conn)
            return
        except OSError:
            self.drop(conn)
            return
        if conn.close_after_write:
            self.drop(conn)
        else:
            self.sel.modify(conn.sock, EVENT_READ, conn)
            if conn.stalled:  # requests held back while the output was over its bound
                self.parse(conn)

    def drop(self, conn: Connection) -> None:
        if conn is self.parked:
            self.parked = None
        fd = conn.sock.fileno()
        if fd >= 0:
            try:
                self.sel.unregister(conn.sock)
            except (KeyError, ValueError):
                pass
            self.conns.pop(fd, None)
            conn.sock.close()

    # -- loop ---------------------------------------------------------------

    def run(self) -> None:
        self.send({"t": "hello", "pid": os.getpid()})
        while True:
            for key, mask in self.sel.select():
                if self.sel.keys.get(key.fd) is not key:
                    continue  # unregistered by an earlier handler of this batch (a stale event)
                what = key.data
                if what == "ctrl":
                    self.on_ctrl()
                elif what == "accept":
                    self.on_accept(self.listener)
                elif what == "accept-unix":
                    self.on_accept(self.unix_listener)
                elif what == "log":
                    if self.runtime is not None and self.runtime.log_fd is not None:
                        self.on_log()
                elif what == "exit":
                    if self.runtime is not None and self.runtime.pidfd == key.fd:
                        self.on_exit()
                elif what == "status":
                    if self.runtime is not None and self.runtime.status_fd is not None:
                        self.on_status()
                elif isinstance(what, Connection):
                    if what.sock.fileno() < 0:
                        continue
                    if mask & EVENT_WRITE:
                        self.flush(what)
                    if mask & EVENT_READ and what.sock.fileno() >= 0:
                        self.on_readable(what)


def transition_error(src: str, dst: str) -> dict:
    return {
        "errorMessage": f"State transition from {src} to {dst} failed for runtime. Error: invalid transition",
        "errorType": "InvalidStateTransition",
    }


def error_type(headers: dict) -> str:
    """RAPID keeps ``(Runtime|Function|Extension).[A-Z][a-zA-Z]+``, else ``Runtime.Unknown``."""
    value = headers.get("lambda-runtime-function-error-type", "")
    if not value:
        return ""
    category, _, reason = value.partition(".")
    valid = (
        category in ("Runtime", "Function", "Extension")
        and len(reason) > 1
        and reason[0].isascii()
        and reason[0].isupper()
        and reason.isascii()
        and reason.isalpha()
    )
    return value if valid else "Runtime.Unknown"


def limit_resources() -> None:
    """Lambda's per-environment limits: 1,024 processes/threads and descriptors."""
    for res, value in (
        (resource.RLIMIT_NOFILE, 1024),
        (resource.RLIMIT_NPROC, 1024),
        (resource.RLIMIT_CORE, 0),
    ):
        try:
            resource.setrlimit(res, (value, value))
        except (ValueError, OSError):
            pass


def main() -> None:
    ctrl_fd = int(sys.argv[1])
    # Nothing but the control socket may stay open (bwrap's own are gone by now).
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd > 2 and fd != ctrl_fd:
            try:
                os.close(fd)
            except OSError as exc:
                if exc.errno != EBADF:
                    raise
    devnull = os.open("/dev/null", os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)
    set_dumpable(0)  # before anything else can run beside us: /proc/1/mem stays closed to user code
    limit_resources()
    gc.freeze()  # keep the agent's objects out of the collector: forks stay shared
    agent = Agent(ctrl_fd)
    agent.prefork()
    agent.run()
