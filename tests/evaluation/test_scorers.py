"""Every scorer, table-driven: its settings checked before a run, its verdict on outputs."""

from __future__ import annotations

import json

import pytest

from sandbox import scorers
from sandbox.scorers import Outcome, ScorerError

SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}

CASES = [
    # (scorer, output, expected, passed)
    ({"kind": "exact"}, "Paris", "Paris", True),
    ({"kind": "exact"}, "Paris ", "Paris", False),
    ({"kind": "icase"}, " paris", "PARIS", True),
    ({"kind": "icase"}, "Lyon", "Paris", False),
    ({"kind": "contains"}, "It is Paris.", "Paris", True),
    ({"kind": "contains", "value": "capital"}, "the capital", "x", True),
    ({"kind": "contains"}, "Lyon", "Paris", False),
    ({"kind": "contains"}, "anything", "", False),  # nothing to look for is no pass
    ({"kind": "regex", "pattern": r"^\d{3}-\d{4}$"}, "555-1234", "", True),
    ({"kind": "regex", "pattern": r"^\d{3}$"}, "5555", "", False),
    ({"kind": "json_valid"}, '{"a": 1}', "", True),
    ({"kind": "json_valid"}, "{a: 1}", "", False),
    ({"kind": "json_schema", "schema": SCHEMA}, '{"city": "Paris"}', "", True),
    ({"kind": "json_schema", "schema": json.dumps(SCHEMA)}, '{"town": "Paris"}', "", False),
    ({"kind": "json_schema", "schema": SCHEMA}, "not json", "", False),
    ({"kind": "numeric", "tolerance": 0.5}, "About 41.7 degrees", "42", True),
    ({"kind": "numeric", "tolerance": "0.1"}, "41.7", "42", False),
    ({"kind": "numeric"}, "42", "42.0", True),
    ({"kind": "numeric"}, "no number", "42", False),
    ({"kind": "length", "min": 2, "max": 5}, "abc", "", True),
    ({"kind": "length", "max": 2}, "abc", "", False),
    ({"kind": "length", "min": 4}, "abc", "", False),
]


@pytest.mark.parametrize(("spec", "output", "expected", "passed"), CASES)
def test_a_scorer_judges_an_output(spec, output, expected, passed):
    checked = scorers.validate(spec)
    score = scorers.score(checked, Outcome(output=output, expected=expected))
    assert score.passed is passed
    assert score.value == (1.0 if passed else 0.0)


@pytest.mark.parametrize(
    ("spec", "outcome", "passed"),
    [
        ({"kind": "latency", "max_ms": 500}, Outcome("x", latency_ms=420), True),
        ({"kind": "latency", "max_ms": 500}, Outcome("x", latency_ms=501), False),
        ({"kind": "cost", "max": 0.01}, Outcome("x", cost=0.002), True),
        ({"kind": "cost", "max": 0.001}, Outcome("x", cost=0.002), False),
    ],
)
def test_latency_and_cost_thresholds(spec, outcome, passed):
    assert scorers.score(scorers.validate(spec), outcome).passed is passed


def test_a_cost_threshold_on_a_model_without_prices_is_unscored_not_passed():
    score = scorers.score(scorers.validate({"kind": "cost", "max": 1}), Outcome("x"))
    assert score.value is None and not score.passed and "no prices" in score.reason


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"kind": "python"}, "Pick a scorer"),
        ("exact", "Pick a scorer"),
        ({"kind": "regex", "pattern": "("}, "Regular expression:"),
        ({"kind": "regex"}, "give a pattern"),
        ({"kind": "json_schema", "schema": "{"}, "not JSON"),
        ({"kind": "json_schema", "schema": {"type": "nope"}}, "JSON Schema:"),
        ({"kind": "numeric", "tolerance": "a lot"}, "must be a number"),
        ({"kind": "numeric", "tolerance": -1}, "zero or more"),
        ({"kind": "length"}, "a minimum, a maximum or both"),
        ({"kind": "length", "min": 5, "max": 2}, "over the maximum"),
        ({"kind": "latency"}, "give max_ms"),
        ({"kind": "judge", "model": "x", "rubric": "Is it good?"}, "{{output}}"),
        ({"kind": "judge", "rubric": "Rate {{output}}"}, "pick the model"),
        ({"kind": "judge", "model": "x", "rubric": "{{output}}", "scale": "1-10"}, "scale"),
    ],
)
def test_bad_scorer_settings_are_refused_with_a_message(spec, message):
    with pytest.raises(ScorerError, match=message.replace("{", r"\{").replace("}", r"\}")):
        scorers.validate(spec)


JUDGE = {"kind": "judge", "model": "m", "rubric": "Q: {{input}}\nA: {{output}}\nWant: {{expected}}"}


@pytest.mark.parametrize(
    ("scale", "answer", "value", "passed"),
    [
        ("1-5", {"score": 5, "reason": "right"}, 1.0, True),
        ("1-5", {"score": 3, "reason": "meh"}, 0.5, False),
        ("pass_fail", {"pass": True, "reason": "ok"}, 1.0, True),
        ("pass_fail", {"pass": False, "reason": "wrong"}, 0.0, False),
    ],
)
def test_a_judges_structured_answer_becomes_a_score(scale, answer, value, passed):
    spec = scorers.validate(JUDGE | {"scale": scale})
    score = scorers.judged(spec, json.dumps(answer))
    assert (score.value, score.passed) == (value, passed)
    assert answer["reason"] in score.reason


@pytest.mark.parametrize("answer", ["not json", '{"score": 9, "reason": "x"}', '{"score": 4}'])
def test_a_judge_answer_off_its_schema_is_unscored(answer):
    score = scorers.judged(scorers.validate(JUDGE), answer)
    assert score.value is None and not score.passed


def test_the_rubric_is_filled_with_the_row():
    text = scorers.rubric_text(scorers.validate(JUDGE), Outcome("Paris", "Paris", "Capital?"))
    assert text == "Q: Capital?\nA: Paris\nWant: Paris"
