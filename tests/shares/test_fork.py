"""Run it yourself: a shared link forked into the viewer's own function."""

from __future__ import annotations

from django.contrib.auth import get_user_model

from lambdalab.lab.models import Function
from tests.lab.conftest import LabClient

from .conftest import make_share

CODE = "def lambda_handler(event, context):\n    return {'shared': True}\n"


def _shared(author) -> tuple[dict, dict]:
    function = author.new_function(
        name="demo",
        code=CODE,
        memory_mb=512,
        timeout_s=7,
        tmp_mb=1024,
        idle_timeout_s=30,
        reserved_concurrency=2,
        environment={"GREETING": "hi"},
        event='{"hello": "world"}',
    )
    return function, make_share(author, function["id"], status=201, title="A demo to fork")


def test_a_fork_is_the_viewers_own_function_with_the_shared_code_and_settings(author, viewer):
    function, made = _shared(author)
    answer = viewer.http.post(f"/s/{made['id']}/fork")
    assert answer.status_code == 302
    forked_id = answer["Location"].strip("/").split("/")[-1]
    assert answer["Location"] == f"/f/{forked_id}/"
    fork = viewer.call("GET", f"/api/functions/{forked_id}", status=200)
    assert fork["code"] == CODE and fork["name"] == "A demo to fork"
    assert (fork["memory_mb"], fork["timeout_s"], fork["tmp_mb"]) == (512, 7, 1024)
    assert (fork["idle_timeout_s"], fork["reserved_concurrency"]) == (30, 2)
    assert fork["event"] == '{"hello": "world"}'
    assert fork["environment"] == {"GREETING": ""}  # the value was not shared
    row = Function.objects.get(pk=forked_id)
    assert row.owner is None and row.session_key == viewer.http.session.session_key
    author.call("GET", f"/api/functions/{forked_id}", status=404)  # not the author's
    assert viewer.http.get(answer["Location"]).status_code == 200  # the lab page opens it
    assert author.call("GET", f"/api/functions/{function['id']}", status=200)["code"] == CODE


def test_a_logged_in_viewer_forks_into_their_account(author):
    _, made = _shared(author)
    user = get_user_model().objects.create_user("reader", password="x")
    reader = LabClient(user=user)
    answer = reader.http.post(f"/s/{made['id']}/fork")
    assert answer.status_code == 302
    assert Function.objects.get(pk=answer["Location"].strip("/").split("/")[-1]).owner == user


def test_forking_needs_a_post(author, viewer):
    _, made = _shared(author)
    assert viewer.http.get(f"/s/{made['id']}/fork").status_code == 405
    assert viewer.http.post("/s/AAAAAAAAAAA/fork").status_code == 404
    assert Function.objects.count() == 1
