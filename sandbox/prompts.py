"""Saved prompts: a person's own, and those shared with the team, each save an immutable
numbered version (with labels such as production, and a diff between any two)."""

from __future__ import annotations

import difflib
import json
import re

from django.db import transaction
from django.db.models import Q

from integrations import audit
from integrations.llm import inputs
from integrations.llm.chat import Prompt
from integrations.models import AuditAction
from integrations.team.roles import is_admin
from sandbox import tools
from sandbox.forms import MAX_TURN_CHARS, MAX_TURNS, ROLES, ColumnForm, is_pick, variables_in
from sandbox.models import PromptLabel, PromptVersion, SavedPrompt

MAX_NAME = 100


def visible(user):
    """The person's own prompts and the team's shared ones."""
    return (
        SavedPrompt.objects.filter(Q(owner=user) | Q(shared=True))
        .select_related("owner")
        .order_by("name")
    )


def _text(value: str, what: str) -> str:
    if len(value) > MAX_TURN_CHARS:
        raise inputs.InputError(f"{what} is over {MAX_TURN_CHARS} characters.")
    return inputs.clean_text(value, what)


def _columns(data) -> list[dict]:
    """The page's columns as saved: each model, and its parameters validated by the
    column form's own fields (a saved prompt may still have no model picked)."""
    columns = []
    for i in range(4):
        prefix = f"c{i}-" if i else ""
        if f"{prefix}model" not in data:
            continue
        column = ColumnForm(data, column=i)
        column.is_valid()
        problems = [(n, e) for n, e in column.errors.items() if n != "model"]
        if problems:
            name, errors = problems[0]
            label = column.fields[name].label if name in column.fields else name
            raise inputs.InputError(f"{label}: {errors[0]}")
        model = data.get(f"{prefix}model", "")
        params, _ = column.params()
        columns.append({"model": model if is_pick(model) else "", "params": params})
    return columns


def save(user, data) -> tuple[SavedPrompt | None, str]:
    """Save (or overwrite, by name) the person's prompt; return it, or None and why not.
    Variables may be left blank: a saved prompt is a template."""
    name = (data.get("prompt_name") or "").strip()
    if not name:
        return None, "Name the prompt to save it."
    if len(name) > MAX_NAME:
        return None, f"Keep the name under {MAX_NAME} characters."
    try:
        inputs.clean_text(name, "The name")
        system = _text(data.get("system_prompt", ""), "The system prompt")
        draft = _text(data.get("user_prompt", ""), "The user message")
        roles, contents = data.getlist("turn_role"), data.getlist("turn_content")
        if len(roles) != len(contents) or len(roles) > MAX_TURNS:
            return None, "The conversation is garbled or too long to save."
        turns = [
            {"role": r, "content": _text(c, f"Message {n}")}
            for n, (r, c) in enumerate(zip(roles, contents, strict=True), 1)
            if r in dict(ROLES)
        ]
        names = variables_in(system, draft, *[t["content"] for t in turns])
        variables = {n: _text(data.get(f"var-{n}", ""), f"Variable {n}") for n in names}
        columns = _columns(data)
    except inputs.InputError as exc:
        return None, str(exc)
    try:
        options = _options(data)
    except tools.ToolsError as exc:
        return None, str(exc)
    content = {"system_prompt": system, "user_prompt": draft, "turns": turns,
               "variables": variables, "columns": columns, "options": options}  # fmt: skip
    with transaction.atomic():
        saved, _ = SavedPrompt.objects.update_or_create(
            owner=user, name=name,
            defaults={"shared": bool(data.get("prompt_shared"))}
            | {k: v for k, v in content.items() if k != "options"},
        )  # fmt: skip
        latest = saved.versions.order_by("-number").first()
        if latest is None or any(getattr(latest, k) != v for k, v in content.items()):
            message = (data.get("version_message") or "").strip()[:200]
            PromptVersion.objects.create(
                prompt=saved, number=(latest.number if latest else 0) + 1,
                message=message, created_by=user, **content,
            )  # fmt: skip
    return saved, ""


def _options(data) -> dict:
    """The page's tools, tool choice and response format, checked, as versions keep them."""
    offered = tools.parse_tools(data.get("tools", ""))
    output = tools.output_format(data.get("response_format", ""), data.get("response_schema", ""))
    choice = tools.tool_choice(data.get("tool_choice", ""), offered)
    return tools.options_of(Prompt(tools=offered, tool_choice=choice, output=output))


LABEL = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")


def move_label(request, prompt: SavedPrompt, name: str, version: PromptVersion) -> str:
    """Put a label (production, staging…) on a version, off whichever had it; "" or why
    not. Editors and Admins move labels."""
    name = name.strip().lower()
    if not LABEL.match(name):
        return "A label is 1 to 40 lower-case letters, digits, - or _, starting with a letter."
    PromptLabel.objects.update_or_create(prompt=prompt, name=name, defaults={"version": version})
    audit.record(request, AuditAction.PROMPT_VERSION, prompt,
                 detail=f"label {name} → v{version.number}")  # fmt: skip
    return ""


def diff(old: PromptVersion, new: PromptVersion) -> list[dict]:
    """Each part of the prompt that changed between two versions, as unified diff lines."""
    parts = []
    for field, label in (("system_prompt", "System prompt"), ("user_prompt", "User message"),
                         ("turns", "Conversation"), ("variables", "Variables"),
                         ("columns", "Models and parameters"), ("options", "Tools and format")):  # fmt: skip
        a, b = _lines(getattr(old, field)), _lines(getattr(new, field))
        if a != b:
            lines = list(
                difflib.unified_diff(a, b, f"v{old.number}", f"v{new.number}", lineterm="", n=2)
            )
            parts.append({"label": label, "lines": [
                {"text": line, "kind": "add" if line[:1] == "+" else "del" if line[:1] == "-" else "same"}
                for line in lines[2:]
            ]})  # fmt: skip
    return parts


def _lines(value) -> list[str]:
    text = value if isinstance(value, str) else json.dumps(value, indent=2, ensure_ascii=False)
    return text.splitlines()


def delete(user, pk) -> bool:
    """Delete a saved prompt: its owner may, and an Admin may remove a shared one."""
    found = SavedPrompt.objects.filter(pk=pk).first()
    if found is None or not (found.owner_id == user.pk or (found.shared and is_admin(user))):
        return False
    found.delete()
    return True
