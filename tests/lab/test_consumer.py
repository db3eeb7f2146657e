"""The WebSocket a page follows: every event once, in order; a reconnect gets exactly what it missed."""

from __future__ import annotations

import asyncio
import json

import pytest
import redis
from asgiref.sync import async_to_sync, sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings

from lambdalab.asgi import application

from .conftest import LabClient

pytestmark = pytest.mark.slow


def connect(lab: LabClient, function_id: str, after: int = 0) -> WebsocketCommunicator:
    session = lab.http.cookies["sessionid"].value
    return WebsocketCommunicator(
        application,
        f"/ws/functions/{function_id}/events?after={after}",
        headers=[
            (b"cookie", f"sessionid={session}".encode()),
            (b"origin", b"http://localhost"),
            (b"host", b"localhost"),
        ],
    )


async def collect_until(ws: WebsocketCommunicator, done, timeout: float = 30.0) -> list[dict]:
    events = []
    async with asyncio.timeout(timeout):
        while True:
            message = json.loads(await ws.receive_from(timeout))
            if message["type"] == "events":
                events += message["events"]
                if done(events):
                    return events


def test_events_stream_live_in_order_with_a_sequence_number(lab: LabClient):
    function = lab.new_function(name="ws-live")

    async def scenario():
        ws = connect(lab, function["id"])
        connected, _ = await ws.connect()
        assert connected
        request_ids = await sync_to_async(lab.invoke)(function["id"], mode="series", count=2)
        events = await collect_until(ws, lambda ev: sum(1 for e in ev if e["type"] == "invoke.end") == 2)
        await ws.disconnect()
        return request_ids, events

    request_ids, events = async_to_sync(scenario)()
    seqs = [e["seq"] for e in events]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # every one, once, in order
    kinds = [e["type"] for e in events if e["request_id"] == request_ids[0]]
    assert kinds[0] == "init.start" or "invoke.start" in kinds
    ends = [e for e in events if e["type"] == "invoke.end"]
    assert [e["request_id"] for e in ends] == request_ids
    assert ends[0]["cold"] is True and ends[0]["init_reason"] == "first_call" and ends[1]["cold"] is False
    assert all(e["function_id"] == function["id"] for e in events)
    platform = [e["line"] for e in events if e["type"] == "log" and e["stream"] == "platform"]
    assert any(line.startswith("INIT_START") for line in platform)
    assert any(line.startswith("REPORT RequestId: " + request_ids[1]) for line in platform)


def test_a_reconnect_gets_exactly_what_it_missed(lab: LabClient):
    function = lab.new_function(name="ws-resume")
    lab.run(function["id"], mode="series", count=3)
    everything = [
        json.loads(f[b"e"])
        for _, f in redis.Redis.from_url(settings.REDIS_URL).xrange(f"ll:ev:{function['id']}")
    ]
    cut = everything[len(everything) // 2]["seq"]

    async def scenario():
        ws = connect(lab, function["id"], after=cut)
        assert (await ws.connect())[0]
        got = await collect_until(ws, lambda ev: ev[-1]["seq"] == everything[-1]["seq"])
        await ws.disconnect()
        return got

    got = async_to_sync(scenario)()
    assert [e["seq"] for e in got] == [e["seq"] for e in everything if e["seq"] > cut]


def test_a_reconnect_older_than_what_is_kept_gets_a_snapshot(lab: LabClient):
    function = lab.new_function(name="ws-snapshot")
    results = lab.run(function["id"], mode="series", count=2)
    r = redis.Redis.from_url(settings.REDIS_URL)
    r.xtrim(f"ll:ev:{function['id']}", maxlen=2)  # as if thousands of events had passed since

    async def scenario():
        ws = connect(lab, function["id"], after=1)
        assert (await ws.connect())[0]
        first = json.loads(await ws.receive_from(10))
        await ws.disconnect()
        return first

    snapshot = async_to_sync(scenario)()
    assert snapshot["type"] == "snapshot"
    assert snapshot["seq"] == int(r.get(f"ll:seq:{function['id']}"))
    assert {i["request_id"] for i in snapshot["invocations"]} == {x["request_id"] for x in results}
    assert len(snapshot["environments"]) == 1


def test_someone_elses_function_is_refused(lab: LabClient, other_lab: LabClient):
    function = lab.new_function(name="ws-private")
    other_lab.new_function(name="theirs")  # gives the other client a session

    async def scenario():
        ws = connect(other_lab, function["id"])
        connected, code = await ws.connect()
        return connected, code

    connected, code = async_to_sync(scenario)()
    assert not connected and code == 4404


def test_a_foreign_origin_is_refused(lab: LabClient):
    function = lab.new_function(name="ws-origin")

    async def scenario():
        session = lab.http.cookies["sessionid"].value
        ws = WebsocketCommunicator(
            application,
            f"/ws/functions/{function['id']}/events",
            headers=[(b"cookie", f"sessionid={session}".encode()), (b"origin", b"http://evil.example")],
        )
        connected, _ = await ws.connect()
        return connected

    assert async_to_sync(scenario)() is False


def test_invoking_on_the_socket_answers_with_the_ids_and_streams_the_call(lab: LabClient):
    function = lab.new_function(name="ws-invoke")

    async def scenario():
        ws = connect(lab, function["id"])
        assert (await ws.connect())[0]
        await ws.send_to(text_data=json.dumps({"action": "invoke", "ref": 7, "mode": "series", "count": 2}))
        answer = None
        events = []
        async with asyncio.timeout(30):
            while answer is None or sum(1 for e in events if e["type"] == "invoke.end") < 2:
                message = json.loads(await ws.receive_from(30))
                if message["type"] == "invoked":
                    answer = message
                elif message["type"] == "events":
                    events += message["events"]
        # a change saved through the API is seen by the socket's next invoke (a new revision here)
        await sync_to_async(lab.call)("PATCH", f"/api/functions/{function['id']}", {"memory_mb": 256})
        await ws.send_to(text_data=json.dumps({"action": "invoke", "ref": 8}))
        async with asyncio.timeout(30):
            while True:
                message = json.loads(await ws.receive_from(30))
                if message["type"] == "invoked":
                    second = message
                    break
        await ws.send_to(text_data=json.dumps({"action": "invoke", "ref": 9, "event": "{nope"}))
        async with asyncio.timeout(30):
            while True:
                message = json.loads(await ws.receive_from(30))
                if message["type"] == "error":
                    refused = message
                    break
        await ws.disconnect()
        return answer, events, second, refused

    answer, events, second, refused = async_to_sync(scenario)()
    assert answer["ref"] == 7 and len(answer["request_ids"]) == 2 and answer["revision"] == 1
    ends = [e for e in events if e["type"] == "invoke.end"]
    assert [e["request_id"] for e in ends] == answer["request_ids"]
    assert second["ref"] == 8 and second["revision"] == 2
    assert refused["ref"] == 9 and refused["error"]["type"] == "InvalidRequestContentException"
