"""The gateway's front doors: how each reads a request, answers, streams and refuses, in
its own format. Admission and the relay are the same for every door."""

from integrations.gateway.doors.anthropic import ANTHROPIC
from integrations.gateway.doors.embeddings import EMBEDDINGS
from integrations.gateway.doors.openai import OPENAI
from integrations.gateway.doors.responses import RESPONSES

__all__ = ["ANTHROPIC", "EMBEDDINGS", "OPENAI", "RESPONSES"]
