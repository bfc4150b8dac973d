"""What a call will send, shown before it is sent: the request (redacted), a cURL command,
and the endpoint's model list. Secrets appear as masks or shell variables only."""

from __future__ import annotations

import copy
import json
import re
from dataclasses import replace
from typing import Any
from urllib.parse import quote, quote_plus

from integrations.llm import auth, inputs, transport
from integrations.llm.answers import UPSTREAM_MESSAGE_LIMIT, upstream_message
from integrations.llm.auth import check_route
from integrations.llm.chat import Prompt
from integrations.llm.config import AuthConfig, Forward, LLMConfig
from integrations.llm.errors import ErrorKind, LLMError, classify_status
from integrations.llm.protocols import adapter_for
from integrations.llm.redact import Scrubber, redact_request, scrubber
from integrations.llm.wires.common import Unsupported


def client_options(config: LLMConfig) -> transport.ClientOptions:
    return transport.ClientOptions(
        verify_tls=config.verify_tls, ca_bundle=config.ca_bundle, proxy_url=config.proxy_url
    )


def build_request(
    config: LLMConfig, prompt: Prompt, body: Any = None
) -> tuple[str, dict[str, str], Any, list[str]]:
    """Return (url, headers, body, extra secrets) exactly as they will be sent. `body`:
    a caller's own body to forward as it is (the same format in and out)."""
    adapter = adapter_for(config.protocol)
    url = adapter.url(config)
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    headers.update(adapter.headers(config))
    if isinstance(body, Forward):
        url += body.path
        headers.update(body.headers)
        _with_headers(headers, config.headers)
        body = body.body
    else:
        for header in config.headers:
            headers[header.name] = header.value
    if body is None:
        try:
            body = adapter.write(config, prompt)
        except Unsupported as exc:
            raise LLMError(ErrorKind.UNSUPPORTED, exc.message, param=exc.param) from exc
    body = copy.deepcopy(body)  # auth may write into it; the prompt's values are not ours
    check_route(config.auth, config.headers, url, config.proxy_url)
    url, extra = auth.apply(config.auth, url, headers, body, client_options(config), config.timeout)
    _check_sendable(headers)
    return url, headers, body, extra


def _with_headers(headers: dict[str, str], configured) -> None:
    """The integration's headers over what a caller forwarded: an Editor's value wins,
    except that beta flags (anthropic-beta) from both are sent together."""
    for header in configured:
        same = [name for name in headers if name.lower() == header.name.lower()]
        values = [headers.pop(name) for name in same]
        if header.name.lower() == "anthropic-beta" and values:
            flags = [f.strip() for v in [header.value, *values] for f in v.split(",")]
            headers[header.name] = ",".join(dict.fromkeys(f for f in flags if f))
        else:
            headers[header.name] = header.value


def _check_sendable(headers: dict[str, str]) -> None:
    """Refuse a stored header value HTTP cannot carry (saved before the edge rules held)."""
    for name, value in headers.items():
        try:
            inputs.check_header_value(value)
        except inputs.InputError as exc:
            raise LLMError(
                ErrorKind.CONFIG,
                f"The {name} header holds characters HTTP cannot carry (line breaks or "
                "non-ASCII, e.g. an accented key). Re-enter it.",
            ) from exc


# What stands for an OAuth access token in a preview: printable, so the request check
# that refuses characters HTTP cannot carry passes it (a NUL placeholder stopped every
# OAuth2 test on the Add page), and swapped for ${ACCESS_TOKEN} in the cURL command.
ACCESS_TOKEN = "$ACCESS_TOKEN"


def _without_oauth(config: LLMConfig) -> LLMConfig:
    """The configuration as previewed: an OAuth token is not fetched for a preview."""
    if config.auth.kind != "oauth2":
        return config
    placeholder = AuthConfig(kind="bearer", token=ACCESS_TOKEN, bound=config.auth.bound)
    return replace(config, auth=placeholder)


def preview_request(config: LLMConfig, prompt: Prompt) -> dict:
    """Return the redacted request without sending it (OAuth tokens are not fetched)."""
    config = _without_oauth(config)
    url, headers, body, extra = build_request(config, prompt)
    return redact_request(
        "POST", url, headers, body, config.secrets() + extra, secret_names(config)
    )


