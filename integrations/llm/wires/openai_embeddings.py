"""OpenAI embeddings, both directions.

Upstream side: `write_request` asks an OpenAI-shaped server (`/embeddings`) for float
vectors; `read_reply` reads them, or a custom body's answer where its content path points,
strictly enough that a wrong shape is a classified error and never a 500: one finite
vector per input, all of one length. Door side (the gateway's /v1/embeddings):
`read_request` reads a caller's body, `write_reply` answers in floats or base64 as asked.
"""

from __future__ import annotations

import base64
import math
import struct
from dataclasses import dataclass, field
from typing import Any

from integrations.llm.chat import EmbeddingsInput, Usage, Vectors
from integrations.llm.wires.common import (
    WireError,
    as_dict,
    get_path,
    integer_field,
    make_usage,
    requested_model,
)

MAX_INPUTS = 2048  # what OpenAI takes in one request
MAX_DIMENSIONS = 65536
KNOWN = {"model", "input", "dimensions", "encoding_format", "user"}


def write_request(config, embed: EmbeddingsInput) -> dict:
    body: dict[str, Any] = {
        "model": config.model_id,
        "input": list(embed.texts),
        "encoding_format": "float",
    }
    if embed.dimensions is not None:
        body["dimensions"] = embed.dimensions
    return body


def _vector(value: Any) -> tuple[float, ...]:
    if isinstance(value, str):  # a server that answers base64 whatever was asked
        raw = base64.b64decode(value, validate=True)
        if len(raw) % 4:
            raise ValueError("A base64 vector is not a whole number of float32 values.")
        value = struct.unpack(f"<{len(raw) // 4}f", raw)
    if not isinstance(value, list | tuple) or not value:
        raise ValueError("A vector is not a non-empty list of numbers.")
    if len(value) > MAX_DIMENSIONS:
        raise ValueError(f"A vector has more than {MAX_DIMENSIONS} dimensions.")
    out = []
    for number in value:
        if isinstance(number, bool) or not isinstance(number, int | float):
            raise ValueError("A vector holds something that is not a number.")
        if not math.isfinite(number):
            raise ValueError("A vector holds a number that is not finite.")
        out.append(float(number))
    return tuple(out)


def vectors_in(raw: Any, expected: int | None) -> tuple[tuple[float, ...], ...]:
    """Vectors from a list of vectors, or of objects holding one (`embedding`, in `index`
    order); one per input when the count is known, all of one length."""
    if not isinstance(raw, list) or not raw:
        raise ValueError("There are no vectors in the answer.")
    if all(isinstance(item, dict) for item in raw):
        raw = sorted(
            raw, key=lambda item: item.get("index") if isinstance(item.get("index"), int) else 0
        )
        raw = [item.get("embedding") for item in raw]
    elif not isinstance(raw[0], list | str):  # a single vector
        raw = [raw]
    vectors = tuple(_vector(v) for v in raw)
    if expected is not None and len(vectors) != expected:
        raise ValueError(f"{len(vectors)} vectors came back for {expected} inputs.")
    if len({len(v) for v in vectors}) > 1:
        raise ValueError("The vectors are not all of one length.")
    return vectors


def read_reply(data: Any, config=None, embed: EmbeddingsInput | None = None) -> Vectors:
    expected = len(embed.texts) if embed is not None else None
    paths = getattr(config, "response_paths", None)
    where = (
        getattr(paths, "content", "") if config is not None and config.protocol == "custom" else ""
    )
    raw = get_path(data, where) if where else as_dict(data).get("data")
    usage = as_dict(as_dict(data).get("usage"))
    prompt = (
        get_path(data, paths.prompt_tokens)
        if where and paths.prompt_tokens
        else usage.get("prompt_tokens")
    )
    # An embeddings call generates nothing: no output tokens, whatever a server says.
    return Vectors(vectors_in(raw, expected), make_usage(prompt, 0))


# --- door side (/v1/embeddings) --------------------------------------------------------------


@dataclass
class EmbeddingsRequest:
    model: str
    prompt: EmbeddingsInput
    body: dict
    encoding_format: str = "float"
    stream: bool = False
    include_usage: bool = True
    unknown: list[str] = field(default_factory=list)


def _is_tokens(value: Any) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in value)
    )


def read_request(body: Any) -> EmbeddingsRequest:

    model = requested_model(body)
    raw = body.get("input")
    if isinstance(raw, str) or _is_tokens(raw):
        texts = [raw]
    elif isinstance(raw, list) and raw and all(isinstance(t, str) or _is_tokens(t) for t in raw):
        texts = raw
    else:
        raise WireError(
            "`input` must be a string, a list of strings, or token ids (a list of integers, "
            "or a list of such lists).",
            "input",
        )
    if len(texts) > MAX_INPUTS:
        raise WireError(f"At most {MAX_INPUTS} inputs in one request.", "input")
    if any(t == "" for t in texts):
        raise WireError("An input must not be empty.", "input")
    dimensions = integer_field(body, "dimensions", 1, MAX_DIMENSIONS)
    encoding = body.get("encoding_format", "float")
    if encoding not in ("float", "base64"):
        raise WireError('`encoding_format` is "float" or "base64".', "encoding_format")
    embed = EmbeddingsInput(tuple(texts), dimensions)
    return EmbeddingsRequest(model, embed, body, encoding, unknown=sorted(set(body) - KNOWN))


def encoded(vector: tuple[float, ...], encoding: str) -> Any:
    """A vector as the caller asked: floats, or base64 of little-endian float32 (OpenAI's)."""
    if encoding == "base64":
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
    return list(vector)


def write_reply(vectors: Vectors, model: str, usage: Usage, encoding: str = "float") -> dict:
    prompt = usage.prompt_tokens or 0
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": i, "embedding": encoded(v, encoding)}
            for i, v in enumerate(vectors.vectors)
        ],
        "model": model,
        "usage": {"prompt_tokens": prompt, "total_tokens": prompt},
    }


def cosine(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """The cosine similarity of two vectors (0 when either is all zeros)."""
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norm if norm else 0.0
