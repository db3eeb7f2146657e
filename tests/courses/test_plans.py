"""Plans and checks are data from a fixed list: validated, and evaluated against observations."""

from __future__ import annotations

import pytest

from lambdalab.courses import builtin, plans
from lambdalab.courses.plans import Observations, Observed


def call(step, position, **fields) -> Observed:
    base = {
        "status": "success",
        "error_type": None,
        "cold": False,
        "init_reason": None,
        "environment": "e1",
        "response": {"instance": "i1", "calls": position + 1},
    }
    return Observed(step=step, call=position, request_id=f"r{step}{position}", **(base | fields))


@pytest.mark.parametrize(
    ("plan", "words"),
    [
        ([], "1 to 20 steps"),
        ([{"do": "exec", "code": "import os"}], "'do' must be one of"),
        ([{"do": "invoke", "mode": "sideways"}], "mode must be one of"),
        ([{"do": "invoke", "count": 500}], "count must be 1 to 20"),
        ([{"do": "invoke", "shell": "rm -rf /"}], "unknown field shell"),
    ],
)
def test_a_plan_outside_the_fixed_list_is_refused(plan, words):
    with pytest.raises(ValueError, match=words):
        plans.validate_plan(plan)


def test_checks_must_name_a_known_kind_and_a_step_of_the_plan():
    with pytest.raises(ValueError, match="must be one of"):
        plans.validate_checks([{"check": "eval", "code": "1"}], steps=1)
    with pytest.raises(ValueError, match="not a step of the plan"):
        plans.validate_checks([{"check": "cold_count", "step": 3, "count": 1}], steps=1)
    with pytest.raises(ValueError, match="'count' is missing"):
        plans.validate_checks([{"check": "cold_count", "step": 0}], steps=1)


def test_every_built_in_scenario_is_valid():
    for data in builtin.SCENARIOS:
        plans.validate_plan(data["plan"])
        plans.validate_checks(data["checks"], steps=len(data["plan"]))
        plans.validate_settings(data.get("settings", {}), data.get("locked", []))


def test_checks_pass_and_fail_with_their_explanations():
    seen = Observations([call(0, 0, cold=True, init_reason="first_call"), call(0, 1), call(0, 2)])
    results = plans.evaluate(
        [
            {"check": "cold_count", "step": 0, "count": 1, "explain_pass": "one cold", "explain_fail": "no"},
            {"check": "same_instance", "steps": [0], "explain_pass": "same", "explain_fail": "differ"},
            {"check": "response_field", "step": 0, "call": 2, "field": "calls", "equals": 3},
            {
                "check": "init_reason",
                "step": 0,
                "call": 1,
                "reason": "evicted",
                "explain_fail": "not evicted",
            },
            {"check": "status", "step": 0, "call": 7, "status": "success"},
        ],
        seen,
    )
    assert [r.passed for r in results] == [True, True, True, False, False]
    assert results[0].explanation == "one cold" and results[0].found == "1 of 3 calls were cold"
    assert results[3].explanation == "not evicted"
    assert results[3].found == "Init reason: none (a plain warm call)"
    assert results[4].found == "that call did not happen"


def test_distinct_and_same_environments():
    burst = Observations([call(0, i, environment=f"e{i}") for i in range(3)])
    assert plans.evaluate([{"check": "distinct_environments", "step": 0}], burst)[0].passed
    assert not plans.evaluate([{"check": "same_environment", "steps": [0]}], burst)[0].passed


def test_instructions_are_markdown_and_nothing_runs_from_them():
    from lambdalab.courses.views import rendered

    html = rendered(
        "**bold** and `code`\n\n<script>alert(1)</script><img src=x onerror=alert(2)>"
        "[x](javascript:alert(3)) <a href='https://ok.example'>ok</a>"
    )
    assert "<strong>bold</strong>" in html and "<code>code</code>" in html
    assert "<script" not in html and "onerror" not in html and "javascript:" not in html
    assert 'href="https://ok.example"' in html
