"""Embeddings models and /v1/embeddings: the openai SDK's embeddings.create against models
on an OpenAI-shaped server, an embeddings-only endpoint and a custom body, metered and
priced; Test then Save proving an embeddings model with a real call; the Sandbox tab.

Before, no model could be an embeddings model and every RAG app needed another gateway.
"""

from __future__ import annotations

import base64
import struct
from decimal import Decimal

import openai
import pytest
from django.urls import reverse

from integrations.gateway import keys
from integrations.models import CustomModel
from sandbox.models import SandboxRun
from tests.fake_models import custom_embeddings_model, fake_vector, openai_model
from tests.gateway.test_gateway import usage_rows
from tests.integrations.test_connection_views import HX, add_payload, receipt_in
from tests.upstream import reply_json

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def embedder(console_server, make_integration, bob, upstream):
    """An embeddings model on an OpenAI-shaped server, priced, and an SDK client for it."""
    upstream.handler = openai_model
    model = make_integration(
        secret_header=None,
        kind="embeddings",
        model_id="embed-small",
        price_input_per_mtok=Decimal("100"),
        price_output_per_mtok=Decimal("0"),
    )
    _, raw = keys.create(bob, "rag")
    sdk = openai.OpenAI(base_url=f"{console_server.url}/v1", api_key=raw, max_retries=0, timeout=20)
    sdk.model, sdk.url = model, console_server.url
    return sdk


def test_a_list_of_texts_is_embedded_and_metered(embedder, upstream):
    # The SDK asks for base64 by default and decodes it: the vectors must survive.
    reply = embedder.embeddings.create(model="Model A", input=["red apple", "green pear"])
    assert [d.index for d in reply.data] == [0, 1]
    for datum, text in zip(reply.data, ["red apple", "green pear"], strict=True):
        assert datum.embedding == pytest.approx(fake_vector(text), abs=1e-6)
    assert reply.usage.prompt_tokens > 0 and reply.model == "Model A"
    sent = upstream.requests[-1]
    assert sent.path == "/v1/embeddings"
    assert sent.json() == {
        "model": "embed-small",
        "input": ["red apple", "green pear"],
        "encoding_format": "float",
    }
    (row,) = usage_rows(1)
    assert row.door == "embeddings" and row.ok
    assert (row.prompt_tokens, row.completion_tokens) == (reply.usage.prompt_tokens, 0)
    assert row.cost == Decimal(row.prompt_tokens) * 100 / 1_000_000


def test_dimensions_and_float_encoding_are_honoured(embedder, upstream):
    reply = embedder.embeddings.create(
        model="Model A", input="one text", dimensions=4, encoding_format="float"
    )
    (datum,) = reply.data
    assert datum.embedding == pytest.approx(fake_vector("one text", 4), abs=1e-6)
    assert upstream.requests[-1].json()["dimensions"] == 4


def test_base64_is_little_endian_float32(embedder):
    import httpx

    reply = httpx.post(
        f"{embedder.url}/v1/embeddings",
        headers={"Authorization": f"Bearer {embedder.api_key}"},
        json={"model": "Model A", "input": "abc", "encoding_format": "base64"},
    ).json()
    raw = base64.b64decode(reply["data"][0]["embedding"])
    assert struct.unpack(f"<{len(raw) // 4}f", raw) == pytest.approx(fake_vector("abc"), abs=1e-6)


def test_a_budget_counts_embeddings(embedder, bob):
    _, raw = keys.create(bob, "tight", monthly_budget=Decimal("0.05"))
    sdk = openai.OpenAI(base_url=f"{embedder.url}/v1", api_key=raw, max_retries=0)
    texts = ["a fairly long text to embed, " * 4] * 4
    with pytest.raises(openai.RateLimitError) as caught:
        for _ in range(10):
            sdk.embeddings.create(model="Model A", input=texts)
    assert caught.value.code == "budget_exceeded"
    rows = usage_rows(1)
    assert rows and all(r.door == "embeddings" and r.completion_tokens == 0 for r in rows)


