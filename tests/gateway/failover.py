"""The failover matrix: sixteen ways an upstream fails, each with what a caller of a
route must see. tests/gateway/test_failover.py runs them in the suite (WSGI and ASGI);
bench/bench_failover.py runs them against gunicorn and prints the score.

A world holds a route over real HTTP servers on 127.0.0.1: `a` (hostile, as each
scenario makes it), `b` (a good upstream that names the model it was asked for), and a
closed port. Callers are the official openai SDK.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

import openai

from tests.upstream import Upstream, reply_json, reply_sse

ROUTE = "support-bot"
MESSAGES = [{"role": "user", "content": "hi"}]


def closed_port() -> int:
    """A port nothing listens on (one that was free a moment ago)."""
    from tests.production import free_port

    return free_port()


def good(name: str):
    """A faithful upstream answering "from <model id>", whole or streamed."""

    def handle(rec, h):
        body = json.loads(rec.body or b"{}")
        said = f"from {body.get('model', name)}"
        if body.get("stream"):
            return reply_sse(
                [said[:4], said[4:]],
                usage={"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
            )(rec, h)
        return reply_json({"id": "c1", "object": "chat.completion", "created": 1, "model": body.get("model"),
                           "choices": [{"index": 0, "message": {"role": "assistant", "content": said}, "finish_reason": "stop"}],
                           "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}})(rec, h)  # fmt: skip

    return handle


def error(
    status: int,
    message: str = "upstream trouble",
    headers: dict | None = None,
    type_="server_error",
):
    return reply_json(
        {"error": {"message": message, "type": type_}}, status=status, headers=headers
    )


def raw_reply(body: bytes, status: int = 200):
    def handle(rec, h):
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    return handle


def silent(seconds: float = 5.0):
    def handle(rec, h):
        time.sleep(seconds)

    return handle


def slow_first_token(seconds: float):
    def handle(rec, h):
        h.send_response(200)
        h.send_header("Content-Type", "text/event-stream")
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        h.wfile.flush()
        time.sleep(seconds)
        reply_sse(["late"])  # never reached in time

    return handle


def stall_after(words: int, seconds: float):
    def handle(rec, h):
        h.send_response(200)
        h.send_header("Content-Type", "text/event-stream")
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        for i in range(words):
            payload = f"data: {json.dumps({'choices': [{'index': 0, 'delta': {'content': f'w{i} '}}]})}\n\n".encode()
            h.wfile.write(f"{len(payload):x}\r\n".encode() + payload + b"\r\n")
            h.wfile.flush()
        time.sleep(seconds)

    return handle


@dataclass
class World:
    url: str  # the console
    key: str
    a: Upstream
    b: Upstream
    models: dict  # "A", "B", "C" (context fallback on b), "DEAD" (a closed port)
    route: object
    notes: list = field(default_factory=list)

    def client(self) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key=self.key, max_retries=0, timeout=30)

    def targets(self, *names: str, **settings) -> None:
        """The route's targets (name or (name, role)), and any of its settings."""
        from integrations import callcache
        from integrations.gateway import cooldowns
        from integrations.models import Route, RouteTarget

        RouteTarget.objects.filter(route=self.route).delete()
        for i, name in enumerate(names):
            name, role = name if isinstance(name, tuple) else (name, "main")
            RouteTarget.objects.create(
                route=self.route, model=self.models[name], position=i, role=role
            )
        base = {"failures_to_cool": 3, "cooldown_seconds": 30, "first_token_seconds": None,
                "retry_same": ["connection", "timeout"], "attempts_per_target": 1}  # fmt: skip
        Route.objects.filter(pk=self.route.pk).update(**(base | settings))
        callcache.bump()
        cooldowns.forget_all()
        self.b.handler = good("b")  # a scenario before may have broken it (the bench's world)

    def ask(self, stream: bool = False) -> str:
        c = self.client()
        if not stream:
            return (
                c.chat.completions.create(model=ROUTE, messages=MESSAGES).choices[0].message.content
            )
        chunks = c.chat.completions.create(model=ROUTE, messages=MESSAGES, stream=True)
        return "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)


def build(url: str, key_owner, a: Upstream, b: Upstream, **key_limits) -> World:
    """Models, a route and a gateway key for a world (the ORM: tests and bench alike)."""
    from integrations.gateway import keys
    from integrations.models import CustomModel, Integration, Route

    def model(name, endpoint, model_id, timeout=2.0):
        integration = Integration.objects.create(
            name=f"Up {name}", endpoint=endpoint, timeout_seconds=timeout
        )
        return CustomModel.objects.create(integration=integration, name=f"Target {name}", model_id=model_id,
                                          price_input_per_mtok=1, price_output_per_mtok=2)  # fmt: skip

    models = {
        "A": model("A", f"{a.url}/v1", "model-a", timeout=1.0),
        "B": model("B", f"{b.url}/v1", "model-b"),
        "C": model("C", f"{b.url}/v1", "model-c-long"),
        "DEAD": model("DEAD", f"http://127.0.0.1:{closed_port()}/v1", "model-dead"),
    }
    route = Route.objects.create(name=ROUTE, retry_same=[], move_on=list(_kinds()))
    b.handler = good("b")
    raw = keys.create(key_owner, "failover", **key_limits)[1]
    return World(url, raw, a, b, models, route)


def _kinds():
    from integrations.models.routes import ROUTABLE_KINDS

    return ROUTABLE_KINDS


# --- the sixteen scenarios: each returns what went wrong, or "" ---------------------------


def _expect(got, want) -> str:
    return "" if got == want else f"expected {want!r}, got {got!r}"


