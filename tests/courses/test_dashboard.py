"""Joining with the class code, and the class dashboard an instructor sees."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.contrib.contenttypes.models import ContentType
from django.test import Client

from lambdalab.courses import builtin, dashboard, roles
from lambdalab.courses.models import Attempt, Course, Enrollment, Scenario

pytestmark = pytest.mark.django_db


@pytest.fixture
def course() -> Course:
    builtin.load(Course, Scenario)
    roles.ensure_instructors(Group, Permission, ContentType)
    return Course.objects.get(slug=builtin.SLUG)


def test_a_student_joins_with_the_class_code(course):
    client = Client(HTTP_HOST="localhost")
    assert client.post("/join/", {"code": "wrong", "name": "Lin"}).status_code == 400
    answer = client.post("/join/", {"code": course.class_code, "name": "Lin"})
    assert answer.status_code == 302 and answer["Location"] == f"/courses/{course.slug}/"
    assert [e.name for e in course.enrollments.all()] == ["Lin"]
    client.post("/join/", {"code": course.class_code, "name": "Lin"})  # twice is once
    assert course.enrollments.count() == 1


def test_the_dashboard_counts_attempts_passes_and_wrong_predictions(course):
    reuse = course.scenarios.get(slug="instance-reuse")
    for n, (prediction, passed) in enumerate([(1, True), (1, True), (3, True), (2, False)]):
        key = f"{n}" * 32
        Enrollment.objects.create(course=course, session_key=key, name=f"student {n}")
        Attempt.objects.create(
            scenario=reuse, session_key=key, prediction=prediction, status=Attempt.Status.DONE, passed=passed
        )
    Attempt.objects.create(
        scenario=reuse, session_key="x" * 32, prediction=1, status=Attempt.Status.DONE
    )  # not enrolled
    Attempt.objects.create(scenario=reuse, session_key="0" * 32, status=Attempt.Status.RUNNING)
    figures = dashboard.figures(course)
    row = next(r for r in figures["scenarios"] if r.title == reuse.title)
    assert (row.attempts, row.students, row.passed) == (5, 4, 3)
    assert row.pass_rate == 0.75
    assert row.wrong_prediction == "1 (2 students)"
    assert row.running == 1 and figures["running_now"] == ["student 0"]
    assert len(figures["enrolled"]) == 4


def test_only_instructors_see_the_dashboard(course):
    instructor = User.objects.create_user("teach", password="x", is_staff=True)
    instructor.groups.add(Group.objects.get(name=roles.INSTRUCTORS))
    staff_only = User.objects.create_user("ops", password="x", is_staff=True)
    student = User.objects.create_user("learn", password="x")
    url = f"/courses/{course.slug}/dashboard/"
    for user, status in ((instructor, 200), (staff_only, 404), (student, 302)):
        client = Client(HTTP_HOST="localhost")
        client.force_login(user)
        assert client.get(url).status_code == status, user.username
