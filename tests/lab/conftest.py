"""The lab's tests: a real Redis (its own database), real Celery workers in their own processes,
real jails. Integration tests share the database with the workers, so they use ``transactional_db``."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
from django.conf import settings
from django.test import Client

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session", autouse=True)
def _clean_redis():
    """The tests' Redis database starts empty (it is theirs alone: see tests/conftest.py)."""
    redis.Redis.from_url(settings.REDIS_URL).flushdb()


class LabWorker:
    """A Celery worker process, as `make run` starts one: its own pool of jails and its own queue."""

    def __init__(self, name: str) -> None:
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
        }
        self.log = open(f"/tmp/lab-test-worker-{name}.log", "w")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "lambdalab",
                "worker",
                "-P",
                "threads",
                "-c",
                "16",
                "-n",
                self.name,
                "--without-mingle",
                "--without-gossip",
                "--loglevel",
                "INFO",
            ],
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

    def start(name: str) -> LabWorker:
        worker = LabWorker(name)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


class LabClient:
    """The JSON API as the page uses it, with a browser session of its own."""

    def __init__(self, user=None, address: str | None = None) -> None:
        # each client its own address, as different people are (the lab bounds per address too)
        self.address = (
            address or f"10.{secrets.randbelow(256)}.{secrets.randbelow(256)}.{secrets.randbelow(254) + 1}"
        )
        self.http = Client(HTTP_HOST="localhost", REMOTE_ADDR=self.address)
        if user is not None:
            self.http.force_login(user)

    def call(self, method: str, path: str, body=None, status: int | None = None):
        data = json.dumps(body) if body is not None else ""
        response = getattr(self.http, method.lower())(path, data=data, content_type="application/json")
        if status is not None:
            assert response.status_code == status, (response.status_code, response.content[:500])
        return (
            response.json()
            if response.content and response["Content-Type"].startswith("application/json")
            else response
        )

    def new_function(self, **values) -> dict:
        return self.call("POST", "/api/functions", values, status=201)

    def invoke(self, function_id: str, **body) -> list[str]:
        return self.call("POST", f"/api/functions/{function_id}/invoke", body, status=202)["request_ids"]

    def wait(self, request_id: str, timeout: float = 30.0) -> dict:
        """The invocation once it has ended (the worker writes its row once, at the end)."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.call("GET", f"/api/invocations/{request_id}", status=200)
            if found["status"] != "queued":
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"invocation {request_id} did not end in {timeout} s")
            time.sleep(0.02)

    def run(self, function_id: str, **body) -> list[dict]:
        return [self.wait(rid) for rid in self.invoke(function_id, **body)]


@pytest.fixture
def lab(transactional_db, lab_worker) -> LabClient:
    return LabClient()


@pytest.fixture
def other_lab(transactional_db, lab_worker) -> LabClient:
    return LabClient()
