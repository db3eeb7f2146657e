"""What one link may hold, and how many links an owner or an address makes in an hour."""

from __future__ import annotations

import uuid

from lambdalab.lab import rds
from lambdalab.shares.models import Share
from tests.lab.conftest import LabClient

from .conftest import make_share


def test_a_share_over_the_size_bound_is_refused_with_413_naming_the_part(author, settings):
    big_code = "def lambda_handler(e, c):\n    return 1\n" + "# padding\n" * 30_000  # ~300 KB
    answer = make_share(author, author.new_function(code=big_code)["id"], status=413)
    assert answer["error"]["field"] == "code" and "256 KB" in answer["error"]["message"]
    assert answer["error"]["type"] == "RequestTooLargeException"

    big_event = '{"data": "' + "x" * 300_000 + '"}'
    answer = make_share(author, author.new_function(event=big_event)["id"], status=413)
    assert answer["error"]["field"] == "event"
    assert not Share.objects.exists()


def test_too_many_chosen_calls_are_refused_with_413(author, settings):
    settings.LAB_SHARE_MAX_INVOCATIONS = 3
    function = author.new_function()
    ids = [str(uuid.uuid4()) for _ in range(4)]
    answer = make_share(author, function["id"], status=413, include_run=True, invocations=ids)
    assert answer["error"]["field"] == "invocations" and "at most 3 calls" in answer["error"]["message"]
    answer = make_share(author, function["id"], status=400, include_run=True, invocations=ids[:3])
    assert answer["error"]["field"] == "invocations"  # not calls of this function


def test_shares_per_owner_per_hour_are_bounded_with_429(author, settings):
    settings.LAB_SHARES_PER_HOUR = 2
    function = author.new_function()
    first = make_share(author, function["id"], status=201, title="one")
    make_share(author, function["id"], status=201, title="two")
    answer = make_share(author, function["id"], status=429, title="three")
    assert (
        answer["error"]["type"] == "TooManyRequestsException"
        and "you have made 2" in answer["error"]["message"]
    )
    # a link made before is not a new one: it is given again
    assert make_share(author, function["id"], status=200, title="one")["id"] == first["id"]
    assert Share.objects.count() == 2


def test_shares_per_address_per_hour_are_bounded_with_429(db, settings):
    settings.LAB_SHARES_PER_HOUR = 2
    address = f"10.200.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250 + 1}"
    for n in range(2):
        visitor = LabClient(address=address)
        make_share(visitor, visitor.new_function()["id"], status=201, title=f"visitor {n}")
    visitor = LabClient(address=address)
    answer = make_share(visitor, visitor.new_function()["id"], status=429, title="visitor 3")
    assert "this address has made 2" in answer["error"]["message"]


def test_bad_requests_name_the_field(author):
    function = author.new_function()
    assert (
        make_share(author, function["id"], status=400, include_run="yes")["error"]["field"] == "include_run"
    )
    assert make_share(author, function["id"], status=400, title="x" * 101)["error"]["field"] == "title"
    assert make_share(author, function["id"], status=400, colour="red")["error"]["field"] == "colour"
    answer = author.http.post(
        f"/api/functions/{function['id']}/share", data="[", content_type="application/json"
    )
    assert answer.status_code == 400


def test_a_call_whose_row_is_still_being_written_is_left_out_not_refused(author):
    """The page may see a call end a moment before its worker writes its row."""
    function = author.new_function()
    request_id = str(uuid.uuid4())
    rds.client().set(rds.key("pending", request_id), function["id"], ex=60)
    made = make_share(author, function["id"], status=201, include_run=True, invocations=[request_id])
    assert author.call("GET", f"/api/shares/{made['id']}", status=200)["run"] == {"calls": 0, "events": []}
    other = author.new_function()  # pending, but another function's call: refused
    answer = make_share(author, other["id"], status=400, include_run=True, invocations=[request_id])
    assert answer["error"]["field"] == "invocations"
