"""Functions and their revisions: what makes a new revision, what is refused and why."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from lambdalab.lab import services
from lambdalab.lab.models import Function

pytestmark = pytest.mark.django_db


def new_function(**values) -> Function:
    return services.function_create(session_key="s" * 32, **values)


def test_a_new_function_starts_with_the_starter_handler_at_revision_1():
    function = new_function()
    assert function.latest.number == 1
    assert "INSTANCE_ID" in function.latest.code and function.latest.memory_mb == 128


@pytest.mark.parametrize(
    "change",
    [
        {"code": "x = 1\n"},
        {"memory_mb": 256},
        {"timeout_s": 10},
        {"tmp_mb": 1024},
        {"handler": "app.handler"},
        {"environment": {"STAGE": "dev"}},
    ],
)
def test_a_setting_lambda_restarts_for_makes_a_new_revision(change):
    function = new_function()
    update = services.function_update(function=function, **change)
    assert update.new_revision and update.function.latest.number == 2
    assert update.changed == list(change)


@pytest.mark.parametrize("change", [{"event": '{"a": 1}'}, {"idle_timeout_s": 30}, {"name": "renamed"}])
def test_the_event_idle_eviction_and_name_are_not_revisions(change):
    function = new_function()
    update = services.function_update(function=function, **change)
    assert not update.new_revision and update.function.latest.number == 1


def test_the_same_values_again_are_no_new_revision():
    function = new_function()
    update = services.function_update(function=function, memory_mb=128, code=function.latest.code)
    assert not update.new_revision


def test_revisions_are_never_changed_and_a_revert_is_a_new_one():
    function = new_function()
    original = function.latest.code
    services.function_update(function=function, code="x = 2\n")
    update = services.function_update(function=function, code=original)
    assert update.function.latest.number == 3
    assert [v.code for v in function.versions.order_by("number")] == [original, "x = 2\n", original]


@pytest.mark.parametrize(
    ("values", "field", "words"),
    [
        ({"memory_mb": 64}, "memory_mb", "Memory must be between 128 and 10,240 MB"),
        ({"memory_mb": 10241}, "memory_mb", "Memory must be between 128 and 10,240 MB"),
        ({"memory_mb": "lots"}, "memory_mb", "whole number"),
        ({"timeout_s": 901}, "timeout_s", "Timeout must be between 1 and 900 seconds"),
        ({"tmp_mb": 100}, "tmp_mb", "between 512 and 10,240 MB"),
        ({"idle_timeout_s": 0}, "idle_timeout_s", "Idle eviction"),
        ({"environment": {"AWS_REGION": "x"}}, "environment", "reserved"),
        ({"environment": {"1BAD": "x"}}, "environment", "invalid variable name"),
        ({"event": "{not json"}, "event", "Could not parse request body into json"),
        ({"handler": "nodot"}, "handler", "file.function"),
        ({"code": "x" * (600 * 1024)}, "code", "over 512 KB"),
    ],
)
def test_bad_values_are_refused_with_the_field_and_the_reason(values, field, words):
    function = new_function()
    with pytest.raises(services.LabError) as caught:
        services.function_update(function=function, **values)
    assert caught.value.field == field and words in caught.value.message
    function.refresh_from_db()
    assert function.latest.number == 1  # nothing was kept of it


def test_an_event_over_6_mb_is_refused_as_lambda_does():
    with pytest.raises(services.LabError) as caught:
        services.event_text("[" + "1," * (3 * 1024 * 1024) + "1]")
    assert caught.value.code == "RequestTooLargeException"


def test_what_was_made_anonymously_moves_into_the_account():
    mine = new_function(name="before-signup")
    user = User.objects.create_user("ada", password="x")
    assert services.functions_adopt(user=user, session_key="s" * 32) == 1
    mine.refresh_from_db()
    assert mine.owner == user and mine.session_key == ""


def test_anonymous_functions_expire_after_the_retention_and_accounts_keep_theirs(settings):
    from django.utils import timezone

    old = new_function(name="old")
    kept = services.function_create(owner=User.objects.create_user("keeper", password="x"), name="kept")
    fresh = new_function(name="fresh")
    Function.objects.filter(pk__in=[old.pk, kept.pk]).update(
        updated=timezone.now() - timezone.timedelta(days=settings.LAB_ANONYMOUS_RETENTION_DAYS + 1)
    )
    assert services.functions_expire() == 1
    assert set(Function.objects.values_list("name", flat=True)) == {"kept", "fresh"}
    assert fresh.pk


def test_renaming_is_not_a_restart_until_the_next_revision():
    function = new_function(name="first name")
    key = function.latest.spec(idle_timeout_s=600).key
    renamed = services.function_update(function=function, name="second name").function
    assert renamed.latest.spec(idle_timeout_s=600).key == key  # same environments stay warm
    assert renamed.latest.lambda_name == "first-name"
    revised = services.function_update(function=renamed, memory_mb=256).function
    assert revised.latest.lambda_name == "second-name"
