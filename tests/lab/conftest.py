"""The lab's tests: a real Redis (its own database), real Celery workers in their own processes,
real jails. Integration tests share the database with the workers, so they use ``transactional_db``."""

from __future__ import annotations

import json
import secrets
import time
from pathlib import Path

import pytest
from django.test import Client

ROOT = Path(__file__).resolve().parents[2]


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
