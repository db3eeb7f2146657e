"""One phase's log: CloudWatch's platform lines and the function's output, in order, bounded."""

from __future__ import annotations

from collections.abc import Callable

LOG_LIMIT = 256 * 1024  # bytes of function output per invocation
MAX_LOG_LINE = 16 * 1024  # an unfinished line longer than this is emitted without waiting
MAX_LOG_LINES = 10_000
TRUNCATED = "[lambdalab] output truncated: the invocation wrote more than 256 KiB or 10,000 lines"


class InvocationLog:
    """Collects the lines of one phase (an Init, or an invocation) and emits each as a ``log`` event.

    The function's output arrives as raw bytes in any slicing; it is split
    into lines, cut at the bounds, and marked once when cut.
    """

    def __init__(self, emit: Callable[..., None]) -> None:
        self._emit = emit
        self.begin(None)

    def begin(self, request_id: str | None) -> None:
        self.request_id = request_id
        self.lines: list[str] = []
        self.truncated = False
        self._bytes = 0
        self._partial = b""

    def platform(self, line: str) -> None:
        """START, END, REPORT, INIT_START, INIT_REPORT: the platform's own lines."""
        self.lines.append(line)
        self._emit("log", request_id=self.request_id, stream="platform", line=line)

    def function_line(self, line: str) -> None:
        """A line on the function's stream (its output, or what Lambda writes there for it)."""
        self.lines.append(line)
        self._emit("log", request_id=self.request_id, stream="function", line=line)

    def output(self, data: bytes) -> None:
        """The runtime's output as it came: split into lines, bounded in bytes and lines."""
        if self.truncated:
            return
        room = LOG_LIMIT - self._bytes
        over = len(data) > room
        data = data[:room]
        self._bytes += len(data)
        pieces = (self._partial + data).split(b"\n")
        self._partial = pieces.pop()
        if len(self._partial) > MAX_LOG_LINE:
            pieces.append(self._partial)
            self._partial = b""
        if len(self.lines) + len(pieces) > MAX_LOG_LINES:
            pieces = pieces[: max(0, MAX_LOG_LINES - len(self.lines))]
            over = True
        for raw in pieces:
            self.function_line(raw.decode("utf-8", "replace"))
        if over:
            self.truncate()

    def truncate(self) -> None:
        """Past a bound: keep what came, say so once, drop the rest of this phase's output."""
        if not self.truncated:
            self.flush()
            self.truncated = True
            self.function_line(TRUNCATED)

    def flush(self) -> None:
        """An unfinished last line still counts as a line."""
        if self._partial:
            self.function_line(self._partial.decode("utf-8", "replace"))
            self._partial = b""
