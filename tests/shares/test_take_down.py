"""Staff take a link down in the admin: it answers 410 Gone, and nothing else of it changes."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from lambdalab.shares.models import Share

from .conftest import make_share


@pytest.fixture
def staff(db) -> Client:
    client = Client()
    client.force_login(get_user_model().objects.create_superuser("staff", "staff@example.com", "x"))
    return client


def test_a_link_taken_down_in_the_admin_answers_410_with_the_reason(author, viewer, staff):
    function = author.new_function()
    made = make_share(author, function["id"], status=201, title="Original title")
    answer = staff.post(
        f"/admin/shares/share/{made['id']}/change/",
        {"taken_down": "on", "taken_down_reason": "Reported as abusive", "title": "Hijacked"},
    )
    assert answer.status_code == 302, answer.content[:2000]
    share = Share.objects.get(pk=made["id"])
    assert share.taken_down and share.taken_down_at is not None and share.title == "Original title"

    page = viewer.http.get(f"/s/{made['id']}")
    assert page.status_code == 410 and b"Reported as abusive" in page.content
    gone = viewer.call("GET", f"/api/shares/{made['id']}", status=410)
    assert gone["error"]["type"] == "ResourceGoneException"
    assert viewer.http.post(f"/s/{made['id']}/fork").status_code == 410
    # the same content shared again is the same link: still down
    assert make_share(author, function["id"], status=200, title="Original title")["id"] == made["id"]
    assert viewer.http.get(f"/s/{made['id']}").status_code == 410


def test_a_link_put_back_opens_again(author, viewer, staff):
    made = make_share(author, author.new_function()["id"], status=201)
    staff.post(f"/admin/shares/share/{made['id']}/change/", {"taken_down": "on", "taken_down_reason": "x"})
    staff.post(f"/admin/shares/share/{made['id']}/change/", {"taken_down_reason": ""})
    assert viewer.http.get(f"/s/{made['id']}").status_code == 200


def test_the_admin_can_neither_add_nor_delete_nor_edit_a_share(author, staff):
    made = make_share(author, author.new_function()["id"], status=201)
    assert staff.get("/admin/shares/share/").status_code == 200
    assert staff.get("/admin/shares/share/add/").status_code == 403
    assert staff.get(f"/admin/shares/share/{made['id']}/delete/").status_code == 403
    form = staff.get(f"/admin/shares/share/{made['id']}/change/").content.decode()
    assert 'name="taken_down"' in form and 'name="taken_down_reason"' in form
    assert 'name="title"' not in form and 'name="content"' not in form
