"""Anonymous use, signing up and logging in: what was made anonymously moves into the account."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client

from lambdalab.lab.models import Function

pytestmark = pytest.mark.django_db


def visitor() -> Client:
    client = Client(HTTP_HOST="localhost")
    assert client.get("/").status_code == 200  # the first visit makes a function, no sign-up needed
    return client


def test_signing_up_keeps_what_was_made_anonymously():
    client = visitor()
    mine = Function.objects.get(owner=None)
    answer = client.post(
        "/accounts/signup/",
        {"username": "grace", "password1": "a-long-Passw0rd!", "password2": "a-long-Passw0rd!"},
    )
    assert answer.status_code == 302
    mine.refresh_from_db()
    assert mine.owner == User.objects.get(username="grace") and mine.session_key == ""
    assert client.get(f"/api/functions/{mine.pk}").status_code == 200


def test_logging_in_keeps_what_was_made_anonymously():
    User.objects.create_user("alan", password="a-long-Passw0rd!")
    client = visitor()
    mine = Function.objects.get(owner=None)
    answer = client.post("/accounts/login/", {"username": "alan", "password": "a-long-Passw0rd!"})
    assert answer.status_code == 302
    mine.refresh_from_db()
    assert mine.owner.username == "alan"


def test_the_function_list_renames_and_deletes_only_ones_own():
    client = visitor()
    mine = Function.objects.get(owner=None)
    other = visitor()
    theirs = Function.objects.exclude(pk=mine.pk).get()
    assert client.post(f"/functions/{mine.pk}/rename", {"name": "renamed"}).status_code == 302
    mine.refresh_from_db()
    assert mine.name == "renamed"
    assert client.post(f"/functions/{theirs.pk}/rename", {"name": "hijacked"}).status_code == 404
    assert client.post(f"/functions/{theirs.pk}/delete").status_code == 404
    assert "renamed" in client.get("/functions/").content.decode()
    assert "renamed" not in other.get("/functions/").content.decode()
    assert client.post(f"/functions/{mine.pk}/delete").status_code == 302
    assert not Function.objects.filter(pk=mine.pk).exists()
