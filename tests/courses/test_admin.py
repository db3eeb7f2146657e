"""Instructors: staff in the Instructors group, with rights on course models only."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.contrib.contenttypes.models import ContentType
from django.test import Client

from lambdalab.courses import builtin, roles
from lambdalab.courses.models import Course, Scenario

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _course_data():
    """What the migration loads (transactional tests elsewhere empty the tables after them)."""
    builtin.load(Course, Scenario)
    roles.ensure_instructors(Group, Permission, ContentType)


@pytest.fixture
def instructor() -> Client:
    user = User.objects.create_user("ada", password="x", is_staff=True)
    user.groups.add(Group.objects.get(name=roles.INSTRUCTORS))
    client = Client(HTTP_HOST="localhost")
    client.force_login(user)
    return client


def test_an_instructor_manages_scenarios_and_sees_no_ones_functions(instructor):
    assert instructor.get("/admin/courses/scenario/").status_code == 200
    assert instructor.get("/admin/courses/course/add/").status_code == 200
    assert instructor.get("/admin/lab/function/").status_code == 403
    assert instructor.get("/admin/lab/invocation/").status_code == 403
    assert instructor.get("/admin/auth/user/").status_code == 403


def test_a_scenario_with_a_plan_outside_the_fixed_list_is_refused_in_the_admin(instructor):
    scenario = Scenario.objects.first()
    answer = instructor.post(
        f"/admin/courses/scenario/{scenario.pk}/change/",
        {
            "course": scenario.course_id,
            "order": 0,
            "title": "hacked",
            "slug": scenario.slug,
            "instructions": "x",
            "starter_code": "x = 1",
            "solution_code": "",
            "default_event": "{}",
            "settings": "{}",
            "locked": "[]",
            "plan": '[{"do": "exec", "code": "import os"}]',
            "checks": "[]",
        },
    )
    assert answer.status_code == 200  # the form again, with the error
    assert "must be one of" in answer.content.decode()
    scenario.refresh_from_db()
    assert scenario.title != "hacked"


def test_a_student_is_not_let_into_the_admin():
    client = Client(HTTP_HOST="localhost")
    client.force_login(User.objects.create_user("student", password="x"))
    assert client.get("/admin/courses/scenario/").status_code == 302  # to the admin's login


@pytest.mark.django_db(transaction=False)
def test_migrating_loads_the_built_in_course_and_the_group(django_db_blocker):
    """The migration's own work, checked on a fresh database of its own."""
    import subprocess
    import sys
    import tempfile

    with tempfile.NamedTemporaryFile(suffix=".sqlite3") as db:
        code = (
            "import django, os; django.setup(); from django.core.management import call_command; "
            "call_command('migrate', verbosity=0); from lambdalab.courses.models import Scenario; "
            "from django.contrib.auth.models import Group; "
            "print(Scenario.objects.count(), Group.objects.get(name='Instructors').permissions.count())"
        )
        env = {
            **__import__("os").environ,
            "DATABASE_URL": f"sqlite:///{db.name}",
            "DJANGO_SETTINGS_MODULE": "lambdalab.settings",
        }
        done = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
        )
    assert done.returncode == 0, done.stderr
    scenarios, permissions = map(int, done.stdout.split())
    assert scenarios == len(builtin.SCENARIOS) and permissions == 8


def test_cloning_gives_free_slugs_at_the_end_of_the_course():
    from lambdalab.courses import services

    original = Scenario.objects.get(slug="concurrency")
    first = services.scenario_clone(scenario=original)
    second = services.scenario_clone(scenario=original)
    assert (first.slug, second.slug) == ("concurrency-copy", "concurrency-copy-2")
    last = Scenario.objects.filter(course=original.course).exclude(pk=second.pk).order_by("-order").first()
    assert second.order == last.order + 1
    assert (second.plan, second.checks, second.question) == (
        original.plan,
        original.checks,
        original.question,
    )
    original.refresh_from_db()
    assert original.slug == "concurrency"  # untouched


def test_a_preview_is_the_instructors_own_and_not_the_students_attempt(instructor):
    scenario = Scenario.objects.get(slug="instance-reuse")
    answer = instructor.post(f"/admin/courses/scenario/{scenario.pk}/preview/", {"code": "solution"})
    assert answer.status_code == 302
    preview = scenario.attempts.get()
    assert preview.preview and preview.function.owner.username == "ada"
    assert answer["Location"] == f"/courses/{scenario.course.slug}/{scenario.slug}/?attempt={preview.pk}"
    page = instructor.get(answer["Location"])
    assert b"Preview: a function of your own" in page.content
    # opening the scenario as such gives her a student's attempt, not the preview
    instructor.get(f"/courses/{scenario.course.slug}/{scenario.slug}/")
    assert scenario.attempts.filter(preview=False).count() == 1
    # preview is POST only, and staff only
    assert instructor.get(f"/admin/courses/scenario/{scenario.pk}/preview/").status_code == 405
    student = Client(HTTP_HOST="localhost")
    student.force_login(User.objects.create_user("bob", password="x"))
    refused = student.post(f"/admin/courses/scenario/{scenario.pk}/preview/", {"code": "solution"})
    assert refused.status_code == 302 and "/admin/login/" in refused["Location"]
    assert scenario.attempts.count() == 2


def test_another_visitors_attempt_cannot_be_opened_by_its_number(instructor):
    scenario = Scenario.objects.get(slug="instance-reuse")
    instructor.post(f"/admin/courses/scenario/{scenario.pk}/preview/", {"code": "starter"})
    preview = scenario.attempts.get()
    other = Client(HTTP_HOST="localhost")
    page = other.get(f"/courses/{scenario.course.slug}/{scenario.slug}/?attempt={preview.pk}")
    assert page.status_code == 200 and b"Preview:" not in page.content
    assert page.context["attempt"].pk != preview.pk
