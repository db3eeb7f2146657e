"""A link's id is a short salted hash of its content: the same content, the same link."""

from __future__ import annotations

import re

from lambdalab.shares import services
from lambdalab.shares.models import Share

from .conftest import make_share


def test_the_same_content_gives_the_same_link_and_one_record(author):
    function = author.new_function(code="def lambda_handler(e, c):\n    return 1\n")
    first = make_share(author, function["id"], status=201, title="Hello")
    again = make_share(author, function["id"], status=200, title="Hello")
    assert again["id"] == first["id"] and again["url"] == first["url"]
    assert first["created"] is True and again["created"] is False
    assert Share.objects.count() == 1


def test_two_owners_sharing_the_same_content_get_the_same_link(author, viewer):
    code = "def lambda_handler(e, c):\n    return 'same'\n"
    mine = make_share(author, author.new_function(code=code)["id"], title="Same", status=201)
    theirs = make_share(viewer, viewer.new_function(code=code)["id"], title="Same", status=200)
    assert mine["id"] == theirs["id"]


def test_different_content_gives_a_different_link(author):
    function = author.new_function(code="def lambda_handler(e, c):\n    return 1\n")
    ids = {make_share(author, function["id"], title="One", status=201)["id"]}
    ids.add(make_share(author, function["id"], title="Two", status=201)["id"])
    author.call("PATCH", f"/api/functions/{function['id']}", {"memory_mb": 256}, status=200)
    ids.add(make_share(author, function["id"], title="Two", status=201)["id"])
    author.call(
        "PATCH", f"/api/functions/{function['id']}", {"code": "def lambda_handler(e, c):\n    return 2\n"}
    )
    ids.add(make_share(author, function["id"], title="Two", status=201)["id"])
    author.call("PATCH", f"/api/functions/{function['id']}", {"event": '{"a": 1}'}, status=200)
    ids.add(make_share(author, function["id"], title="Two", status=201)["id"])
    assert len(ids) == 5


def test_the_id_is_eleven_url_safe_characters_of_a_salted_sha256(author, settings):
    function = author.new_function()
    made = make_share(author, function["id"], status=201)
    assert re.fullmatch(r"[A-Za-z0-9_-]{11}", made["id"])
    share = Share.objects.get(pk=made["id"])
    data = services.canonical(share.content)
    assert services.share_id(data) == (share.id, share.digest)
    settings.LAB_SHARE_SALT = "another salt"
    assert services.share_id(data)[0] != share.id
    assert made["url"] == f"http://localhost/s/{share.id}"
