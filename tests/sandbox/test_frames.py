"""The control channel's frames: bounded, and anything malformed is refused."""

import struct

import pytest

from sandbox.runtime import frames


def test_frames_round_trip_in_any_slicing():
    data = frames.encode({"t": "response", "id": "r1"}, b"\x00payload\xff") + frames.encode(
        {"t": "log"}, b"x" * 70000
    )
    reader = frames.FrameReader()
    got = []
    for i in range(0, len(data), 997):
        got += reader.feed(data[i : i + 997])
    assert got == [({"t": "response", "id": "r1"}, b"\x00payload\xff"), ({"t": "log"}, b"x" * 70000)]


@pytest.mark.parametrize(
    "raw, message",
    [
        (struct.pack("!II", frames.MAX_HEADER + 1, 0), "over the limit"),
        (struct.pack("!II", 10, frames.MAX_BODY + 1), "over the limit"),
        (struct.pack("!II", 5, 0) + b"nope!", "not JSON"),
        (struct.pack("!II", 2, 0) + b"[]", "not an object"),
        (struct.pack("!II", 8, 0) + b'{"t": 1}', "not an object with a type"),
    ],
)
def test_malformed_or_oversized_frames_are_refused(raw, message):
    with pytest.raises(frames.FrameError, match=message):
        frames.FrameReader().feed(raw)


def test_an_oversized_frame_is_refused_before_its_body_arrives():
    reader = frames.FrameReader()
    with pytest.raises(frames.FrameError):
        reader.feed(struct.pack("!II", 10, 1 << 30))  # 1 GiB announced: refused on the prefix alone


def test_the_sender_refuses_to_build_an_oversized_frame():
    with pytest.raises(frames.FrameError):
        frames.encode({"t": "log"}, b"x" * (frames.MAX_BODY + 1))


def nested_header(depth: int) -> bytes:
    """A header object with a value nested ``depth`` arrays deep."""
    return b'{"t":"log","x":' + b"[" * depth + b"]" * depth + b"}"


def test_a_header_nested_100000_levels_deep_is_refused():
    head = nested_header(100_000)
    with pytest.raises(frames.FrameError):
        frames.FrameReader().feed(struct.pack("!II", len(head), 0) + head)


def test_a_header_nested_past_the_recursion_limit_within_the_size_bound_is_refused_as_a_frame_error():
    head = nested_header(30_000)  # 60 KB: under MAX_HEADER, so the decoder itself must give up
    assert len(head) <= frames.MAX_HEADER
    with pytest.raises(frames.FrameError, match="not JSON"):
        frames.FrameReader().feed(struct.pack("!II", len(head), 0) + head)


def test_a_header_of_bytes_that_are_not_utf8_is_refused():
    head = b'{"t":"\xff"}'
    with pytest.raises(frames.FrameError, match="not JSON"):
        frames.FrameReader().feed(struct.pack("!II", len(head), 0) + head)
