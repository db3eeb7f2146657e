"""Placement and admission in Redis, on their own: the rules of the one script, no worker needed."""

from __future__ import annotations

import json
import uuid

import pytest
import redis
from django.conf import settings

from lambdalab.lab import placement


@pytest.fixture
def r():
    return redis.Redis.from_url(settings.REDIS_URL)


def ids(n: int = 1) -> list[str]:
    return [str(uuid.uuid4()) for _ in range(n)]


def place(function_id: str, key: str, n: int = 1, **limits) -> list[placement.Placement]:
    return placement.request(
        function_id=function_id,
        key=key,
        owner=limits.get("owner", "o-" + function_id),
        address=limits.get("address", "a-" + function_id),
        request_ids=ids(n),
        new_environments=limits.get("new", n),
        placements=n,
        rate_limit=limits.get("rate", 1000),
        live_limit=limits.get("live", 1000),
        reserved=limits.get("reserved"),
    )


def test_the_first_call_of_a_function_is_cold_for_that_reason():
    [p] = place("fn-first", "key-first")
    assert (p.queue, p.environment, p.reason) == ("lab", None, "first_call")


def test_an_idle_environment_on_a_live_worker_is_claimed_most_recent_first(r):
    r.set("ll:w:alive@host", "1", ex=30)
    r.lpush("ll:idle:key-warm", "alive@host|env-old")
    r.lpush("ll:idle:key-warm", "alive@host|env-new")
    first, second, third = place("fn-warm", "key-warm", 3)
    assert (first.queue, first.environment) == ("lab.w.alive@host", "env-new")
    assert second.environment == "env-old"
    assert third.environment is None  # none left idle: cold, on the shared queue
    assert r.llen("ll:idle:key-warm") == 0


def test_an_idle_environment_of_a_dead_worker_is_skipped(r):
    r.lpush("ll:idle:key-dead", "gone@host|env-x")
    [p] = place("fn-dead", "key-dead")
    assert p.environment is None and p.queue == "lab"


def test_all_busy_says_how_many(r):
    r.hset("ll:live:key-busy", mapping={"e1": "w", "e2": "w"})
    [p] = place("fn-busy", "key-busy")
    assert p.reason == "busy" and p.reason_text == "all 2 warm environments were busy"


def test_after_an_idle_eviction_it_says_after_how_long(r):
    r.set("ll:gone:key-evicted", json.dumps({"reason": "idle", "idle_s": 30.4}))
    [p] = place("fn-evicted", "key-evicted")
    assert p.reason == "evicted" and p.reason_text == "the last environment was evicted after 30 s idle"


def test_a_new_revision_is_cold_for_that_reason():
    place("fn-rev", "key-rev-1")
    [p] = place("fn-rev", "key-rev-2")
    assert p.reason == "new_revision"


def test_calls_per_minute_are_refused_past_the_limit_and_nothing_is_claimed(r):
    r.set("ll:w:alive@host", "1", ex=30)
    r.lpush("ll:idle:key-rate", "alive@host|env-r")
    place("fn-rate", "key-rate", 1, rate=2, owner="rate-owner")
    r.lpush("ll:idle:key-rate", "alive@host|env-r")
    with pytest.raises(placement.Refused) as refused:
        place("fn-rate", "key-rate", 2, rate=2, owner="rate-owner")
    assert refused.value.what == "rate" and refused.value.used == 1
    assert r.llen("ll:idle:key-rate") == 1  # the refused request claimed nothing


def test_live_environments_are_counted_over_every_function_of_the_owner(r):
    r.hset("ll:envs:fn-live-a", mapping={"e1": "{}", "e2": "{}"})
    place("fn-live-a", "key-live-a", 1, owner="live-owner", live=5, new=0)
    with pytest.raises(placement.Refused) as refused:
        place("fn-live-b", "key-live-b", 4, owner="live-owner", live=5)
    assert refused.value.what == "live" and refused.value.used == 2


def test_a_pending_call_is_known_until_its_row_is_written():
    [rid] = ids()
    placement.request(
        function_id="fn-pend",
        key="key-pend",
        owner="p",
        address="p",
        request_ids=[rid],
        new_environments=1,
        placements=1,
        rate_limit=10,
        live_limit=10,
    )
    assert placement.pending(rid) == "fn-pend"
    placement.written(rid)
    assert placement.pending(rid) is None


def test_calls_past_the_reserved_concurrency_are_throttled_with_their_end_in_the_stream(r):
    held = place("fn-reserved", "key-reserved", 2, reserved=2)
    assert all(p.queue == "lab" for p in held)
    more = place("fn-reserved", "key-reserved", 2, reserved=2)
    assert [p.queue for p in more] == [placement.THROTTLED, placement.THROTTLED]
    ends = [json.loads(f[b"e"]) for _, f in r.xrange("ll:ev:fn-reserved")]
    assert [e["status"] for e in ends] == ["throttled", "throttled"]
    assert ends[0]["reason"] == "ReservedFunctionConcurrentInvocationLimitExceeded"
    for rid in r.hkeys("ll:running:fn-reserved"):
        placement.end_call("w", rid.decode(), "fn-reserved")
    assert place("fn-reserved", "key-reserved", 1, reserved=2)[0].queue == "lab"
