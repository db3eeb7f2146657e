"""Length-prefixed frames between the host and the agent inside a jail.

A frame is ``!II`` (header length, body length), a JSON object header and raw
body bytes. Bodies carry payloads and log output unescaped, so a 6 MB response
crosses as 6 MB. Both sides bound both parts; the host treats every frame as
untrusted (the agent shares a uid with user code, which can impersonate it).

This module runs inside the jail too, so it imports only the standard library.
"""

import struct

from . import fastjson as json

PREFIX = struct.Struct("!II")
MAX_HEADER = 64 * 1024
# A 6 MB (6,291,556 byte) payload plus room for anything wrapped around it.
MAX_BODY = 7 * 1024 * 1024


class FrameError(Exception):
    """The peer sent something that is not a well-formed, bounded frame."""


def encode(header: dict, body: bytes = b"") -> bytes:
    head = json.dumps(header, separators=(",", ":")).encode()
    if len(head) > MAX_HEADER or len(body) > MAX_BODY:
        raise FrameError("frame too large")
    return PREFIX.pack(len(head), len(body)) + head + body


class FrameReader:
    """Incremental decoder: feed bytes, take complete frames."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list:
        self._buf += data
        frames = []
        while len(self._buf) >= PREFIX.size:
            head_len, body_len = PREFIX.unpack_from(self._buf)
            if head_len > MAX_HEADER or body_len > MAX_BODY:
                raise FrameError(f"frame over the limit ({head_len}+{body_len} bytes)")
            end = PREFIX.size + head_len + body_len
            if len(self._buf) < end:
                break
            try:
                header = json.loads(bytes(self._buf[PREFIX.size : PREFIX.size + head_len]))
            except Exception as exc:  # ValueError, RecursionError (deep nesting), whatever a decoder raises
                raise FrameError(f"frame header is not JSON: {type(exc).__name__}: {exc}") from None
            if not isinstance(header, dict) or not isinstance(header.get("t"), str):
                raise FrameError("frame header is not an object with a type")
            body = bytes(self._buf[PREFIX.size + head_len : end])
            del self._buf[:end]
            frames.append((header, body))
        return frames
