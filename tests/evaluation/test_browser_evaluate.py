"""In Chromium, at 1280 and 390 px with axe: upload and map a dataset, estimate and start
an experiment, watch its progress while a task worker runs it, open the results, compare
two experiments, and review blind."""

from __future__ import annotations

import threading

import pytest
from django_tasks_db.management.commands.db_worker import Worker
from playwright.sync_api import expect

from integrations.models import CustomModel
from sandbox.models import Experiment, Review
from tests.conftest import log_in
from tests.evaluation.helpers import answering, request_of
from tests.evaluation.test_experiments import closing
from tests.test_browser_every_page import DESKTOP, PHONE, overflow, serious

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CSV = "word,expected\n" + "".join(f"w{i},W{i}\n" for i in range(20))


@pytest.fixture
def worker():
    """A db_worker's loop in a thread of the test, on the live server's database."""
    loop = Worker(queue_names=["default"], interval=0.1, batch=False, backend_name="default",
                  startup_delay=False, max_tasks=None, worker_id="browser-test",
                  excluded_queue_names=[])  # fmt: skip
    thread = threading.Thread(target=closing(loop.run), daemon=True)
    thread.start()
    yield loop
    loop.running = False
    thread.join(timeout=10)


def _checked(page, problems: list, label: str) -> None:
    for size in (DESKTOP, PHONE):
        page.set_viewport_size(size)
        if size is PHONE and (extra := overflow(page)) > 0:
            problems.append(f"{label} at 390 px: {extra} px too wide")
        problems += [f"{label} at {size['width']} px: {v}" for v in serious(page)]
    page.set_viewport_size(DESKTOP)


def test_upload_start_watch_results_compare_and_review(
    page, upstream, make_integration, bob, worker, artifacts
):
    alpha = make_integration(
        name="Alpha", model_id="alpha", price_input_per_mtok=1, price_output_per_mtok=2
    )
    CustomModel.objects.create(integration=alpha.integration, name="Beta", model_id="beta",
                               price_input_per_mtok=3, price_output_per_mtok=6)  # fmt: skip
    upstream.handler = answering(delay=0.15, wrong_for="beta")
    problems: list[str] = []
    log_in(page, "bob", "pw-bob-123")

    page.get_by_role("link", name="Evaluate").click()
    page.get_by_role("link", name="Datasets").click()
    page.get_by_role("link", name="Upload a dataset").click()
    page.get_by_label("Name").fill("Words")
    page.get_by_label("File").set_input_files(
        {"name": "words.csv", "mimeType": "text/csv", "buffer": CSV.encode()}
    )
    page.get_by_role("button", name="Read the file").click()
    expect(page.get_by_text("Step 2 of 2")).to_be_visible()
    expect(page.get_by_label("word is used as")).to_have_value("variable")
    expect(page.get_by_label("expected is used as")).to_have_value("expected")
    _checked(page, problems, "mapping")
    page.get_by_role("button", name="Import").click()
    expect(page.get_by_role("heading", name="Dataset “Words”")).to_be_visible()
    _checked(page, problems, "dataset")

    page.get_by_role("link", name="New experiment").click()
    page.locator("#id_name").fill("Capitals")
    page.get_by_label("User prompt").fill("Say {{word}}")
    targets = page.get_by_label("Models and routes")
    targets.select_option(
        label=[
            o
            for o in targets.locator("option").all_text_contents()
            if "Beta" in o or "Alpha /" in o
        ]
    )
    page.get_by_label("Exact match").check()
    page.get_by_label("Max tokens").fill("5")
    page.get_by_label("Concurrency").fill("1")
    page.get_by_role("button", name="Estimate the cost").click()
    expect(page.locator("#estimate")).to_contain_text("40 calls")
    _checked(page, problems, "new experiment")
    page.get_by_role("button", name="Start the experiment").click()

    expect(page.get_by_role("heading", name="Experiment “Capitals”")).to_be_visible()
    progress = page.locator("#progress")
    expect(progress).to_contain_text("of 40 done")
    page.screenshot(path=str(artifacts / "experiment-running.png"), full_page=True)
    expect(progress).to_contain_text("Done", timeout=30_000)  # live, by htmx polling
    page.reload()
    expect(page.locator("table.list").first).to_contain_text("100%")
    _checked(page, problems, "experiment")
    page.screenshot(path=str(artifacts / "experiment-results.png"), full_page=True)

    first = Experiment.objects.get()
    upstream.handler = answering(wrong_for="alpha")  # the second run: Beta gets it right
    from sandbox import experiments

    beta = next(t for t in first.targets if t["name"].endswith("/Beta"))

    second = experiments.create(request_of(bob), name="Again", dataset_version=first.dataset_version,
                                user_prompt="Say {{word}}", targets=[beta],
                                scorers=[{"kind": "exact"}], concurrency=4)  # fmt: skip
    page.goto(f"/sandbox/experiments/{second.pk}/")
    expect(page.locator("#progress")).to_contain_text("Done", timeout=30_000)
    page.reload()
    page.get_by_label("Compare with an earlier experiment").select_option(str(first.pk))
    page.get_by_role("button", name="Compare").click()
    expect(page.get_by_text("20 better, 0 worse")).to_be_visible()
    _checked(page, problems, "compare")

    page.goto(f"/sandbox/experiments/{first.pk}/review")
    for _ in range(2):
        expect(page.get_by_role("heading", name="Answer A")).to_be_visible()
        page.get_by_role("button", name="A tie").click()
    _checked(page, problems, "review")
    page.screenshot(path=str(artifacts / "experiment-review.png"), full_page=True)
    assert Review.objects.filter(experiment=first, winner=None).count() == 2
    assert not problems, "\n".join(problems)
