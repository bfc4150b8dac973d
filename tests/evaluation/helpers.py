"""A test upstream that answers each row, and experiments built as the pages build them."""

from __future__ import annotations

import json
import threading
import time

from django.test import RequestFactory

from sandbox import datasets, experiments
from sandbox.models import Dataset
from tests.upstream import reply_json

ROWS = [{"variables": {"word": f"w{i}"}, "expected": f"W{i}", "metadata": {}} for i in range(20)]


def answering(delay: float = 0.0, wrong_for: str = "", judge: dict | None = None):
    """Answers a row's word in capitals (model `wrong_for` in lower case); a request with a
    JSON Schema response format gets `judge` as its JSON answer. Records (model, word)."""
    seen, lock = [], threading.Lock()

    def handle(rec, h):
        body = json.loads(rec.body)
        said = body["messages"][-1]["content"]
        if judge is not None and body.get("response_format", {}).get("type") == "json_schema":
            content = json.dumps(judge)
        else:
            word = said.rsplit(" ", 1)[-1]
            with lock:
                seen.append((body["model"], word))
            if delay:
                time.sleep(delay)
            content = word.lower() if body["model"] == wrong_for else word.upper()
        return reply_json({
            "id": "c", "object": "chat.completion", "created": 1, "model": body["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
        })(rec, h)  # fmt: skip

    handle.seen = seen
    return handle


def version(owner, rows=ROWS, name="Words"):
    dataset = Dataset.objects.create(name=name, owner=owner)
    return datasets.save_version(dataset, rows, owner, "first")


def request_of(user):
    request = RequestFactory().post("/")
    request.user = user
    return request


def start(user, version_, models, **fields):
    """An experiment over `models` (CustomModel or ("route", Route)), queued."""
    targets = [{"route": str(m[1].pk)} if isinstance(m, tuple) else {"model": str(m.pk)}
               for m in models]  # fmt: skip
    base = {"name": "Capitals", "dataset_version": version_, "user_prompt": "Say {{word}}",
            "targets": targets, "scorers": [{"kind": "exact"}], "concurrency": 4}  # fmt: skip
    return experiments.create(request_of(user), **(base | fields))
