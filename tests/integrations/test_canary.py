"""A canary secret never reaches a log record or a stored test record."""

from __future__ import annotations

import logging

import pytest

from integrations import writes
from integrations.models import AuthKind, ConnectionTest
from tests.conftest import CANARY, CANARY_HEADER
from tests.upstream import openai_reply, reply_json, reply_text


@pytest.mark.parametrize(
    "handler",
    [
        reply_json(openai_reply("fine")),
        reply_json({"error": {"message": f"bad key {CANARY} and {CANARY_HEADER}"}}, status=401),
        reply_text(f"<html>{CANARY}</html>", 500),
        reply_json({"echo": CANARY}),
    ],
)
@pytest.mark.parametrize(
    "auth_kind", [AuthKind.BEARER, AuthKind.HEADER, AuthKind.QUERY, AuthKind.BODY]
)
def test_the_canary_never_reaches_logs_or_test_rows(
    make_integration, upstream, caplog, handler, auth_kind
):
    caplog.set_level(logging.DEBUG)
    upstream.handler = handler
    model = make_integration(auth_kind=auth_kind)
    if auth_kind == AuthKind.QUERY:
        model.integration.auth_profile.query_param = "key"
        model.integration.auth_profile.save()
    if auth_kind == AuthKind.BODY:
        model.integration.auth_profile.body_path = "auth.token"
        model.integration.auth_profile.save()
    model.refresh_from_db()
    result, _ = writes.test_model(model)
    # The upstream did receive the secrets...
    sent = (
        str(upstream.requests[0].headers)
        + upstream.requests[0].path
        + upstream.requests[0].body.decode()
    )
    assert CANARY in sent and CANARY_HEADER in sent
    # ...but nothing we keep or log holds them.
    for record in caplog.records:
        text = record.getMessage() + str(record.args) + str(record.__dict__)
        assert CANARY not in text and CANARY_HEADER not in text
    for row in ConnectionTest.objects.values():
        assert CANARY not in str(row) and CANARY_HEADER not in str(row)
    error = result.error.as_dict() if result.error else {}
    assert CANARY not in str(error) + result.raw + str(result.request)
