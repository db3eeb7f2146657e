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
