"""Datasets from CSV and JSONL: mapped, checked row by row, saved as versions, exported."""

from __future__ import annotations

import csv
import io
import json

import pytest

from sandbox import datasets
from sandbox.datasets import DatasetError, Mapping
from sandbox.models import Dataset

pytestmark = pytest.mark.django_db

GOOD_CSV = b"question,tone,expected,source\nCapital of France?,dry,Paris,atlas\n2+2?,warm,4,maths\n"


def test_a_csv_is_read_and_the_mapping_guessed():
    columns, records, errors = datasets.read(GOOD_CSV, "cases.csv")
    assert columns == ["question", "tone", "expected", "source"] and errors == []
    mapping = datasets.guess(columns)
    assert mapping.expected == "expected"
    assert mapping.variables == {"question": "question", "tone": "tone", "source": "source"}


def test_mapped_rows_carry_variables_expected_and_metadata():
    _, records, _ = datasets.read(GOOD_CSV, "cases.csv")
    rows, errors = datasets.rows(records, Mapping({"q": "question"}, "expected", ("source",)))
    assert errors == []
    assert rows[0] == {"variables": {"q": "Capital of France?"}, "expected": "Paris",
                       "metadata": {"source": "atlas"}}  # fmt: skip


def test_bad_rows_are_each_named_and_nothing_is_saved_until_they_are_fixed():
    data = (
        b'{"q": "one", "a": "1"}\nnot json\n[1, 2]\n{"q": "", "a": "3"}\n{"q": {"x": 1}, "a": 4}\n'
    )
    columns, records, read_errors = datasets.read(data, "cases.jsonl")
    assert read_errors == [
        (2, "Not JSON: Expecting value."),
        (3, "Each line must be one JSON object."),
    ]
    rows, errors = datasets.rows(records, Mapping({"q": "q"}, "a"))
    assert (4, "No value for q.") in errors
    assert rows[4]["variables"]["q"] == '{"x": 1}' and rows[4]["expected"] == "4"
    assert not Dataset.objects.exists()


@pytest.mark.parametrize(
    ("data", "name", "message"),
    [
        (b"\xff\xfe\x00", "x.csv", "not UTF-8"),
        (b"", "x.jsonl", "no rows"),
        (b"a,b\n" + b"1,2\n" * (datasets.MAX_ROWS + 1), "x.csv", "More than"),
        (b"x" * (datasets.MAX_BYTES + 1), "x.csv", "over 5 MB"),
    ],
)
def test_an_unreadable_upload_is_refused_whole(data, name, message):
    with pytest.raises(DatasetError, match=message):
        datasets.read(data, name)


def test_a_variable_name_prompts_cannot_use_is_refused():
    _, records, _ = datasets.read(GOOD_CSV, "cases.csv")
    _, errors = datasets.rows(records, Mapping({"the question": "question"}))
    assert errors and "cannot be a variable name" in errors[0][1]


def test_each_save_is_a_new_version_and_exports_round_trip(bob):
    dataset = Dataset.objects.create(name="Capitals", owner=bob)
    _, records, _ = datasets.read(GOOD_CSV, "cases.csv")
    first, _ = datasets.rows(records, Mapping({"question": "question"}, "expected", ("source",)))
    v1 = datasets.save_version(dataset, first, bob, "upload")
    v2 = datasets.save_version(dataset, first[:1], bob, "drop a row")
    assert (v1.number, v2.number) == (1, 2) and len(v1.rows) == 2 and dataset.latest == v2
    body, kind = datasets.export(v1, "csv")
    assert kind == "text/csv"
    assert list(csv.reader(io.StringIO(body.decode()))) == [
        ["question", "expected", "meta.source"],
        ["Capital of France?", "Paris", "atlas"],
        ["2+2?", "4", "maths"],
    ]
    body, _ = datasets.export(v1, "jsonl")
    assert [json.loads(line) for line in body.decode().splitlines()] == v1.rows