def refused(w: World) -> str:
    w.targets("DEAD", "B")
    return _expect(w.ask(), "from model-b")


def never_answers(w: World) -> str:
    w.targets("A", "B")
    w.a.handler = silent(3)
    started = time.monotonic()
    problem = _expect(w.ask(), "from model-b")
    took = time.monotonic() - started
    return problem or ("" if took < 2.5 else f"took {took:.1f} s")


def server_error(w: World) -> str:
    w.targets("A", "B")
    w.a.handler = error(500)
    return _expect(w.ask(), "from model-b")


def _cools(w: World, status: int) -> str:
    w.targets("A", "B")
    w.a.handler = error(status, headers={"Retry-After": "30"})
    problem = _expect(w.ask(), "from model-b")
    before = len(w.a.requests)
    problem = problem or _expect(w.ask(), "from model-b")
    return problem or _expect(len(w.a.requests) - before, 0)  # skipped while it cools


def unavailable_retry_after(w: World) -> str:
    return _cools(w, 503)


def rate_limited_retry_after(w: World) -> str:
    return _cools(w, 429)


def overloaded(w: World) -> str:
    w.targets("A", "B")
    w.a.handler = error(529, "Overloaded", type_="overloaded_error")
    return _expect(w.ask(), "from model-b")


def bad_request(w: World) -> str:
    w.targets("A", "B")
    w.a.handler = error(400, "Invalid value for temperature", type_="invalid_request_error")
    before = len(w.b.requests)
    try:
        w.ask()
    except openai.BadRequestError:
        return _expect(len(w.b.requests) - before, 0)
    return "a caller's bad request was failed over"


def upstream_auth(w: World) -> str:
    w.targets("A", "B")
    w.a.handler = error(401, "Invalid API key", type_="authentication_error")
    problem = _expect(w.ask(), "from model-b")
    before = len(w.a.requests)
    problem = problem or _expect(w.ask(), "from model-b")
    return problem or _expect(len(w.a.requests) - before, 0)


def slow_first(w: World) -> str:
    w.targets("A", "B", first_token_seconds=0.4)
    w.a.handler = slow_first_token(3)
    started = time.monotonic()
    problem = _expect(w.ask(stream=True), "from model-b")
    took = time.monotonic() - started
    return problem or ("" if took < 2 else f"took {took:.1f} s")


def _never_clean(w: World) -> str:
    try:
        text = w.ask(stream=True)
    except openai.APIError as exc:
        return "" if "cut short" in str(exc) or "upstream" in str(exc).lower() else f"said {exc}"
    return f"a broken stream ended cleanly with {text!r}"


def stall_mid_stream(w: World) -> str:
    w.targets("A", "B")
    w.a.handler = stall_after(2, 3)
    return _never_clean(w)


def reset_mid_stream(w: World) -> str:
    w.targets("A", "B")
    w.a.handler = reply_sse(["w0 ", "w1 ", "w2 ", "w3 "], break_after=2)
    return _never_clean(w)


def malformed_json(w: World) -> str:
    w.targets("A", "B")
    w.a.handler = raw_reply(b'{"choices": [{"message": {"content": "half')
    return _expect(w.ask(), "from model-b")


def empty_200(w: World) -> str:
    w.targets("A", "B")
    w.a.handler = raw_reply(b"")
    return _expect(w.ask(), "from model-b")


def context_fallback(w: World) -> str:
    w.targets("A", ("C", "context"))
    w.a.handler = error(
        400, "This model's maximum context length is 4096 tokens.", type_="invalid_request_error"
    )
    return _expect(w.ask(), "from model-c-long")


def everything_down(w: World) -> str:
    w.targets("A", "B", failures_to_cool=1, cooldown_seconds=30)
    w.a.handler = error(500)
    w.b.handler = error(502)
    try:
        w.ask()
        return "answered while every target was down"
    except openai.InternalServerError as exc:
        if exc.status_code != 503 or not exc.response.headers.get("retry-after"):
            return f"answered {exc.status_code} without Retry-After"
    hits = len(w.a.requests) + len(w.b.requests)
    for _ in range(5):  # all cool down: one last try per target at most, then 503s alone
        try:
            w.ask()
        except openai.InternalServerError as exc:
            if int(exc.response.headers.get("retry-after", "0")) < 1:
                return "no Retry-After while cooling"
    more = len(w.a.requests) + len(w.b.requests) - hits
    return "" if more <= 2 else f"{more} upstream calls while every target cooled down"


def flapping(w: World) -> str:
    w.targets("A", "B", failures_to_cool=1, cooldown_seconds=1)
    w.a.handler = error(500)
    problem = _expect(w.ask(), "from model-b")
    w.a.handler = good("a")
    problem = problem or _expect(w.ask(), "from model-b")  # still cooling
    time.sleep(1.1)
    problem = problem or _expect(w.ask(), "from model-a")  # the probe, and it is back
    return problem or _expect(w.ask(), "from model-a")


SCENARIOS = {
    "1 connection refused": refused,
    "2 accepts and never answers": never_answers,
    "3 500": server_error,
    "4 503 with Retry-After": unavailable_retry_after,
    "5 429 with Retry-After": rate_limited_retry_after,
    "6 529 overloaded": overloaded,
    "7 400 (no failover)": bad_request,
    "8 upstream 401": upstream_auth,
    "9 slow first token": slow_first,
    "10 stall mid-stream": stall_mid_stream,
    "11 reset mid-stream": reset_mid_stream,
    "12 malformed JSON": malformed_json,
    "13 empty 200": empty_200,
    "14 context overflow, context fallback": context_fallback,
    "15 every target down": everything_down,
    "16 flapping target recovers": flapping,
}
