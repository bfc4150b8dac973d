"""OpenAI's legacy completions (upstream side only): the conversation as one text."""

from __future__ import annotations

from typing import Any

from integrations.llm import chat
from integrations.llm.chat import (
    BlockDelta,
    BlockEnded,
    BlockStarted,
    Completion,
    Finished,
    Media,
    Message,
    Prompt,
    Text,
    ToolCall,
    ToolResult,
    UsageSeen,
)
from integrations.llm.wires import openai_chat
from integrations.llm.wires.common import (
    Unsupported,
    as_dict,
    as_list,
    extra,
    merged_params,
    stop_list,
)

FINISH = {"stop": "stop", "length": "length", "content_filter": "content_filter"}
# What the completions API takes of OpenAI's chat-only parameters.
TAKES = ("frequency_penalty", "presence_penalty", "logit_bias", "user", "n", "seed")
NO_OPS = ("metadata", "store", "service_tier", "prompt_cache_key", "safety_identifier")


def transcript(prompt: Prompt) -> str:
    """A conversation as one text, for protocols that take a single prompt."""
    turns = prompt.turns
    if len(turns) == 1:
        text = turns[0]["content"]
    else:
        text = "\n\n".join(f"{t['role'].capitalize()}: {t['content']}" for t in turns)
        text += "\n\nAssistant:"
    return f"{prompt.system}\n\n{text}" if prompt.system else text


def write_request(config, prompt: Prompt) -> dict:
    if prompt.tools:
        raise Unsupported(
            "tools",
            "The completions protocol takes no tools; give this model a custom request body that maps {{tools}}.",
        )
    for kind, name in (
        (ToolCall, "tool calls"),
        (ToolResult, "tool results"),
        (Media, "images or files"),
    ):
        if prompt.has(kind):
            raise Unsupported("messages", f"The completions protocol cannot carry {name}.")
    if prompt.output is not None and prompt.output.kind != "text":
        raise Unsupported(
            "response_format", "The completions protocol has no JSON response format."
        )
    openai = extra(prompt, "openai")
    refused = sorted(set(openai) - set(TAKES) - set(NO_OPS))
    if refused:
        raise Unsupported(
            refused[0], f"`{refused[0]}` is not supported by the completions protocol."
        )
    params = merged_params(config, prompt)
    if "stop" in params:
        params["stop"] = stop_list(params["stop"])
    body = {"model": config.model_id, "prompt": transcript(prompt)} | params
    return body | {k: v for k, v in openai.items() if k in TAKES}


def read_reply(data: Any, config=None, prompt=None) -> Completion:
    choice = as_dict((as_list(as_dict(data).get("choices")) or [None])[0])
    text = choice.get("text")
    if not isinstance(text, str):
        raise ValueError("The answer's choices[0].text is not text.")
    message = Message("assistant", (Text(text),) if text else ())
    finish = chat.finish_from(FINISH, choice.get("finish_reason"))
    return Completion(message, finish, openai_chat.usage_in(data))


class StreamReader:
    def __init__(self):
        self.open = False
        self.finished = False

    def feed(self, data: Any) -> list:
        out: list = []
        if isinstance(as_dict(data).get("usage"), dict):
            out.append(UsageSeen(openai_chat.usage_in(data)))
        choice = as_dict((as_list(as_dict(data).get("choices")) or [None])[0])
        text = choice.get("text")
        if isinstance(text, str) and text:
            if not self.open:
                self.open = True
                out.append(BlockStarted(0, "text"))
            out.append(BlockDelta(0, "text", text))
        finish = chat.finish_from(FINISH, choice.get("finish_reason"))
        if finish is not None and not self.finished:
            self.finished = True
            out += self.end() + [Finished(finish)]
        return out

    def end(self) -> list:
        if not self.open:
            return []
        self.open = False
        return [BlockEnded(0)]
