"""The base of every REST API input: the same edge rules as the forms, as 422s."""

from __future__ import annotations

from typing import Any

from ninja import Schema
from pydantic import BaseModel, field_validator

from integrations.llm import inputs


class Input(Schema):
    """An API payload: no NUL or lone surrogate in any text, JSON within the body limits."""

    @field_validator("*", mode="after")
    @classmethod
    def _edge_rules(cls, value: Any) -> Any:
        try:
            if isinstance(value, str):
                return inputs.clean_text(value, "The text")
            if isinstance(value, list) and any(isinstance(v, BaseModel) for v in value):
                return value  # nested schemas ran these rules on their own fields
            if isinstance(value, dict | list):
                return inputs.check_json(value, "The object")
        except inputs.InputError as exc:
            raise ValueError(str(exc)) from exc
        return value
