"""The agent's HTTP/1.1: request parsing and response writing, without sockets.

The Runtime API is served by the agent's epoll loop; this module is the part of
it that only sees bytes, so it can be tested without a jail. A ``Connection``
is fed what the socket gave and hands back, one at a time, complete requests
``(method, path, headers, body)`` or ``Refusal``s (a protocol error: the status
to answer, its JSON body, whether to close). Answers are appended to its
``outbuf``, which the agent sends.

It serves one client, the runtime, so it covers what runtimes send: requests
with a Content-Length (chunked bodies are refused with 411),
``Expect: 100-continue``, keep-alive and pipelining. Every buffer is bounded:
the head (64 KiB, else 431 and close), the body (Lambda's payload limit, else
413: refused before it is sent when the client waits for 100 Continue, read and
thrown away otherwise) and the unsent output (no request is parsed while more
than ``MAX_OUTPUT`` bytes of answers wait, so a client that pipelines and never
reads cannot grow it; the agent stops reading such a connection too).

This module runs inside the jail: standard library only, nothing costly to import.
"""

from . import contract

MAX_PAYLOAD = contract.MAX_PAYLOAD
MAX_REQUEST_HEAD = 64 * 1024
MAX_OUTPUT = 1024 * 1024
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
REASONS = {
    200: "OK",
    202: "Accepted",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    411: "Length Required",
    413: "Request Entity Too Large",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
}


class Refusal:
    """A request the protocol layer answers itself: ``status`` with the JSON ``body``.

    ``close``: the connection cannot go on (the stream is out of step) and is closed
    after the answer. For a 413, ``method``, ``path`` and ``length`` name the refused
    request, so the agent can tell the host a response was too large.
    """

    __slots__ = ("status", "body", "close", "method", "path", "length")

    def __init__(
        self, status: int, body: dict, close: bool, method: str = "", path: str = "", length: int = 0
    ) -> None:
        self.status = status
        self.body = body
        self.close = close
        self.method = method
        self.path = path
        self.length = length

    def __repr__(self) -> str:
        return f"Refusal({self.status}, {self.body!r}, close={self.close})"


def render(status: int, body: bytes, content_type: str, extra=(), close: bool = False) -> bytes:
    """One response, head and body, as bytes (``extra``: more ``(name, value)`` headers)."""
    lines = [f"HTTP/1.1 {status} {REASONS.get(status, 'Unknown')}"]
    lines.append(f"Content-Type: {content_type}")
    lines.append(f"Content-Length: {len(body)}")
    for name, value in extra:
        lines.append(f"{name}: {value}")
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def too_large(method: str, path: str, length: int, close: bool) -> Refusal:
    """RAPID's answer to a body over the payload limit."""
    body = {
        "errorMessage": f"Exceeded maximum allowed payload size ({MAX_PAYLOAD} bytes).",
        "errorType": "RequestEntityTooLarge",
    }
    return Refusal(413, body, close, method, path, length)


class Connection:
    """One HTTP/1.1 keep-alive connection: bytes in (``feed``), requests out (``next``).

    ``outbuf`` holds answers not yet sent; whoever sends them deletes what was sent.
    ``close_after_write``: a closing answer was written (or a closing ``Refusal``
    returned); nothing more is parsed, and the connection is to be closed once
    ``outbuf`` is sent. ``stalled``: ``next`` held
    back a request because ``outbuf`` is over ``MAX_OUTPUT``; call it again once the
    output has drained.
    """

    def __init__(self) -> None:
        self.inbuf = bytearray()
        self.outbuf = bytearray()
        self.close_after_write = False
        self.stalled = False
        self.request = None  # (method, path, headers) once the head is parsed
        self.body_length = 0
        self.discard = 0  # bytes of an oversized body still to throw away

    def feed(self, data: bytes) -> None:
        self.inbuf += data

    def blocked(self) -> bool:
        """Is so much output waiting that the connection must not be read or parsed?"""
        return len(self.outbuf) > MAX_OUTPUT

    def write(self, status: int, body: bytes, content_type: str, extra=(), close: bool = False) -> None:
        self.outbuf += render(status, body, content_type, extra, close)
        if close:
            self.close_after_write = True

    def refuse(self, status: int, message: str) -> Refusal:
        """A closing refusal: the stream is out of step, so nothing after it is parsed."""
        self.close_after_write = True
        return Refusal(status, {"errorMessage": message}, close=True)

    def next(self):
        """The next complete request ``(method, path, headers, body)``, a ``Refusal``, or None.

        None: more input is needed, a closing answer was written, or the output is over
        its bound (``stalled`` is then set). Headers are keyed in lower case. When the
        client expects ``100-continue``, the interim answer is put in ``outbuf`` as soon
        as the head is accepted, before the body is read.
        """
        while True:
            if self.close_after_write:
                return None
            if len(self.outbuf) > MAX_OUTPUT:
                self.stalled = True
                return None
            self.stalled = False
            inbuf = self.inbuf
            if self.discard:
                dropped = min(self.discard, len(inbuf))
                del inbuf[:dropped]
                self.discard -= dropped
                if self.discard:
                    return None
                method, path, _ = self.request
                self.request = None
                return too_large(method, path, self.body_length, close=False)
            if self.request is None:
                end = inbuf.find(b"\r\n\r\n")
                if end < 0 or end > MAX_REQUEST_HEAD:
                    if len(inbuf) >= MAX_REQUEST_HEAD + 4:  # no blank line can end a head in bound now
                        return self.refuse(431, "request head too large")
                    return None
                head = bytes(inbuf[:end]).decode("latin-1")
                del inbuf[: end + 4]
                lines = head.split("\r\n")
                parts = lines[0].split(" ")
                if len(parts) != 3:
                    return self.refuse(400, "malformed request line")
                headers = {}
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
                if "chunked" in headers.get("transfer-encoding", "").lower():
                    return self.refuse(411, "chunked bodies are not supported")
                try:
                    length = int(headers.get("content-length", "0"))
                except ValueError:
                    length = -1
                if length < 0:
                    return self.refuse(400, "bad Content-Length")
                expects = headers.get("expect", "").lower() == "100-continue"
                if length > MAX_PAYLOAD:
                    if expects:  # the client has not sent the body: refuse it now
                        self.close_after_write = True
                        return too_large(parts[0], parts[1], length, close=True)
                    self.request = (parts[0], parts[1], headers)
                    self.body_length = length
                    self.discard = length  # read and drop it, then answer 413
                    continue
                self.request = (parts[0], parts[1], headers)
                self.body_length = length
                if expects:
                    self.outbuf += CONTINUE
            if len(inbuf) < self.body_length:
                return None
            body = bytes(inbuf[: self.body_length])
            del inbuf[: self.body_length]
            method, path, headers = self.request
            self.request = None
            return method, path, headers, body
