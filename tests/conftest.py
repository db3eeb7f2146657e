"""Shared fixtures: real pools of real jails; no mocks."""

from __future__ import annotations

import os

# The tests' own Redis database (the lab's live state, the Celery broker, the channel layer), set
# before Django reads its settings: a developer's running lab on database 0 is left alone.
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/14")

import threading  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402

import pytest  # noqa: E402

from sandbox import EnvironmentPool, FunctionSpec  # noqa: E402

pytest_plugins = ["tests.lab_fixtures"]  # real Celery workers, for the lab and browser tests


class Recorder:
    """Collects lifecycle events and lets a test wait for one (never sleep-and-hope)."""

    def __init__(self) -> None:
        self.events: list[dict] = []
        self._cond = threading.Condition(threading.RLock())

    def __call__(self, event: dict) -> None:
        with self._cond:
            self.events.append(event)
            self._cond.notify_all()

    def of(self, type: str | None = None, **match) -> list[dict]:
        with self._cond:  # reentrant: wait_count calls it holding the lock
            return [
                e
                for e in self.events
                if (type is None or e["type"] == type) and all(e.get(k) == v for k, v in match.items())
            ]

    def wait_count(self, n: int, type: str, timeout: float = 10.0, **match) -> list[dict]:
        """Wait until ``n`` events of ``type`` (matching ``match``) have come."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(found := self.of(type, **match)) < n:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"only {len(found)} of {n} {type} events came")
                self._cond.wait(remaining)
            return found

    def wait_for(self, predicate: Callable[[dict], bool], timeout: float = 10.0) -> dict:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for e in self.events:
                    if predicate(e):
                        return e
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError("the awaited event never came")
                self._cond.wait(remaining)


@pytest.fixture(scope="session")
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture(scope="session")
def pool(recorder):
    """One pool for the session: tests use distinct code so they get their own environments."""
    with EnvironmentPool(on_event=recorder, max_environments=64) as p:
        yield p


@pytest.fixture
def make_pool():
    """A private pool, closed at the end of the test."""
    pools = []

    def make(**kwargs) -> EnvironmentPool:
        p = EnvironmentPool(**kwargs)
        pools.append(p)
        return p

    yield make
    for p in pools:
        p.close()


@pytest.fixture
def make_spec(request):
    """Build a spec whose code is unique to this test, so environments are never shared."""
    counter = iter(range(1000))

    def make(source: str, **settings) -> FunctionSpec:
        tag = f"# {request.node.nodeid} #{next(counter)}\n"
        return FunctionSpec(source=tag + source, **settings)

    return make
