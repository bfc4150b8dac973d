"""Saved prompts: a person's own, and those shared with the team. Writes SavedPrompt only."""

from __future__ import annotations

from django.db.models import Q

from integrations.llm import inputs
from integrations.team.roles import is_admin
from sandbox.forms import MAX_TURN_CHARS, MAX_TURNS, ROLES, ColumnForm, is_pick, variables_in
from sandbox.models import SavedPrompt

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
    saved, _ = SavedPrompt.objects.update_or_create(
        owner=user,
        name=name,
        defaults={
            "shared": bool(data.get("prompt_shared")),
            "system_prompt": system,
            "user_prompt": draft,
            "turns": turns,
            "variables": variables,
            "columns": columns,
        },
    )
    return saved, ""


def delete(user, pk) -> bool:
    """Delete a saved prompt: its owner may, and an Admin may remove a shared one."""
    found = SavedPrompt.objects.filter(pk=pk).first()
    if found is None or not (found.owner_id == user.pk or (found.shared and is_admin(user))):
        return False
    found.delete()
    return True
