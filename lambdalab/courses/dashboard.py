"""The class dashboard: who joined, each scenario's attempts and pass rate, the most common wrong
prediction, and who is running something right now."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from lambdalab.lab import stream
from lambdalab.lab.services import owner_tag

from .models import Attempt, Course, Enrollment


@dataclass
class ScenarioFigures:
    title: str
    attempts: int
    students: int
    passed: int
    pass_rate: float | None  # of the students who ran it
    wrong_prediction: str | None  # the most common one, with how many made it
    running: int


def _student(who: Attempt | Enrollment) -> str:
    return owner_tag(who.user_id, who.session_key)


def figures(course: Course) -> dict:
    enrolled = list(course.enrollments.select_related("user"))
    members = {_student(e): e.name for e in enrolled}
    rows = []
    active: set[str] = set()
    for scenario in course.scenarios.all():
        attempts = [a for a in scenario.attempts.filter(preview=False) if _student(a) in members]
        ran = [
            a
            for a in attempts
            if a.status in (Attempt.Status.DONE, Attempt.Status.RUNNING, Attempt.Status.FAILED)
        ]
        students = {_student(a) for a in ran}
        passed = {_student(a) for a in ran if a.passed}
        answer = scenario.question.get("answer") if scenario.question else None
        wrong = Counter(
            str(a.prediction) for a in attempts if a.prediction is not None and a.prediction != answer
        ).most_common(1)
        running = 0
        for attempt in attempts:
            busy = attempt.status == Attempt.Status.RUNNING or (
                attempt.function_id is not None
                and any(env.get("state") == "busy" for env in stream.environments(str(attempt.function_id)))
            )
            if busy:
                running += 1
                active.add(members[_student(attempt)])
        rows.append(
            ScenarioFigures(
                title=scenario.title,
                attempts=len(ran),
                students=len(students),
                passed=len(passed),
                pass_rate=len(passed) / len(students) if students else None,
                wrong_prediction=f"{wrong[0][0]} ({wrong[0][1]} student{'s' if wrong[0][1] > 1 else ''})"
                if wrong
                else None,
                running=running,
            )
        )
    return {"enrolled": [e.name for e in enrolled], "scenarios": rows, "running_now": sorted(active)}
