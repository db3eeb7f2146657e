"""A link is read-only: no endpoint changes it, nor a later edit of its function."""

from __future__ import annotations

import pytest

from lambdalab.shares.models import Share

from .conftest import make_share


def test_no_write_method_changes_a_share(author, viewer):
    function = author.new_function(code="def lambda_handler(e, c):\n    return 'v1'\n")
    made = make_share(author, function["id"], status=201, title="Frozen")
    before = Share.objects.get(pk=made["id"]).content
    for method in ("post", "put", "patch", "delete"):
        for path in (f"/api/shares/{made['id']}", f"/s/{made['id']}"):
            answer = getattr(viewer.http, method)(
                path, data='{"title": "changed", "code": "x"}', content_type="application/json"
            )
            assert answer.status_code == 405, (method, path)
            answer = getattr(author.http, method)(
                path, data='{"title": "changed"}', content_type="application/json"
            )
            assert answer.status_code == 405, (method, path)
    assert Share.objects.get(pk=made["id"]).content == before


def test_editing_the_function_afterwards_leaves_the_link_as_it_was(author, viewer):
    function = author.new_function(code="def lambda_handler(e, c):\n    return 'v1'\n")
    made = make_share(author, function["id"], status=201)
    author.call(
        "PATCH", f"/api/functions/{function['id']}", {"code": "def lambda_handler(e, c):\n    return 'v2'\n"}
    )
    assert "'v1'" in viewer.call("GET", f"/api/shares/{made['id']}", status=200)["code"]


def test_a_saved_share_refuses_any_change_but_a_take_down(author):
    made = make_share(author, author.new_function()["id"], status=201)
    share = Share.objects.get(pk=made["id"])
    share.title = "changed"
    with pytest.raises(ValueError, match="immutable"):
        share.save()
    with pytest.raises(ValueError, match="immutable"):
        share.save(update_fields=["title", "taken_down"])
    assert Share.objects.get(pk=made["id"]).title != "changed"


def test_only_the_owner_can_share_a_function(author, viewer):
    function = author.new_function()
    answer = make_share(viewer, function["id"], status=404)
    assert answer["error"]["type"] == "ResourceNotFoundException"
    make_share(viewer, "00000000-0000-0000-0000-000000000000", status=404)
    assert not Share.objects.exists()


def test_a_share_shows_nothing_of_its_author_or_their_other_functions(author, viewer):
    function = author.new_function(name="mine")
    other = author.new_function(name="my-other-function")
    made = make_share(author, function["id"], status=201)
    shown = viewer.call("GET", f"/api/shares/{made['id']}", status=200)
    page = viewer.http.get(f"/s/{made['id']}").content.decode()
    session = author.http.cookies["sessionid"].value
    for text in (function["id"], other["id"], "my-other-function", session):
        assert text not in str(shown) and text not in page
