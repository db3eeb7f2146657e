"""Shared links' tests: the JSON API and pages through Django's test client, real Redis (the
bounds), and a real worker where a recorded run is needed."""

from __future__ import annotations

import pytest

from tests.lab.conftest import LabClient


def make_share(client: LabClient, function_id: str, status: int | None = None, **body) -> dict:
    """POST a share; the answer's JSON (the link, or the error)."""
    return client.call("POST", f"/api/functions/{function_id}/share", body, status=status)


@pytest.fixture
def author(db) -> LabClient:
    return LabClient()


@pytest.fixture
def viewer(db) -> LabClient:
    return LabClient()
