"""An experiment's results as people read them: the rows × targets table with filters,
two experiments compared row by row, the blind pairwise review and its win rates, and
the export. One query for the results, whatever the size."""

from __future__ import annotations

import csv
import io
import json
import math
import random
from difflib import SequenceMatcher

from django.db.models import Count, Q

from sandbox.models import Experiment, ExperimentResult, Review

PAGE_ROWS = 100


def _by_row(experiment: Experiment) -> dict[int, dict[int, ExperimentResult]]:
    table: dict[int, dict[int, ExperimentResult]] = {}
    for result in experiment.results.exclude(status="running").defer("worker"):
        table.setdefault(result.row, {})[result.target] = result
    return table


def table(experiment: Experiment, show: str = "", page: int = 1) -> dict:
    """One page of rows, each with every target's result; `show`: "failing" (a target
    failed or did not pass) or "disagree" (targets differ in passing, or in what they
    said). The filter is one grouped query; only the page's results are read."""
    rows = experiment.dataset_version.rows
    if show in ("failing", "disagree"):
        flags = experiment.results.values("row").annotate(
            failing=Count("pk", filter=Q(status="failed") | Q(passed=False)),
            verdicts=Count("passed", distinct=True),
            unscored=Count("pk", filter=Q(passed__isnull=True)),
            outputs=Count("output", distinct=True, filter=Q(status="ok")),
        )  # fmt: skip
        matching = sorted(
            f["row"] for f in flags
            if (show == "failing" and f["failing"])
            or (show == "disagree" and (f["verdicts"] + bool(f["unscored"] and f["verdicts"]) > 1
                                        or f["outputs"] > 1))
        )  # fmt: skip
    else:
        show, matching = "", list(range(len(rows)))
    pages = max(1, math.ceil(len(matching) / PAGE_ROWS))
    page = min(max(page, 1), pages)
    shown = matching[(page - 1) * PAGE_ROWS : page * PAGE_ROWS]
    by_row: dict[int, dict[int, ExperimentResult]] = {}
    if shown:
        found = experiment.results.filter(row__in=shown).defer("worker")
        for result in found:
            by_row.setdefault(result.row, {})[result.target] = result
    out = []
    for index in shown:
        results = by_row.get(index, {})
        cells = [results.get(t) for t in range(len(experiment.targets))]
        expected = str((rows[index] if index < len(rows) else {}).get("expected") or "")
        for cell in cells:
            if cell is not None and expected and cell.output != expected:
                cell.diff = diff_parts(cell.output[:2000], expected[:2000])
        out.append({"index": index, "number": index + 1, "row": rows[index] if index < len(rows) else {},
                    "cells": cells})  # fmt: skip
    return {"rows": out, "count": len(matching), "page": page, "pages": pages}


def diff_parts(output: str, expected: str) -> list[tuple[str, str]]:
    """The output against the expected one: (kind, text) runs, kind same | add | del."""
    if not expected:
        return [("same", output)]
    parts = []
    for op, a1, a2, b1, b2 in SequenceMatcher(None, expected, output, autojunk=False).get_opcodes():
        if op == "equal":
            parts.append(("same", output[b1:b2]))
        if op in ("replace", "delete"):
            parts.append(("del", expected[a1:a2]))
        if op in ("replace", "insert"):
            parts.append(("add", output[b1:b2]))
    return parts


def compare(a: Experiment, b: Experiment) -> dict:
    """Row by row, for each target both ran (by name): what got better and what worse."""
    names_a = {t["name"]: i for i, t in enumerate(a.targets)}
    shared = [
        (t["name"], names_a[t["name"]], j) for j, t in enumerate(b.targets) if t["name"] in names_a
    ]
    rows_a, rows_b = _by_row(a), _by_row(b)
    better, worse, same = [], [], 0
    count = min(len(a.dataset_version.rows), len(b.dataset_version.rows))
    for row in range(count):
        for name, i, j in shared:
            before, after = rows_a.get(row, {}).get(i), rows_b.get(row, {}).get(j)
            if before is None or after is None:
                continue
            was, now = bool(before.passed), bool(after.passed)
            entry = {"row": row + 1, "target": name, "before": before, "after": after}
            if now and not was:
                better.append(entry)
            elif was and not now:
                worse.append(entry)
            else:
                same += 1
    return {"better": better, "worse": worse, "same": same, "shared": [s[0] for s in shared]}


def next_pair(experiment: Experiment, user) -> dict | None:
    """A row and two targets' answers the person has not judged, in a random order."""
    done = set(
        Review.objects.filter(experiment=experiment, reviewer=user).values_list(
            "row", "left", "right"
        )
    )
    by_row = _by_row(experiment)
    targets = len(experiment.targets)
    open_pairs = [
        (row, i, j) for row, cells in by_row.items() for i in range(targets) for j in range(i + 1, targets)
        if i in cells and j in cells and cells[i].status == cells[j].status == "ok"
        and (row, i, j) not in done and (row, j, i) not in done
    ]  # fmt: skip
    if not open_pairs:
        return None
    row, i, j = random.choice(open_pairs)
    left, right = (i, j) if random.random() < 0.5 else (j, i)
    cells = by_row[row]
    return {"row": row, "input": experiment.dataset_version.rows[row], "left": left, "right": right,
            "left_output": cells[left].output, "right_output": cells[right].output}  # fmt: skip


def wilson(wins: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """The 95% Wilson score interval of a win rate (ties count half)."""
    if n == 0:
        return 0.0, 1.0
    p = wins / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def win_rates(experiment: Experiment) -> list[dict]:
    """Per target: blind reviews it was in, its win rate (ties count half), and the 95%
    confidence interval."""
    stats = {i: [0.0, 0] for i in range(len(experiment.targets))}
    for left, right, winner in Review.objects.filter(experiment=experiment).values_list(
        "left", "right", "winner"
    ):
        for side in (left, right):
            stats[side][1] += 1
            stats[side][0] += 0.5 if winner is None else 1.0 if winner == side else 0.0
    out = []
    for i, (wins, n) in stats.items():
        low, high = wilson(wins, n)
        out.append({"target": experiment.targets[i]["name"], "reviews": n,
                    "rate": wins / n if n else None, "low": low, "high": high})  # fmt: skip
    return out


def export(experiment: Experiment, fmt: str) -> tuple[bytes, str]:
    rows = experiment.dataset_version.rows
    records = []
    for result in experiment.results.exclude(status="running").order_by("row", "target"):
        row = rows[result.row] if result.row < len(rows) else {}
        records.append({
            "row": result.row + 1, "target": experiment.targets[result.target]["name"],
            "model": result.model_name, "variables": row.get("variables", {}),
            "expected": row.get("expected", ""), "output": result.output, "status": result.status,
            "passed": result.passed, "scores": result.scores, "latency_ms": result.latency_ms,
            "prompt_tokens": result.prompt_tokens, "completion_tokens": result.completion_tokens,
            "cost": float(result.cost) if result.cost is not None else None,
            "error": result.error_message,
        })  # fmt: skip
    if fmt == "json":
        return json.dumps(records, ensure_ascii=False, indent=1).encode(), "application/json"
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    columns = ["row", "target", "model", "expected", "output", "status", "passed", "latency_ms",
               "prompt_tokens", "completion_tokens", "cost", "error"]  # fmt: skip
    writer.writerow([*columns, "scores"])
    for record in records:
        scores = "; ".join(
            f"{s['name']}={'pass' if s['passed'] else 'fail'}" for s in record["scores"]
        )
        writer.writerow([*(record[c] for c in columns), scores])
    return buffer.getvalue().encode(), "text/csv"
