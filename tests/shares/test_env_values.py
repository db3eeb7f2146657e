"""Environment variable values stay out of a link unless its author includes them."""

from __future__ import annotations

from lambdalab.shares.models import Share

from .conftest import make_share

SECRET = "s3cr3t-token-value"


def test_values_are_left_out_unless_the_author_includes_them(author, viewer):
    function = author.new_function(environment={"API_TOKEN": SECRET, "MODE": "demo"})
    made = make_share(author, function["id"], status=201)
    shown = viewer.call("GET", f"/api/shares/{made['id']}", status=200)
    assert shown["environment"] == {"API_TOKEN": "", "MODE": ""} and shown["env_values"] is False
    page = viewer.http.get(f"/s/{made['id']}").content.decode()
    assert SECRET not in page and "API_TOKEN" in page and "value not shared" in page
    assert SECRET not in str(Share.objects.get(pk=made["id"]).content)

    included = make_share(author, function["id"], status=201, include_env_values=True)
    assert included["id"] != made["id"]
    shown = viewer.call("GET", f"/api/shares/{included['id']}", status=200)
    assert shown["environment"] == {"API_TOKEN": SECRET, "MODE": "demo"} and shown["env_values"] is True


def test_values_left_out_do_not_change_the_link(author, viewer):
    """Two functions that differ only in a secret value share one link: the id tells nothing of it."""
    one = make_share(author, author.new_function(environment={"KEY": "first-secret"})["id"], status=201)
    two = make_share(viewer, viewer.new_function(environment={"KEY": "other-secret"})["id"], status=200)
    assert one["id"] == two["id"]
