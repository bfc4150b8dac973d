"""Datasets: rows read from CSV or JSONL, mapped to variables, an expected output and
metadata, checked row by row (nothing is imported while one row is wrong), saved as a new
immutable version, and exported again."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass

from django.db import IntegrityError, transaction

from sandbox.forms import VARIABLE
from sandbox.models import Dataset, DatasetVersion

MAX_BYTES = 5 * 1024 * 1024
MAX_ROWS = 10_000
MAX_CELL = 100_000


class DatasetError(ValueError):
    """The upload as a whole cannot be read (not CSV, not JSONL, too large)."""


@dataclass(frozen=True)
class Mapping:
    """Which column is what: variables by the name prompts use, the expected output,
    and the columns kept as metadata."""

    variables: dict  # {variable name: column}
    expected: str = ""
    metadata: tuple = ()


def read(data: bytes, filename: str) -> tuple[list[str], list[dict], list[tuple[int, str]]]:
    """(columns, records, errors by line) of an upload: CSV with a header, or JSON Lines."""
    if len(data) > MAX_BYTES:
        raise DatasetError(f"The file is over {MAX_BYTES // (1024 * 1024)} MB.")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DatasetError("The file is not UTF-8 text.") from None
    if "\x00" in text:
        raise DatasetError("The file holds NUL characters: it is not text.")
    if filename.lower().endswith((".jsonl", ".ndjson", ".json")):
        return _jsonl(text)
    return _csv(text)


def _csv(text: str):
    reader = csv.DictReader(io.StringIO(text))
    columns = [c for c in (reader.fieldnames or []) if c]
    if not columns:
        raise DatasetError("The CSV has no header row.")
    records, errors = [], []
    try:
        for record in reader:
            if None in record:  # more cells than headers
                errors.append((reader.line_num, "More cells than the header has columns."))
                record.pop(None)
            records.append({k: v or "" for k, v in record.items() if k})
            if len(records) > MAX_ROWS:
                raise DatasetError(f"More than {MAX_ROWS} rows.")
    except csv.Error as exc:
        raise DatasetError(f"Not CSV: {exc} (line {reader.line_num}).") from None
    return columns, records, errors


def _json_lines(text: str, errors: list):
    """(line number, the line's JSON value, or None with its error added) for each line
    that is not blank."""
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except (json.JSONDecodeError, RecursionError) as exc:
            errors.append((number, f"Not JSON: {getattr(exc, 'msg', 'nested too deep')}."))
            yield number, None


def _jsonl(text: str):
    columns: dict[str, None] = {}
    records, errors = [], []
    for number, record in _json_lines(text, errors):
        if record is None:
            records.append({})
            continue
        if not isinstance(record, dict):
            errors.append((number, "Each line must be one JSON object."))
            records.append({})
            continue
        flat = {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in record.items()}
        columns.update(dict.fromkeys(flat))
        records.append(flat)
        if len(records) > MAX_ROWS:
            raise DatasetError(f"More than {MAX_ROWS} rows.")
    if not records:
        raise DatasetError("The file has no rows.")
    return list(columns), records, errors


def guess(columns: list[str]) -> Mapping:
    """A first mapping to show: "expected"/"output"/"answer" is the expected output, every
    other column a variable of its own name."""
    expected = next((c for c in columns if c.lower() in ("expected", "output", "answer",
                                                          "expected_output", "ideal")), "")  # fmt: skip
    names = {c: c for c in columns if c != expected and VARIABLE.fullmatch("{{" + c + "}}")}
    return Mapping(names, expected)


def rows(records: list[dict], mapping: Mapping, line_of=None) -> tuple[list[dict], list]:
    """The records as dataset rows, and every row's problems as (row number, message)."""
    out, errors = [], []
    if not mapping.variables:
        return [], [(0, "Map at least one column to a variable.")]
    for name in mapping.variables:
        if not VARIABLE.fullmatch("{{" + name + "}}"):
            errors.append((0, f"{name!r} cannot be a variable name: letters, digits and _."))
    for number, record in enumerate(records, 1):
        where = line_of(number) if line_of else number
        variables = {name: record.get(column, "") for name, column in mapping.variables.items()}
        blank = [name for name, value in variables.items() if not str(value).strip()]
        if blank:
            errors.append((where, f"No value for {', '.join(blank)}."))
        if any(len(str(v)) > MAX_CELL for v in record.values()):
            errors.append((where, f"A cell is over {MAX_CELL:,} characters."))
        out.append({
            "variables": variables,
            "expected": record.get(mapping.expected, "") if mapping.expected else "",
            "metadata": {c: record.get(c, "") for c in mapping.metadata},
        })  # fmt: skip
    return out, errors


def edited(text: str) -> tuple[list[dict], list]:
    """Rows written on the page as JSON Lines of {"variables", "expected", "metadata"}:
    the rows, and every line's problems."""
    if len(text.encode()) > MAX_BYTES:
        return [], [(0, f"Over {MAX_BYTES // (1024 * 1024)} MB.")]
    out, errors = [], []
    for number, row in _json_lines(text, errors):
        if row is None:
            continue
        variables = row.get("variables") if isinstance(row, dict) else None
        if not isinstance(variables, dict) or not variables:
            errors.append((number, 'Each line needs "variables": {"name": "value", …}.'))
            continue
        bad = [n for n in variables if not VARIABLE.fullmatch("{{" + str(n) + "}}")]
        blank = [n for n, v in variables.items() if not str(v).strip()]
        if bad:
            errors.append((number, f"{bad[0]!r} cannot be a variable name: letters, digits and _."))
        if blank:
            errors.append((number, f"No value for {', '.join(map(str, blank))}."))
        metadata = row.get("metadata") if isinstance(row.get("metadata"), dict) else {}
        out.append({"variables": {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in variables.items()},
                    "expected": str(row.get("expected") or ""), "metadata": metadata})  # fmt: skip
    if not out and not errors:
        errors.append((0, "No rows: a dataset needs at least one."))
    if len(out) > MAX_ROWS:
        errors.append((0, f"More than {MAX_ROWS} rows."))
    return out, errors


def save_version(dataset: Dataset, new_rows: list[dict], user, message: str = "") -> DatasetVersion:
    """A new version of the dataset holding `new_rows`; versions before it stay."""
    for _ in range(5):  # two saves at once: the second takes the next number
        last = dataset.versions.order_by("-number").values_list("number", flat=True).first()
        try:
            with transaction.atomic():
                return DatasetVersion.objects.create(
                    dataset=dataset, number=(last or 0) + 1, rows=new_rows,
                    created_by=user, message=message[:200],
                )  # fmt: skip
        except IntegrityError:
            continue
    raise IntegrityError("The dataset is being saved by several people at once; try again.")


def export(version: DatasetVersion, fmt: str) -> tuple[bytes, str]:
    """(body, content type) of a version as CSV or JSONL."""
    if fmt == "jsonl":
        lines = (json.dumps(row, ensure_ascii=False) for row in version.rows)
        return ("\n".join(lines) + "\n").encode(), "application/x-ndjson"
    names = sorted({n for row in version.rows for n in row["variables"]})
    meta = sorted({n for row in version.rows for n in row.get("metadata", {})})
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([*names, "expected", *(f"meta.{m}" for m in meta)])
    for row in version.rows:
        writer.writerow([*(row["variables"].get(n, "") for n in names), row.get("expected", ""),
                         *(row.get("metadata", {}).get(m, "") for m in meta)])  # fmt: skip
    return buffer.getvalue().encode(), "text/csv"
