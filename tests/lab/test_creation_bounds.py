"""New functions per hour are bounded per owner and per address, on every path that makes one."""

from __future__ import annotations

import pytest
from django.test import Client

from lambdalab.lab.models import Function

from .conftest import LabClient

pytestmark = pytest.mark.django_db


@pytest.fixture
def small_bounds(settings):
    settings.LAB_NEW_FUNCTIONS_PER_HOUR = 3
    settings.LAB_NEW_FUNCTIONS_PER_HOUR_PER_ADDRESS = 5


def test_an_owner_makes_at_most_so_many_functions_an_hour(small_bounds):
    lab = LabClient()
    for _ in range(3):
        lab.new_function()
    refused = lab.call("POST", "/api/functions", {}, status=429)["error"]
    assert (
        refused["type"] == "TooManyRequestsException"
        and "you have made 3 new functions" in refused["message"]
    )
    assert Function.objects.count() == 3  # nothing made by the refused request
    # the other paths are bounded too: the page's "New function", and the lab page's first visit
    page = lab.http.post("/functions/new")
    assert page.status_code == 429 and b"Too many new functions" in page.content


def test_an_address_makes_at_most_so_many_an_hour_whoever_asks(small_bounds):
    made = 0
    for _ in range(3):  # three visitors behind one address: a first visit makes each a function
        visitor = Client(HTTP_HOST="localhost", REMOTE_ADDR="192.0.2.7")
        answer = visitor.get("/")
        if answer.status_code == 200:
            made += 1
            if made < 3:
                visitor.post("/functions/new")
    assert made == 3  # the first two visits made 2 each, the third its first: 5 in all
    assert Function.objects.count() == 5
    late = Client(HTTP_HOST="localhost", REMOTE_ADDR="192.0.2.7").get("/")
    assert late.status_code == 429 and b"this address has made 5 new functions" in late.content
    assert Client(HTTP_HOST="localhost", REMOTE_ADDR="192.0.2.8").get("/").status_code == 200
