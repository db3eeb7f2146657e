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
