"""The lab service: a small key-value server that a function's jails reach through one Unix socket.

Lambda functions open a database connection in Init and reuse it across warm
calls; a jail has no network, so the lab gives it something to connect to. Not
part of Lambda: a lab addition, for the "connection reuse" lesson.

- **One store per function** (``FunctionSpec.function_id``, else the version's
  key): every revision and every environment of a function share it, two
  functions never meet. It counts the connections made to it.
- **One narrow path per environment**: the environment's own folder on the
  host, ``<state>/service/<pool>/<env>/`` (root's, 0755, in a 0711 folder),
  holds one listening socket, ``kv.sock`` (the environment's uid's, 0600), and
  is bound read-only at ``/var/lab`` in the jail (``SOCKET_PATH``, in the
  variable ``LAB_SERVICE_SOCKET``). A jail is built before anyone knows which
  function it will run (stem cells), so the folder is mounted empty and the
  socket appears in it when the environment is assigned to a function. A
  connection is known by the socket it came through, so it is always
  attributed to its environment, root or not (no ``SO_PEERCRED`` guessing).
- **One thread** (a selector loop) serves every socket of a pool; it parses
  lines and never runs anything of the user's. Everything is bounded (the
  constants below); a client that breaks a bound is answered ``ERR ...`` and
  disconnected, and no client can stall another.

Protocol: one command per line (``\\n``, an optional ``\\r`` before it), one reply
line per command::

    PING            PONG
    SET key value   OK            (the value is the rest of the line)
    GET key         VALUE value | NONE
    INCR key        the new number (a missing key counts as 0)
    DEL key         1 | 0
    STATS           {"connections_opened": ..., "connections_open": ..., "commands": ..., ...}
    (anything else) ERR <why>
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import selectors
import shutil
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

from . import events, jail

log = logging.getLogger(__name__)

SOCKET_DIR = "/var/lab"  # where the jail sees its environment's folder (read-only)
SOCKET_NAME = "kv.sock"
SOCKET_PATH = f"{SOCKET_DIR}/{SOCKET_NAME}"
SOCKET_VARIABLE = "LAB_SERVICE_SOCKET"  # set in every environment that has the service

MAX_CONNECTIONS = 16  # open at once, per function; more are answered ERR and closed
MAX_CONNECTIONS_TOTAL = 512  # open at once, all functions: the process's descriptors are not theirs
MAX_KEYS = 256  # per function
MAX_KEY_BYTES = 128
MAX_VALUE_BYTES = 4096
MAX_STORE_BYTES = 64 * 1024  # keys and values of one function together
MAX_LINE_BYTES = 8192
MAX_OUTPUT_BYTES = 32 * 1024  # replies a client has not read yet: past it, a slow reader is cut off
IDLE_CLOSE_S = 15 * 60.0  # a connection with no command this long is closed (a freeze is shorter)
STORE_KEEP_S = 15 * 60.0  # a function's store outlives its last environment this long
MAX_FUNCTIONS = 256  # stores kept at once (those with no environment go first)
EVENT_BURST, EVENT_RATE_PER_S = 20, 1.0  # service.* events per function: a burst, then a trickle
BACKLOG = 16
ACCEPTS_PER_WAKE = 64  # one listener's flood does not hold the loop
SWEEP_EVERY_S = 10.0
MAX_INT = 2**63 - 1
INTEGER = re.compile(rb"-?[0-9]{1,19}")


class ServiceFull(Exception):
    """No room for another function's store: every one kept has live environments."""


