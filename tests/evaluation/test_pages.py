"""The evaluation pages and API, for each role: upload and map a dataset (row errors
first), estimate and start an experiment, read its results, compare two, review blind,
and keep prompt versions with labels."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from integrations.models import AuditEvent
from sandbox.models import Dataset, Experiment, ExperimentResult, PromptVersion, Review, SavedPrompt
from tests.evaluation.helpers import answering, version

pytestmark = pytest.mark.django_db(transaction=True)

BAD_CSV = b"word,note,expected\nsun,,SUN\nmoon,hi,MOON\n,x,STAR\n"


def _upload(client, data=BAD_CSV, name="Sky"):
    return client.post(reverse("dataset-upload"),
                       {"name": name, "file": SimpleUploadedFile("sky.csv", data)})  # fmt: skip


def test_an_upload_with_bad_rows_names_them_and_imports_nothing_until_fixed(client, bob):
    client.force_login(bob)
    page = _upload(client).content.decode()
    assert "Step 2 of 2" in page
    token = page.split('name="token" value="')[1].split('"')[0]
    mapping = {"token": token, "use-0": "variable", "name-0": "word", "use-1": "variable",
               "name-1": "note", "use-2": "expected", "name-2": "expected"}  # fmt: skip
    page = client.post(reverse("dataset-upload"), mapping).content.decode()
    assert "Row 1: No value for note." in page and "Row 3: No value for word." in page
    assert "nothing is imported" in page and not Dataset.objects.exists()
    page = client.post(reverse("dataset-upload"), mapping | {"use-1": "metadata"}).content.decode()
    assert "Row 3: No value for word." in page and not Dataset.objects.exists()
    response = _upload(client, BAD_CSV.replace(b",x,STAR", b"star,x,STAR"), name="Sky 2")
    token = response.content.decode().split('name="token" value="')[1].split('"')[0]
    response = client.post(
        reverse("dataset-upload"), mapping | {"token": token, "use-1": "metadata"}
    )
    dataset = Dataset.objects.get()
    assert response.status_code == 302 and dataset.name == "Sky 2"
    assert dataset.latest.rows[2] == {
        "variables": {"word": "star"},
        "expected": "STAR",
        "metadata": {"note": "x"},
    }
    assert AuditEvent.objects.filter(action="dataset").exists()
    page = client.get(reverse("dataset-detail", args=[dataset.pk])).content.decode()
    assert "star" in page and "Export CSV" in page


def test_a_member_reads_datasets_but_cannot_upload(client, charlie, bob):
    version(bob)
    client.force_login(charlie)
    assert client.get(reverse("datasets")).status_code == 200
    assert _upload(client).status_code == 403


def _experiment_post(version_, models, **extra):
    return {"name": "Capitals", "dataset_version": str(version_.pk), "user_prompt": "Say {{word}}",
            "targets": [str(m.pk) for m in models], "concurrency": "4", "max_tokens": "5",
            "scorer-exact": "1", **extra}  # fmt: skip


def test_a_member_estimates_then_starts_an_experiment_and_reads_its_results(
    client, charlie, bob, two_models, upstream, immediate
):
    upstream.handler = answering(wrong_for="beta")
    rows = version(bob)
    client.force_login(charlie)
    page = client.post(
        reverse("experiment-new"), _experiment_post(rows, two_models)
    ).content.decode()
    assert "40 calls" in page and "estimated cost" in page and not Experiment.objects.exists()
    response = client.post(
        reverse("experiment-new"), _experiment_post(rows, two_models, confirm="1")
    )
    experiment = Experiment.objects.get()
    assert (
        response.status_code == 302 and experiment.status == "done" and experiment.owner == charlie
    )
    page = client.get(reverse("experiment-detail", args=[experiment.pk])).content.decode()
    assert "100%" in page and "0%" in page  # Alpha passes every row, Beta none
    assert "Pass rate per model" in page and page.count("Diff with the expected output") == 20
    assert '<span class="diff-del">W</span><span class="diff-add">w</span>' in page
    failing = client.get(reverse("experiment-detail", args=[experiment.pk]), {"show": "failing"})
    assert "20 rows" in failing.content.decode()
    csv = client.get(reverse("experiment-export", args=[experiment.pk]), {"format": "csv"})
    assert csv["Content-Type"] == "text/csv" and csv.content.decode().count("\n") == 41


def test_a_scorer_with_bad_settings_is_refused_next_to_it(client, bob, two_models, immediate):
    client.force_login(bob)
    post = _experiment_post(
        version(bob), two_models[:1], **{"scorer-regex": "1", "regex-pattern": "("}
    )
    page = client.post(reverse("experiment-new"), post).content.decode()
    assert "Regular expression:" in page and not Experiment.objects.exists()


def test_two_experiments_compare_row_by_row(client, bob, two_models, upstream, immediate):
    a, _ = two_models
    rows = version(bob)
    client.force_login(bob)
    upstream.handler = answering(wrong_for="alpha")
    client.post(reverse("experiment-new"), _experiment_post(rows, [a], confirm="1", name="Before"))
    upstream.handler = answering()
    client.post(reverse("experiment-new"), _experiment_post(rows, [a], confirm="1", name="After"))
    before, after = Experiment.objects.get(name="Before"), Experiment.objects.get(name="After")
    page = client.get(reverse("experiment-compare", args=[after.pk]), {"with": str(before.pk)})
    assert "20 better, 0 worse" in page.content.decode()


def test_a_blind_review_hides_the_models_and_keeps_win_rates(
    client, bob, two_models, upstream, immediate
):
    upstream.handler = answering(wrong_for="beta")
    rows = version(bob, name="Few")
    client.force_login(bob)
    client.post(reverse("experiment-new"), _experiment_post(rows, two_models, confirm="1"))
    experiment = Experiment.objects.get()
    url = reverse("experiment-review", args=[experiment.pk])
    for _ in range(3):
        page = client.get(url).content.decode()
        assert "Alpha" not in page.split("Win rates")[0]  # the answers are unlabelled
        fields = {
            k: page.split(f'name="{k}" value="')[1].split('"')[0] for k in ("row", "left", "right")
        }
        alpha_side = "left" if fields["left"] == "0" else "right"
        client.post(url, fields | {"pick": alpha_side})
    assert Review.objects.filter(winner=0).count() == 3
    page = client.get(reverse("experiment-detail", args=[experiment.pk])).content.decode()
    assert "wins 100% of 3" in page


def test_the_results_page_asks_the_same_number_of_queries_at_any_size(client, bob, two_models):
    a, b = two_models
    client.force_login(bob)
    counts = []
    for size in (2, 60):
        rows = version(bob, [{"variables": {"word": f"w{i}"}, "expected": "x", "metadata": {}} for i in range(size)],
                       name=f"Size {size}")  # fmt: skip
        experiment = Experiment.objects.create(
            name=f"E{size}", owner=bob, dataset_version=rows, user_prompt="{{word}}", status="done",
            targets=[{"model": str(a.pk), "name": "A"}, {"model": str(b.pk), "name": "B"}],
        )  # fmt: skip
        ExperimentResult.objects.bulk_create(
            ExperimentResult(experiment=experiment, row=r, target=t, status="ok", output="x", passed=True,
                             latency_ms=5, score=1.0, scores=[{"name": "Exact match", "value": 1.0, "passed": True}])
            for r in range(size) for t in range(2)
        )  # fmt: skip
        with CaptureQueriesContext(connection) as queries:
            assert client.get(reverse("experiment-detail", args=[experiment.pk])).status_code == 200
        counts.append(len(queries))
    assert counts[0] == counts[1], counts


def test_each_prompt_save_is_a_version_labels_move_and_a_diff_renders(client, bob, charlie):
    client.force_login(bob)
    base = {"prompt_name": "Greeter", "user_prompt": "Hello {{name}}", "prompt_shared": "on"}
    client.post(reverse("sandbox-prompt-save"), base)
    client.post(reverse("sandbox-prompt-save"), base)  # unchanged: no new version
    client.post(
        reverse("sandbox-prompt-save"),
        base | {"user_prompt": "Hi there {{name}}", "version_message": "shorter"},
    )
    prompt = SavedPrompt.objects.get()
    assert list(prompt.versions.values_list("number", "message")) == [(2, "shorter"), (1, "")]
    page = client.get(reverse("prompt-detail", args=[prompt.pk])).content.decode()
    assert 'class="diff-del">-Hello {{name}}' in page.replace("&#x27;", "'") or "-Hello" in page
    assert "+Hi there" in page
    for number in (1, 2):
        client.post(
            reverse("prompt-label", args=[prompt.pk]), {"label": "production", "version": number}
        )
    label = prompt.labels.get()
    assert label.version.number == 2 and prompt.labels.count() == 1
    opened = client.get(
        reverse("sandbox"), {"prompt": str(prompt.pk), "version": "1"}
    ).content.decode()
    assert "Hello {{name}}" in opened
    client.force_login(charlie)  # a Member reads versions but moves no label
    assert client.get(reverse("prompt-detail", args=[prompt.pk])).status_code == 200
    assert (
        client.post(
            reverse("prompt-label", args=[prompt.pk]), {"label": "staging", "version": 1}
        ).status_code
        == 403
    )
    assert PromptVersion.objects.count() == 2


def test_the_api_uploads_starts_and_reports_an_experiment(
    client, bob, two_models, upstream, api_token, immediate
):
    from tests.integrations.test_api import Api

    upstream.handler = answering()
    api = Api(client, api_token(bob))
    status, body = api.call("post", "datasets", {"name": "Bad", "content": "word,expected\n,X\n"})
    assert status == 422 and body["errors"] == [{"row": 1, "message": "No value for word."}]
    content = "word,expected\n" + "".join(f"w{i},W{i}\n" for i in range(5))
    status, body = api.call("post", "datasets", {"name": "Words", "content": content})
    assert status == 201 and body["rows"] == 5
    start = {"name": "CI gate", "dataset_id": body["id"], "user": "Say {{word}}",
             "targets": [{"model": str(two_models[0].pk)}], "scorers": [{"kind": "exact"}], "max_tokens": 5}  # fmt: skip
    status, body = api.call("post", "experiments", start)
    assert status == 201 and body["status"] == "done", body
    assert body["aggregates"][0]["pass_rate"] == 1.0 and body["progress"]["done"] == 5
    status, listed = api.call("get", f"experiments/{body['id']}/results")
    assert status == 200 and len(listed) == 5 and listed[0]["passed"] is True
    status, bad = api.call(
        "post", "experiments", start | {"scorers": [{"kind": "regex", "pattern": "("}]}
    )
    assert status == 422 and bad["errors"][-1]["field"] == "scorers.regex"


def test_an_editor_keeps_a_sandbox_run_as_a_new_dataset_row(client, bob, charlie, make_integration):
    from sandbox.models import SandboxRun

    model = make_integration()
    rows = version(bob, name="Cases")
    run = SandboxRun.objects.create(user=bob, model=model, model_name="M", integration_name="I",
                                    user_prompt="What is 2+2?", reply="4", status="ok")  # fmt: skip
    client.force_login(bob)
    page = client.get(reverse("sandbox-run", args=[run.pk])).content.decode()
    assert "Keep it as a test case" in page
    client.post(reverse("dataset-add-run"), {"dataset": str(rows.dataset.pk), "run": str(run.pk)})
    latest = rows.dataset.latest
    assert latest.number == 2 and latest.rows[-1]["variables"] == {"input": "What is 2+2?"}
    assert latest.rows[-1]["expected"] == "4" and len(rows.rows) == 20  # v1 unchanged
    client.force_login(charlie)
    assert (
        "Keep it as a test case"
        not in client.get(reverse("sandbox-run", args=[run.pk])).content.decode()
    )


def test_an_editor_edits_rows_on_the_page_as_a_new_version_and_bad_lines_are_named(
    client, bob, charlie
):
    rows = version(bob, name="Edited")
    url = reverse("dataset-edit", args=[rows.dataset.pk])
    client.force_login(bob)
    text = client.get(url).content.decode()
    assert "&quot;w0&quot;" in text  # the rows, as JSON Lines
    bad = (
        '{"variables": {"word": "sun"}, "expected": "SUN"}\nnot json\n{"variables": {"word": ""}}\n'
    )
    page = client.post(url, {"rows": bad}).content.decode()
    assert "Line 2: Not JSON" in page and "Line 3: No value for word." in page
    assert rows.dataset.versions.count() == 1
    client.post(
        url, {"rows": bad.replace("not json\n", "").replace('""', '"moon"'), "message": "two words"}
    )
    latest = rows.dataset.latest
    assert (latest.number, latest.message, len(latest.rows)) == (2, "two words", 2)
    client.force_login(charlie)
    assert client.get(url).status_code == 403
