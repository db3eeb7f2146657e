"""Courses and scenarios. A scenario's plan and checks are typed steps from a fixed list
(``plans.py``), never code an instructor writes that the host would run."""

from __future__ import annotations

import secrets

from django.core.exceptions import ValidationError
from django.db import models
from django.urls import reverse

from . import plans


def _class_code() -> str:
    return secrets.token_urlsafe(6)


class Course(models.Model):
    title = models.CharField(max_length=200)
    slug = models.SlugField(unique=True)
    class_code = models.CharField(max_length=16, unique=True, default=_class_code)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["title"]

    def __str__(self) -> str:
        return self.title


class Scenario(models.Model):
    course = models.ForeignKey(Course, on_delete=models.CASCADE, related_name="scenarios")
    order = models.PositiveIntegerField(default=0)
    title = models.CharField(max_length=200)
    slug = models.SlugField()
    instructions = models.TextField(help_text="Markdown")
    starter_code = models.TextField()
    solution_code = models.TextField(blank=True, help_text="The reference solution (the tests run it)")
    default_event = models.TextField(default="{}")
    settings = models.JSONField(
        default=dict, blank=True, help_text="memory_mb, timeout_s, tmp_mb, idle_timeout_s"
    )
    locked = models.JSONField(default=list, blank=True, help_text="settings the student may not change")
    plan = models.JSONField(default=list, help_text="steps: invoke, wait_idle, shut_down")
    checks = models.JSONField(default=list, help_text="checks over what the lab observed")
    question = models.JSONField(
        default=dict,
        blank=True,
        help_text='predict, then run: {"prompt", "kind": "choice" | "number", "choices": [...], "answer", "explain"}',
    )

    class Meta:
        ordering = ["course", "order"]
        constraints = [models.UniqueConstraint(fields=["course", "slug"], name="one_slug_per_course")]

    def __str__(self) -> str:
        return self.title

    def get_absolute_url(self) -> str:
        return reverse("courses:scenario", args=[self.course.slug, self.slug])

    def clean(self) -> None:
        try:
            plans.validate_plan(self.plan)
            plans.validate_checks(self.checks, steps=len(self.plan))
            plans.validate_settings(self.settings, self.locked)
            plans.validate_question(self.question)
        except ValueError as exc:
            raise ValidationError(str(exc)) from None


class Enrollment(models.Model):
    """A student in a course, joined with its class code (an account, or an anonymous browser)."""

    course = models.ForeignKey(Course, on_delete=models.CASCADE, related_name="enrollments")
    user = models.ForeignKey("auth.User", null=True, blank=True, on_delete=models.CASCADE)
    session_key = models.CharField(max_length=40, blank=True)
    name = models.CharField(max_length=64, help_text="what the instructor sees")
    joined = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["joined"]

    def __str__(self) -> str:
        return f"{self.name} in {self.course}"


class Attempt(models.Model):
    """A student's go at a scenario: their own function, their prediction, what the run showed."""

    class Status(models.TextChoices):
        OPEN = "open"  # not run yet
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"  # the run could not be carried out

    scenario = models.ForeignKey(Scenario, on_delete=models.CASCADE, related_name="attempts")
    user = models.ForeignKey("auth.User", null=True, blank=True, on_delete=models.CASCADE)
    session_key = models.CharField(max_length=40, blank=True, db_index=True)
    function = models.ForeignKey("lab.Function", null=True, on_delete=models.SET_NULL, related_name="+")
    prediction = models.JSONField(null=True, blank=True)
    predicted = models.DateTimeField(null=True)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.OPEN)
    results = models.JSONField(default=list, blank=True)
    passed = models.BooleanField(null=True)
    error = models.TextField(blank=True)
    created = models.DateTimeField(auto_now_add=True)
    finished = models.DateTimeField(null=True)
    # An instructor's preview from the admin: never in a dashboard, never the student's attempt.
    preview = models.BooleanField(default=False)

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return f"{self.scenario} #{self.pk}"