class Store:
    """One function's keys and values and its connection counts. Pure: no sockets, no locks."""

    def __init__(self, function_id: str) -> None:
        self.function_id = function_id
        self.data: dict[bytes, bytes] = {}
        self.bytes = 0
        self.connections_opened = 0
        self.connections_open = 0
        self.connections_refused = 0
        self.commands = 0
        self.environments: set[str] = set()
        self.unused_since: float | None = time.monotonic()  # when its last environment went
        self._tokens = float(EVENT_BURST)
        self._tokens_at = time.monotonic()

    def stats(self) -> dict:
        return {
            "connections_opened": self.connections_opened,
            "connections_open": self.connections_open,
            "connections_refused": self.connections_refused,
            "commands": self.commands,
            "keys": len(self.data),
            "bytes": self.bytes,
        }

    def allow_event(self) -> bool:
        """A token for one service.* event (a burst of EVENT_BURST, then EVENT_RATE_PER_S)."""
        now = time.monotonic()
        self._tokens = min(EVENT_BURST, self._tokens + (now - self._tokens_at) * EVENT_RATE_PER_S)
        self._tokens_at = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True

    def execute(self, line: bytes) -> bytes:
        """One command line (no newline) to its reply line (no newline)."""
        self.commands += 1
        parts = line.split(None, 2)
        if not parts:
            return b"ERR empty command"
        command = parts[0].upper()
        if command == b"PING":
            return b"PONG"
        if command == b"STATS":
            return json.dumps(self.stats()).encode()
        if command not in (b"GET", b"SET", b"INCR", b"DEL"):
            return b"ERR unknown command (PING, GET, SET, INCR, DEL, STATS)"
        if len(parts) != (3 if command == b"SET" else 2):
            return b"ERR usage: SET key value" if command == b"SET" else b"ERR usage: " + command + b" key"
        key = parts[1]
        if len(key) > MAX_KEY_BYTES:
            return b"ERR key over %d bytes" % MAX_KEY_BYTES
        if command == b"GET":
            value = self.data.get(key)
            return b"NONE" if value is None else b"VALUE " + value
        if command == b"DEL":
            value = self.data.pop(key, None)
            if value is None:
                return b"0"
            self.bytes -= len(key) + len(value)
            return b"1"
        if command == b"INCR":
            current = self.data.get(key, b"0")
            if not INTEGER.fullmatch(current):
                return b"ERR value is not an integer"
            number = int(current) + 1
            if number > MAX_INT:
                return b"ERR increment would overflow"
            value = b"%d" % number
            refused = self._put(key, value)
            return refused or value
        value = parts[2]
        if len(value) > MAX_VALUE_BYTES:
            return b"ERR value over %d bytes" % MAX_VALUE_BYTES
        return self._put(key, value) or b"OK"

    def _put(self, key: bytes, value: bytes) -> bytes | None:
        """Store it, or say which bound refuses it."""
        old = self.data.get(key)
        if old is None and len(self.data) >= MAX_KEYS:
            return b"ERR too many keys (%d per function)" % MAX_KEYS
        size = self.bytes + len(key) + len(value) - (0 if old is None else len(key) + len(old))
        if size > MAX_STORE_BYTES:
            return b"ERR store full (%d bytes per function)" % MAX_STORE_BYTES
        self.data[key] = value
        self.bytes = size
        return None


class _Listener:
    """One environment's socket, and what its connections are attributed to."""

    def __init__(self, sock: socket.socket, *, env_id: str, store: Store, key: str, name: str) -> None:
        self.sock = sock
        self.env_id = env_id
        self.store = store
        self.key = key  # the environment's version (the events' "function")
        self.name = name
        self.connections: set[_Connection] = set()
        self.paused = False  # out of descriptors: it rests until the next sweep, rather than spin


class _Connection:
    def __init__(self, sock: socket.socket, listener: _Listener) -> None:
        self.sock = sock
        self.listener = listener
        self.inbuf = bytearray()
        self.outbuf = bytearray()
        self.last_active = time.monotonic()
        self.announced = False  # its service.connect went out
        self.writing = False  # registered for EVENT_WRITE too


def make_directory(path: Path) -> None:
    """An environment's folder, as the jail mounts it: root's (or ours), readable, read-only in it."""
    path.mkdir(mode=0o755, exist_ok=True)
    os.chmod(path, 0o755)