def secret_names(config: LLMConfig) -> set[str]:
    names = {h.name.lower() for h in config.headers if h.secret}
    if config.auth.kind == "header":
        names.add(config.auth.header_name.lower())
    return names


def list_models(config: LLMConfig) -> list[str]:
    """Return the model IDs the endpoint's /models list offers, scrubbed."""
    adapter = adapter_for(config.protocol)
    url = adapter.models_url(config)
    if not url:
        raise LLMError(ErrorKind.CONFIG, "This protocol has no model list to fetch.")
    if config.auth.kind == "body":
        raise LLMError(ErrorKind.CONFIG, "The model list cannot carry a token in a JSON body.")
    headers = {"Accept": "application/json"}
    headers.update(adapter.headers(config))
    for header in config.headers:
        headers[header.name] = header.value
    check_route(config.auth, config.headers, url, config.proxy_url)
    secrets = config.secrets()
    try:
        url, extra = auth.apply(
            config.auth, url, headers, None, client_options(config), config.timeout
        )
        secrets = secrets + extra
        _check_sendable(headers)
        raw = transport.send(
            "GET", url, headers=headers, timeout=config.timeout, options=client_options(config)
        )
        return _model_ids(raw, scrubber(tuple(secrets)))
    except LLMError as exc:
        sc = scrubber(tuple(secrets))
        exc.message = sc.text(exc.message)
        exc.upstream_message = sc.text(exc.upstream_message)[:UPSTREAM_MESSAGE_LIMIT]
        raise


def _model_ids(raw: transport.RawResponse, sc: Scrubber) -> list[str]:
    text = raw.body.decode("utf-8", "replace")
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        data = None
    if raw.status_code >= 400:
        kind = classify_status(raw.status_code, text, "")
        message = upstream_message(data, text)
        raise LLMError(kind, f"{raw.status_code} from the model list.", raw.status_code, message)
    items = data.get("data") if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise LLMError(ErrorKind.BAD_RESPONSE, "The model list is not a list.")
    ids = set()
    for item in items:
        model_id = item.get("id") if isinstance(item, dict) else None
        if isinstance(model_id, str) and model_id.strip():
            shown = sc.text(model_id)[:200]
            if shown == model_id:  # an id that echoes a secret is no model id
                ids.add(model_id)
    return sorted(ids)


def _shell_quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def curl_command(config: LLMConfig, prompt: Prompt) -> str:
    """Return a curl command reproducing the request, secrets replaced by shell variables."""
    oauth = config.auth.kind == "oauth2"
    config = _without_oauth(config)
    url, headers, body, extra = build_request(config, prompt)
    names: list[tuple[str, str]] = []
    tokens = [s for s in config.auth.secrets() + extra if not (oauth and s == ACCESS_TOKEN)]
    secrets = [(secret, "API_KEY") for secret in tokens]
    for header in config.headers:
        if header.secret and header.value:
            secrets.append((header.value, re.sub(r"[^A-Z0-9]", "_", header.name.upper())))
    for secret, var in secrets:
        # A key in the query string is URL-encoded there: "a+b/c=" becomes "a%2Bb%2Fc%3D".
        names += [(form, var) for form in {secret, quote_plus(secret), quote(secret, safe="")}]
    if oauth:
        names.append((ACCESS_TOKEN, "ACCESS_TOKEN"))
    names.sort(key=lambda pair: len(pair[0]), reverse=True)

    def swap(text: str) -> tuple[str, bool]:
        changed = False
        for secret, var in names:
            if secret and secret in text:
                text = text.replace(secret, "${" + var + "}")
                changed = True
        return text, changed

    def quoted(text: str) -> str:
        text, changed = swap(text)
        # Double quotes only where a variable must expand.
        if changed:
            return '"' + re.sub(r'(["\\`$])', r"\\\1", text).replace("\\${", "${") + '"'
        return _shell_quote(text)

    lines = [f"curl -X POST {quoted(url)}"]
    lines += [f"  -H {quoted(f'{k}: {v}')}" for k, v in headers.items()]
    lines.append(f"  --data-raw {quoted(json.dumps(body, ensure_ascii=False))}")
    return " \\\n".join(lines)
