"""The gateway's doors as an OpenAPI document (served at /v1/openapi.json).

It describes what clients send, loosely enough that a generator (schemathesis, in the
suite) tries the odd values too: every door must answer them in its own error shape,
never with a 500.
"""

from __future__ import annotations

from django.http import JsonResponse
from django.views.decorators.http import require_GET

_TEXT_PART = {
    "type": "object",
    "properties": {"type": {"type": "string", "enum": ["text"]}, "text": {"type": "string"}},
    "required": ["type", "text"],
}
_MESSAGE = {
    "type": "object",
    "properties": {
        "role": {"type": "string", "enum": ["system", "developer", "user", "assistant", "tool"]},
        "content": {
            "anyOf": [{"type": "string"}, {"type": "array", "items": _TEXT_PART}, {"type": "null"}]
        },
        "name": {"type": "string"},
        "tool_call_id": {"type": "string"},
        "tool_calls": {"type": "array", "items": {"type": "object"}},
    },
    "required": ["role"],
}
_ERROR = {
    "description": "An error in the door's shape (OpenAI's, or Anthropic's on /messages)",
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {"error": {"type": "object"}},
                "required": ["error"],
            }
        }
    },
}
CHAT_REQUEST = {
    "type": "object",
    "properties": {
        "model": {"type": "string"},
        "messages": {"type": "array", "items": _MESSAGE},
        "stream": {"type": "boolean"},
        "stream_options": {"type": "object"},
        "max_tokens": {"type": "integer"},
        "max_completion_tokens": {"type": "integer"},
        "temperature": {"type": "number"},
        "top_p": {"type": "number"},
        "n": {"type": "integer"},
        "stop": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
        "seed": {"type": "integer"},
        "presence_penalty": {"type": "number"},
        "frequency_penalty": {"type": "number"},
        "response_format": {"type": "object"},
        "tools": {"type": "array", "items": {"type": "object"}},
        "tool_choice": {"anyOf": [{"type": "string"}, {"type": "object"}]},
        "user": {"type": "string"},
    },
    "required": ["model", "messages"],
}

_BLOCKS = {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "object"}}]}
MESSAGES_REQUEST = {
    "type": "object",
    "properties": {
        "model": {"type": "string"},
        "max_tokens": {"type": "integer"},
        "system": _BLOCKS,
        "messages": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "role": {"type": "string", "enum": ["user", "assistant"]},
                    "content": _BLOCKS,
                },
                "required": ["role", "content"],
            },
        },
        "stream": {"type": "boolean"},
        "temperature": {"type": "number"},
        "top_p": {"type": "number"},
        "top_k": {"type": "integer"},
        "stop_sequences": {"type": "array", "items": {"type": "string"}},
        "tools": {"type": "array", "items": {"type": "object"}},
        "tool_choice": {"type": "object"},
        "thinking": {"type": "object"},
        "metadata": {"type": "object"},
    },
    "required": ["model", "max_tokens", "messages"],
}
RESPONSES_REQUEST = {
    "type": "object",
    "properties": {
        "model": {"type": "string"},
        "input": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "object"}}]},
        "instructions": {"type": "string"},
        "stream": {"type": "boolean"},
        "store": {"type": "boolean"},
        "previous_response_id": {"type": "string"},
        "max_output_tokens": {"type": "integer"},
        "temperature": {"type": "number"},
        "top_p": {"type": "number"},
        "tools": {"type": "array", "items": {"type": "object"}},
        "tool_choice": {"anyOf": [{"type": "string"}, {"type": "object"}]},
        "text": {"type": "object"},
    },
    "required": ["model", "input"],
}
EMBEDDINGS_REQUEST = {
    "type": "object",
    "properties": {
        "model": {"type": "string"},
        "input": {
            "anyOf": [
                {"type": "string"},
                {"type": "array", "items": {"type": "string"}},
                {"type": "array", "items": {"type": "integer"}},
            ]
        },
        "dimensions": {"type": "integer"},
        "encoding_format": {"type": "string"},
    },
    "required": ["model", "input"],
}


def _post(operation: str, summary: str, schema: dict) -> dict:
    return {
        "post": {
            "operationId": operation,
            "summary": summary,
            "requestBody": {"required": True, "content": {"application/json": {"schema": schema}}},
            "responses": {"200": {"description": "An answer"}, "400": _ERROR},
        }
    }


SCHEMA = {
    "openapi": "3.0.3",
    "info": {"title": "BYO-LLM Console gateway", "version": "1"},
    "servers": [{"url": "/v1"}],
    "components": {
        "securitySchemes": {"key": {"type": "http", "scheme": "bearer"}},
    },
    "security": [{"key": []}],
    "paths": {
        "/models": {
            "get": {
                "operationId": "listModels",
                "summary": "The models and routes this key may call",
                "responses": {"200": {"description": "A list"}, "401": _ERROR},
            }
        },
        "/chat/completions": {
            "post": {
                "operationId": "createChatCompletion",
                "summary": "OpenAI chat completions, streamed or not",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": CHAT_REQUEST}},
                },
                "responses": {"200": {"description": "A completion"}, "400": _ERROR},
            }
        },
        "/messages": _post(
            "createMessage", "Anthropic Messages, streamed or not", MESSAGES_REQUEST
        ),
        "/messages/count_tokens": _post(
            "countTokens", "Anthropic's token count of a Messages body", MESSAGES_REQUEST
        ),
        "/responses": _post(
            "createResponse", "OpenAI Responses, streamed or not", RESPONSES_REQUEST
        ),
        "/embeddings": _post(
            "createEmbeddings", "Vectors from an embeddings model", EMBEDDINGS_REQUEST
        ),
    },
}


@require_GET
def document(request):
    return JsonResponse(SCHEMA)
