"""The host's end of an environment's control socket: frames to and from its agent.

Everything the agent sends is untrusted (a compromised agent is user code):
frames are bounded, and any frame that is malformed, oversized or of the
wrong shape, and any error of the socket, is ``EnvironmentLost``, never
another exception in the host.
"""

from __future__ import annotations

import collections
import select
import socket
import time
from collections.abc import Callable

from .runtime import frames

AGENT_REPLY_S = 2.0  # how long a send may wait for the agent to read
READ_SIZE = 1 << 20


class EnvironmentLost(Exception):
    """The jail or its agent is gone or broke the protocol; the environment is unusable."""


class ControlChannel:
    """Frames over one non-blocking Unix socket; log frames go to ``on_log`` as they come, and
    the runtime's description of its module (``state``, for the State inspector) to ``on_state``."""

    def __init__(
        self,
        sock: socket.socket,
        *,
        on_log: Callable[[bytes], None],
        on_log_dropped: Callable[[], None],
        on_state: Callable[[bytes], None] | None = None,
    ) -> None:
        self.sock = sock
        self.sock.setblocking(False)
        self._on_log = on_log
        self._on_log_dropped = on_log_dropped
        self._on_state = on_state
        self._reader = frames.FrameReader()
        self._frames: collections.deque = collections.deque()
        self._poll = select.poll()
        self._poll.register(self.sock, select.POLLIN)
        self.closed = False

    def send(self, header: dict, body: bytes = b"") -> None:
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
            self._wait(remaining, select.POLLIN | select.POLLOUT)

    def receive(self, deadline: float) -> tuple[dict, bytes] | None:
        """The next frame that is not a log frame, or None at the deadline (a monotonic time)."""
        while True:
            while self._frames:
                header, body = self._frames.popleft()
                kind = header["t"]
                if kind == "log":
                    self._on_log(body)
                elif kind == "log.dropped":
                    self._on_log_dropped()
                elif kind == "state":
                    if self._on_state is not None:
                        self._on_state(body)
                else:
                    return header, body
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            self._wait(remaining, select.POLLIN)

    def _wait(self, seconds: float, events: int) -> None:
        if self.closed:
            raise EnvironmentLost("the environment was torn down")
        if events != select.POLLIN:
            self._poll.modify(self.sock, events)
        try:
            ready = self._poll.poll(seconds * 1000)
        finally:
            if events != select.POLLIN and not self.closed:
                self._poll.modify(self.sock, select.POLLIN)
        for _, mask in ready:
            if mask & select.POLLNVAL:
                raise EnvironmentLost("the environment was torn down")
            if mask & (select.POLLIN | select.POLLHUP | select.POLLERR):
                self._read_available()

    def _read_available(self) -> None:
        try:
            data = self.sock.recv(READ_SIZE)
        except BlockingIOError:
            return
        except OSError as exc:
            raise EnvironmentLost(f"control channel: {exc}") from None
        if not data:
            raise EnvironmentLost("agent closed its control channel")
        try:
            self._frames.extend(self._reader.feed(data))
        except Exception as exc:  # noqa: BLE001 - whatever a hostile frame provokes, the env is lost
            raise EnvironmentLost(f"agent broke the protocol: {type(exc).__name__}: {exc}"[:300]) from None

    def interrupt(self) -> None:
        """Wake a thread waiting on this channel (from another thread): it will find it lost."""
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            self._poll.unregister(self.sock)
        except (KeyError, ValueError):
            pass
        self.sock.close()
