"""Scorers: what an experiment checks in each output. Every scorer is data (a kind and its
settings), checked by `validate` before an experiment starts and applied by `score`; no
user code runs (no Python, no JavaScript). An LLM judge is a model asked, through
structured output, for a score and a reason; its call is made by the caller's `judge`
function, so that it is metered and priced like any other call.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jsonschema

KINDS = {
    "exact": "Exact match",
    "icase": "Case-insensitive match",
    "contains": "Contains",
    "regex": "Matches a regular expression",
    "json_valid": "Valid JSON",
    "json_schema": "Valid against a JSON Schema",
    "numeric": "Number within a tolerance",
    "length": "Length within bounds",
    "latency": "Latency under a threshold",
    "cost": "Cost under a threshold",
    "judge": "LLM as judge",
}
MAX_PATTERN = 500
JUDGE_SCHEMA = {
    "type": "object",
    "properties": {"score": {"type": "integer", "minimum": 1, "maximum": 5},
                   "reason": {"type": "string"}},
    "required": ["score", "reason"],
    "additionalProperties": False,
}  # fmt: skip
JUDGE_PASS_FAIL = {
    "type": "object",
    "properties": {"pass": {"type": "boolean"}, "reason": {"type": "string"}},
    "required": ["pass", "reason"],
    "additionalProperties": False,
}


class ScorerError(ValueError):
    """A scorer's settings are wrong: said next to the field, before anything runs."""


@dataclass(frozen=True)
class Outcome:
    """What one model said for one row, as scorers read it."""

    output: str
    expected: str = ""
    input: str = ""
    latency_ms: int | None = None
    cost: float | None = None


@dataclass(frozen=True)
class Score:
    name: str
    value: float | None  # 0..1 (a judge's 1-5 is scaled); None: could not be scored
    passed: bool
    reason: str = ""

    def as_dict(self) -> dict:
        return {"name": self.name, "value": self.value, "passed": self.passed,
                "reason": self.reason}  # fmt: skip


def _number(spec: dict, name: str, required: bool = True) -> float | None:
    value = spec.get(name)
    if value in (None, ""):
        if required:
            raise ScorerError(f"{KINDS[spec['kind']]}: give {name}.")
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ScorerError(f"{KINDS[spec['kind']]}: {name} must be a number.") from None
    if number != number or number < 0:
        raise ScorerError(f"{KINDS[spec['kind']]}: {name} must be zero or more.")
    return number


def validate(spec: Any) -> dict:
    """The scorer as it will run, or ScorerError saying what is wrong with it."""
    if not isinstance(spec, dict) or spec.get("kind") not in KINDS:
        raise ScorerError(f"Pick a scorer: one of {', '.join(KINDS)}.")
    kind, out = spec["kind"], {"kind": spec["kind"]}
    if kind == "contains":
        out["value"] = str(spec.get("value") or "")  # blank: the expected output
    elif kind == "regex":
        pattern = str(spec.get("pattern") or "")
        if not pattern or len(pattern) > MAX_PATTERN:
            raise ScorerError(
                f"Regular expression: give a pattern of 1 to {MAX_PATTERN} characters."
            )
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ScorerError(f"Regular expression: {exc}.") from None
        out["pattern"] = pattern
    elif kind == "json_schema":
        schema = spec.get("schema")
        if isinstance(schema, str):
            try:
                schema = json.loads(schema)
            except json.JSONDecodeError as exc:
                raise ScorerError(f"JSON Schema: not JSON ({exc.msg}).") from None
        if not isinstance(schema, dict):
            raise ScorerError("JSON Schema: give a schema object.")
        try:
            jsonschema.Draft202012Validator.check_schema(schema)
        except jsonschema.SchemaError as exc:
            raise ScorerError(f"JSON Schema: {exc.message}.") from None
        out["schema"] = schema
    elif kind == "numeric":
        out["tolerance"] = _number(spec, "tolerance", required=False) or 0.0
    elif kind == "length":
        low, high = _number(spec, "min", False), _number(spec, "max", False)
        if low is None and high is None:
            raise ScorerError("Length within bounds: give a minimum, a maximum or both.")
        if low is not None and high is not None and low > high:
            raise ScorerError("Length within bounds: the minimum is over the maximum.")
        out |= {"min": low, "max": high}
    elif kind == "latency":
        out["max_ms"] = _number(spec, "max_ms")
    elif kind == "cost":
        out["max"] = _number(spec, "max")
    elif kind == "judge":
        rubric = str(spec.get("rubric") or "").strip()
        if "{{output}}" not in rubric:
            raise ScorerError("LLM as judge: the rubric must contain {{output}}.")
        if not spec.get("model"):
            raise ScorerError("LLM as judge: pick the model that judges.")
        scale = spec.get("scale") or "1-5"
        if scale not in ("1-5", "pass_fail"):
            raise ScorerError("LLM as judge: the scale is 1-5 or pass_fail.")
        out |= {"model": str(spec["model"]), "rubric": rubric[:20_000], "scale": scale}
        out["threshold"] = _number(spec, "threshold", required=False) or 4
    return out