class LabService:
    """Serves every environment's socket of one pool from one thread.

    ``attach`` (an environment was assigned to a function) binds its socket;
    ``detach`` (it is gone) closes the socket and its connections. ``emit``
    receives ``service.connect`` and ``service.disconnect`` events, on the
    service's thread (rate-limited per function).
    """

    def __init__(
        self,
        state_dir: Path,
        pool_tag: str,
        emit: Callable[[dict], None] | None = None,
        *,
        max_functions: int = MAX_FUNCTIONS,
    ) -> None:
        self.root = jail.pool_folder(state_dir / "service", pool_tag)
        self.max_functions = max_functions
        self._emit = emit
        self._lock = threading.Lock()
        self._stores: dict[str, Store] = {}
        self._listeners: dict[str, _Listener] = {}  # environment id ->
        self._open = 0  # connections, all functions
        self._todo: list[Callable[[], None]] = []  # selector changes, made by the loop alone
        self._closed = False
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._thread = threading.Thread(target=self._run, name="lambdalab-service", daemon=True)
        self._thread.start()

    # -- the pool's side ---------------------------------------------------------

    def directory(self, env_id: str) -> Path:
        return self.root / env_id

    def attach(self, env_id: str, *, function_id: str, key: str, name: str, uid: int | None) -> bool:
        """Give an environment its socket to ``function_id``'s store; False if the service is full
        (the environment then runs without it: connecting fails with ENOENT)."""
        folder = self.directory(env_id)
        sock = None
        try:
            make_directory(folder)
            sock = _listen(folder / SOCKET_NAME, uid)
            with self._lock:
                if self._closed or env_id in self._listeners:
                    sock.close()
                    return False
                store = self._store_for(function_id)
                listener = _Listener(sock, env_id=env_id, store=store, key=key, name=name)
                self._listeners[env_id] = listener
                store.environments.add(env_id)
                store.unused_since = None
                self._later(lambda: self._selector.register(sock, selectors.EVENT_READ, listener))
            return True
        except (OSError, ServiceFull) as exc:
            log.warning("environment %s gets no lab service: %s", env_id, exc)
            if sock is not None:
                sock.close()
            try:
                (folder / SOCKET_NAME).unlink(missing_ok=True)
            except OSError:
                pass
            return False

    def detach(self, env_id: str) -> None:
        """The environment is gone: its socket and connections close (no events: it said its end)."""
        with self._lock:
            listener = self._listeners.pop(env_id, None)
            if listener is not None:
                store = listener.store
                store.environments.discard(env_id)
                if not store.environments:
                    store.unused_since = time.monotonic()
                self._later(lambda: self._drop_listener(listener))
        shutil.rmtree(self.directory(env_id), ignore_errors=True)

    def stats(self, function_id: str) -> dict | None:
        with self._lock:
            store = self._stores.get(function_id)
            return None if store is None else {"function_id": function_id, **store.stats()}

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._wake()
        self._thread.join(timeout=5)
        shutil.rmtree(self.root, ignore_errors=True)

    # -- bookkeeping (under the lock) -----------------------------------------------

    def _store_for(self, function_id: str) -> Store:
        store = self._stores.get(function_id)
        if store is not None:
            return store
        if len(self._stores) >= self.max_functions:
            unused = [s for s in self._stores.values() if s.unused_since is not None]
            if not unused:
                raise ServiceFull(f"{len(self._stores)} functions' stores are in use")
            oldest = min(unused, key=lambda s: s.unused_since)
            del self._stores[oldest.function_id]
        store = self._stores[function_id] = Store(function_id)
        return store

    def _later(self, change: Callable[[], None]) -> None:
        self._todo.append(change)
        self._wake()

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"\0")
        except OSError:  # BlockingIOError: a wake-up is already pending
            pass

    # -- the loop ---------------------------------------------------------------------

    def _run(self) -> None:
        next_sweep = time.monotonic() + SWEEP_EVERY_S
        while True:
            ready = self._selector.select(timeout=max(0.0, next_sweep - time.monotonic()))
            out: list[dict] = []
            with self._lock:
                if self._closed:
                    break
                todo, self._todo = self._todo, []
                for change in todo:
                    try:
                        change()
                    except (OSError, KeyError, ValueError):  # a socket closed meanwhile
                        pass
                for key, mask in ready:
                    item = key.data
                    try:
                        if item is None:
                            while self._wake_r.recv(4096):
                                pass
                        elif isinstance(item, _Listener):
                            self._accept(item, out)
                        else:
                            self._serve(item, mask, out)
                    except BlockingIOError:
                        pass
                    except Exception:  # noqa: BLE001 - one client's trouble is never the service's end
                        log.exception("lab service: a client failed")
                        if isinstance(item, _Connection):
                            self._drop(item, out, "error")
                now = time.monotonic()
                if now >= next_sweep:
                    self._sweep(now, out)
                    next_sweep = now + SWEEP_EVERY_S
            for event in out:
                self._send_event(event)
        with self._lock:
            for listener in list(self._listeners.values()):
                self._drop_listener(listener)
            self._listeners.clear()
            self._stores.clear()
        self._selector.close()
        self._wake_r.close()
        self._wake_w.close()

    def _accept(self, listener: _Listener, out: list[dict]) -> None:
        store = listener.store
        if listener.sock.fileno() < 0:  # detached earlier in this turn of the loop
            return
        for _ in range(ACCEPTS_PER_WAKE):
            try:
                sock, _ = listener.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    # no descriptor to take it with: rest this listener rather than spin on it
                    log.warning("lab service: cannot accept (%s); pausing %s", exc, listener.env_id)
                    self._selector.unregister(listener.sock)
                    listener.paused = True
                    return
                continue  # ECONNABORTED and the like: that client gave up
            sock.setblocking(False)
            if store.connections_open >= MAX_CONNECTIONS or self._open >= MAX_CONNECTIONS_TOTAL:
                store.connections_refused += 1
                limit = (
                    MAX_CONNECTIONS if store.connections_open >= MAX_CONNECTIONS else MAX_CONNECTIONS_TOTAL
                )
                try:
                    sock.send(b"ERR too many connections (%d open)\n" % limit)
                except OSError:
                    pass
                sock.close()
                continue
            connection = _Connection(sock, listener)
            listener.connections.add(connection)
            store.connections_opened += 1
            store.connections_open += 1
            self._open += 1
            self._selector.register(sock, selectors.EVENT_READ, connection)
            if store.allow_event():
                connection.announced = True
                out.append(self._event("service.connect", listener))

    def _serve(self, connection: _Connection, mask: int, out: list[dict]) -> None:
        if connection not in connection.listener.connections:  # closed earlier in this turn
            return
        if mask & selectors.EVENT_WRITE:
            self._flush(connection, out)
            if connection.sock.fileno() < 0:
                return
        if not mask & selectors.EVENT_READ:
            return
        try:
            data = connection.sock.recv(65536)  # ancillary data (passed descriptors) is discarded
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._drop(connection, out, "closed")
            return
        connection.last_active = time.monotonic()
        connection.inbuf += data
        store = connection.listener.store
        start = 0
        while len(connection.outbuf) <= MAX_OUTPUT_BYTES:
            end = connection.inbuf.find(b"\n", start, start + MAX_LINE_BYTES + 1)
            if end < 0:
                break
            line = bytes(connection.inbuf[start:end]).removesuffix(b"\r")
            start = end + 1
            connection.outbuf += store.execute(line) + b"\n"
        del connection.inbuf[:start]
        if len(connection.outbuf) > MAX_OUTPUT_BYTES:  # pipelining faster than it reads replies
            self._refuse(connection, out, b"ERR replies not read", "slow_reader")
            return
        if len(connection.inbuf) > MAX_LINE_BYTES:
            self._refuse(connection, out, b"ERR line over %d bytes" % MAX_LINE_BYTES, "line_too_long")
            return
        self._flush(connection, out)

    def _flush(self, connection: _Connection, out: list[dict]) -> None:
        while connection.outbuf:
            try:
                sent = connection.sock.send(connection.outbuf)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                self._drop(connection, out, "closed")
                return
            del connection.outbuf[:sent]
        want = bool(connection.outbuf)
        if want != connection.writing:
            events_ = selectors.EVENT_READ | (selectors.EVENT_WRITE if want else 0)
            self._selector.modify(connection.sock, events_, connection)
            connection.writing = want

    def _refuse(self, connection: _Connection, out: list[dict], reply: bytes, reason: str) -> None:
        """A bound broken: say so (if the socket takes it now), then hang up."""
        try:
            connection.sock.send(reply + b"\n")
        except OSError:
            pass
        self._drop(connection, out, reason)

    def _drop(self, connection: _Connection, out: list[dict] | None, reason: str) -> None:
        """Close one connection. Events only for the server's own hang-ups: the client knows its own,
        and one whose environment is gone has already said its end (``shutdown``)."""
        listener = connection.listener
        if connection not in listener.connections:
            return
        listener.connections.discard(connection)
        listener.store.connections_open -= 1
        self._open -= 1
        try:
            self._selector.unregister(connection.sock)
        except (KeyError, ValueError):
            pass
        connection.sock.close()
        server_side = out is not None and reason not in ("closed", "detached")
        if (
            server_side
            and listener.env_id in self._listeners
            and (connection.announced or listener.store.allow_event())
        ):
            out.append(self._event("service.disconnect", listener, reason=reason))

    def _drop_listener(self, listener: _Listener) -> None:
        for connection in list(listener.connections):
            self._drop(connection, None, "detached")
        try:
            self._selector.unregister(listener.sock)
        except (KeyError, ValueError):
            pass
        listener.sock.close()

    def _sweep(self, now: float, out: list[dict]) -> None:
        """Idle connections closed, paused listeners resumed, unused stores dropped."""
        for listener in list(self._listeners.values()):
            if listener.paused:
                listener.paused = False
                self._selector.register(listener.sock, selectors.EVENT_READ, listener)
            for connection in list(listener.connections):
                if now - connection.last_active > IDLE_CLOSE_S:
                    self._refuse(connection, out, b"ERR idle connection closed", "idle")
        for function_id, store in list(self._stores.items()):
            if store.unused_since is not None and now - store.unused_since > STORE_KEEP_S:
                del self._stores[function_id]

    def _event(self, type: str, listener: _Listener, **fields) -> dict:
        store = listener.store
        return events.make(
            type,
            function=listener.key,
            function_name=listener.name,
            environment=listener.env_id,
            connections_open=store.connections_open,
            connections_opened=store.connections_opened,
            **fields,
        )

    def _send_event(self, event: dict) -> None:
        if self._emit is None:
            return
        try:
            self._emit(event)
        except Exception:  # noqa: BLE001 - a broken listener must not stop the service
            log.exception("lab service: on_event failed")


def _listen(path: Path, uid: int | None) -> socket.socket:
    """A listening socket at ``path`` that only ``uid`` (the environment's) may connect to."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
    try:
        if path.exists():
            path.unlink()
        if len(os.fsencode(path)) < 100:
            sock.bind(str(path))
        else:  # past sun_path's 108 bytes: bind through the folder's descriptor
            fd = os.open(path.parent, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                sock.bind(f"/proc/self/fd/{fd}/{path.name}")
            finally:
                os.close(fd)
        if uid is not None:
            os.chown(path, uid, uid)
        os.chmod(path, 0o600)
        sock.listen(BACKLOG)
    except BaseException:
        sock.close()
        raise
    return sock