def test_the_chat_doors_refuse_an_embeddings_model_and_the_reverse(embedder, make_integration):
    with pytest.raises(openai.BadRequestError) as caught:
        embedder.chat.completions.create(
            model="Model A", messages=[{"role": "user", "content": "hi"}]
        )
    assert caught.value.code == "wrong_model_kind" and "/v1/embeddings" in caught.value.message
    make_integration(name="Chat", name_suffix="C", secret_header=None)
    with pytest.raises(openai.BadRequestError) as caught:
        embedder.embeddings.create(model="Model C", input="hi")
    assert caught.value.code == "wrong_model_kind"
    listed = {m.id for m in embedder.models.list()}
    assert {"Model A", "Model C"} <= listed


def test_an_embeddings_only_endpoint_and_a_custom_body_work(
    console_server, make_integration, bob, upstream
):
    upstream.handler = openai_model
    make_integration(
        name="Only", secret_header=None, protocol="openai-embeddings", kind="embeddings"
    )
    custom = make_integration(
        name="Own",
        name_suffix="B",
        secret_header=None,
        protocol="custom",
        endpoint=f"{upstream.url}/embed",
        kind="embeddings",
        request_template={"texts": "{{input}}"},
    )
    custom.integration.content_path = "vectors"
    custom.integration.prompt_tokens_path = "meta.tokens"
    custom.integration.save()
    _, raw = keys.create(bob, "both")
    sdk = openai.OpenAI(base_url=f"{console_server.url}/v1", api_key=raw, max_retries=0)
    only = sdk.embeddings.create(model="Model A", input=["x"])
    assert only.data[0].embedding == pytest.approx(fake_vector("x"), abs=1e-6)
    assert upstream.requests[-1].path == "/v1/embeddings"
    upstream.handler = custom_embeddings_model
    own = sdk.embeddings.create(model="Model B", input=["x", "y"])
    assert own.data[1].embedding == pytest.approx(fake_vector("y"), abs=1e-6)
    assert upstream.requests[-1].json() == {"texts": ["x", "y"]}
    assert own.usage.prompt_tokens == 2


@pytest.mark.parametrize(
    "answer",
    [
        {"data": [{"embedding": ["NaN"]}]},
        {"data": [{"embedding": [1.0, 2.0]}, {"embedding": [1.0]}]},
        {"data": [{"embedding": [1.0, 2.0]}]},  # one vector for two inputs
        {"data": "lots"},
        {"data": [{"embedding": "not base64!"}]},
    ],
)
def test_a_wrong_answer_is_a_classified_error(embedder, upstream, answer):
    upstream.handler = reply_json(answer)
    with pytest.raises(openai.APIStatusError) as caught:
        embedder.embeddings.create(model="Model A", input=["a", "b"])
    assert caught.value.status_code == 502 and caught.value.code == "upstream_bad_response"


def test_test_then_save_proves_an_embeddings_model(client, bob, upstream):
    upstream.handler = openai_model
    client.force_login(bob)
    payload = add_payload(upstream, kind="embeddings", model_id="embed-small", action="test")
    tested = client.post(reverse("integration-add"), payload, **HX)
    page = tested.content.decode()
    assert "1 vector of 8 dimensions" in page, page[:2000]
    assert upstream.requests[-1].path == "/v1/embeddings"
    payload.update(action="save", test_receipt=receipt_in(tested))
    client.post(reverse("integration-add"), payload)
    model = CustomModel.objects.get()
    assert model.kind == "embeddings" and model.last_test_status == "passing"


def test_the_sandbox_compares_two_texts(client, charlie, make_integration, upstream):
    upstream.handler = openai_model
    make_integration(secret_header=None, kind="embeddings")
    client.force_login(charlie)
    page = client.get(reverse("sandbox-embeddings")).content.decode()
    assert "Model A" in page
    model = CustomModel.objects.get()
    reply = client.post(
        reverse("sandbox-embeddings"),
        {"model": str(model.pk), "text_a": "cat", "text_b": "cat"},
        **HX,
    ).content.decode()
    assert "Cosine similarity 1.0000" in reply
    run = SandboxRun.objects.get()
    assert run.status == "ok" and run.completion_tokens == 0 and run.prompt_tokens > 0
    # The chat tab does not offer an embeddings model.
    assert f'value="{model.pk}"' not in client.get(reverse("sandbox")).content.decode()