def name_of(spec: dict) -> str:
    return KINDS[spec["kind"]]


def _check(passed: bool, name: str, reason: str = "") -> Score:
    return Score(name, 1.0 if passed else 0.0, passed, reason)


def _parsed_number(text: str) -> float | None:
    found = re.search(r"-?\d+(?:[.,]\d+)?(?:[eE][-+]?\d+)?", text or "")
    return float(found[0].replace(",", ".")) if found else None


def score(
    spec: dict, outcome: Outcome, judge: Callable[[dict, Outcome], Score] | None = None
) -> Score:
    """One scorer on one output."""
    name, kind, out = name_of(spec), spec["kind"], outcome.output
    if kind == "exact":
        return _check(out == outcome.expected, name)
    if kind == "icase":
        return _check(out.strip().casefold() == outcome.expected.strip().casefold(), name)
    if kind == "contains":
        needle = spec.get("value") or outcome.expected
        return _check(bool(needle) and needle in out, name)
    if kind == "regex":
        return _check(re.search(spec["pattern"], out) is not None, name)
    if kind in ("json_valid", "json_schema"):
        try:
            value = json.loads(out)
        except (json.JSONDecodeError, RecursionError) as exc:
            return _check(False, name, f"Not JSON: {getattr(exc, 'msg', 'too deep')}.")
        if kind == "json_valid":
            return _check(True, name)
        errors = list(jsonschema.Draft202012Validator(spec["schema"]).iter_errors(value))
        return _check(not errors, name, errors[0].message[:300] if errors else "")
    if kind == "numeric":
        got, want = _parsed_number(out), _parsed_number(outcome.expected)
        if got is None or want is None:
            return _check(
                False, name, "No number in the output." if got is None else "No expected number."
            )
        return _check(abs(got - want) <= spec["tolerance"], name, f"{got:g} against {want:g}")
    if kind == "length":
        size = len(out)
        ok = (spec["min"] is None or size >= spec["min"]) and (
            spec["max"] is None or size <= spec["max"]
        )
        return _check(ok, name, f"{size} characters")
    if kind == "latency":
        if outcome.latency_ms is None:
            return Score(name, None, False, "No latency recorded.")
        return _check(outcome.latency_ms <= spec["max_ms"], name, f"{outcome.latency_ms} ms")
    if kind == "cost":
        if outcome.cost is None:
            return Score(name, None, False, "The model has no prices.")
        return _check(outcome.cost <= spec["max"], name, f"${outcome.cost:.6f}")
    if judge is None:
        return Score(name, None, False, "No judge available.")
    return judge(spec, outcome)


def rubric_text(spec: dict, outcome: Outcome) -> str:
    """The judge's prompt: the rubric with the row filled in."""
    text = spec["rubric"]
    for name, value in (("input", outcome.input), ("output", outcome.output),
                        ("expected", outcome.expected)):  # fmt: skip
        text = text.replace("{{" + name + "}}", value)
    return text


def judged(spec: dict, answer: str) -> Score:
    """A judge's structured answer as a Score (a 1-5 score is scaled to 0..1)."""
    name = name_of(spec)
    try:
        data = json.loads(answer)
    except (json.JSONDecodeError, RecursionError):
        return Score(name, None, False, "The judge did not answer in JSON.")
    schema = JUDGE_PASS_FAIL if spec["scale"] == "pass_fail" else JUDGE_SCHEMA
    errors = list(jsonschema.Draft202012Validator(schema).iter_errors(data))
    if errors:
        return Score(
            name, None, False, f"The judge's answer is off its schema: {errors[0].message[:200]}"
        )
    reason = str(data["reason"])[:2000]
    if spec["scale"] == "pass_fail":
        return _check(data["pass"], name, reason)
    value = (data["score"] - 1) / 4
    return Score(name, value, data["score"] >= spec["threshold"], f"{data['score']}/5: {reason}")
