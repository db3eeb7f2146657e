"""Lab fixtures the lab and browser tests share: a clean Redis database and real Celery workers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
from django.conf import settings

from lambdalab.lab.worker import worker_argv

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session", autouse=True)
def _clean_redis():
    """The tests' Redis database starts empty (it is theirs alone: see tests/conftest.py)."""
    redis.Redis.from_url(settings.REDIS_URL).flushdb()


class LabWorker:
    """A Celery worker process, as `make run` starts one: its own pool of jails and its own queue."""

    def __init__(self, name: str, **settings_env: str) -> None:
        self.name = f"{name}@lab-tests"
        db = settings.DATABASES["default"]
        env = {
            **os.environ,
            "REDIS_URL": settings.REDIS_URL,
            "DATABASE_URL": f"sqlite:///{db['NAME']}"
            if db["ENGINE"].endswith("sqlite3")
            else os.environ.get("DATABASE_URL", ""),
            "LAMBDALAB_STEM_CELLS": "1",
            "LAMBDALAB_MEMORY_BUDGET_MB": "16384",
            **settings_env,
        }
        self.log = open(f"/tmp/lab-test-worker-{name}.log", "w")  # noqa: SIM115
        self.proc = subprocess.Popen(
            worker_argv(sys.executable, self.name, threads=16),
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self._wait_ready()

    def _wait_ready(self, timeout: float = 60.0) -> None:
        r = redis.Redis.from_url(settings.REDIS_URL)
        deadline = time.monotonic() + timeout
        while not r.exists(f"ll:w:{self.name}"):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"worker {self.name} did not start: see {self.log.name}")
            time.sleep(0.05)  # polling the heartbeat the worker writes once it is up

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.close()


@pytest.fixture(scope="session")
def lab_worker(django_db_setup, django_db_blocker):
    worker = LabWorker("main")
    yield worker
    worker.stop()


@pytest.fixture
def start_worker(django_db_setup):
    """More workers, stopped at the end of the test."""
    started = []

    def start(name: str, **settings_env: str) -> LabWorker:
        worker = LabWorker(name, **settings_env)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()
