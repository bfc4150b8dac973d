"""The Sandbox form: a conversation with {{variables}}, and up to four columns, each a
model with its own parameters.

Field names: the conversation so far is posted as parallel `turn_role`/`turn_content`
lists, the message being written as `user_prompt`, variables as `var-<name>`. Column 0's
fields carry no prefix (`model`, `temperature`, ...); columns 1-3 are `c1-model`, ...
"""

from __future__ import annotations

import json
import re
import uuid

from django import forms
from django.conf import settings

from integrations.gateway import routed
from integrations.llm.config import Prompt
from integrations.llm.inputs import is_uuid  # noqa: F401 (the Sandbox's views use it)
from integrations.llm.wires.template import fixed_params
from sandbox import services, tools

VARIABLE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]{0,39})\s*\}\}")
PARAMS = ("temperature", "max_tokens", "top_p", "stop")
ROLES = (("user", "User"), ("assistant", "Assistant"), ("tool", "Tool result"))
MAX_TURNS = 100
MAX_TURN_CHARS = 100_000


ROUTE = "route:"  # a picked route's value: "route:<id>" (a model's is its id)


def model_choices() -> list:
    """Enabled models grouped by integration, then the routes, for a <select> with
    optgroups: a route is picked like a model and fails over as in the gateway."""
    groups: dict[str, list] = {}
    chat = services.usable_models().filter(kind="chat")  # embeddings have their own tab
    for pk, name, integration in chat.values_list("id", "name", "integration__name"):
        groups.setdefault(integration, []).append((str(pk), name))
    chat_routes = routed.usable_routes().filter(kind="chat")
    routes = [
        (f"{ROUTE}{pk}", f"{name} (route)") for pk, name in chat_routes.values_list("id", "name")
    ]
    return list(groups.items()) + ([("Routes", routes)] if routes else [])


def is_pick(value: str) -> bool:
    """A model's id or a route's value, as a picker posts it."""
    return bool(value) and is_uuid(value.removeprefix(ROUTE))


class PickField(forms.CharField):
    """A column's pick: (is it a route, its id)."""

    def to_python(self, value):
        value = super().to_python(value).strip()
        if not is_pick(value):
            raise forms.ValidationError("Choose a model or a route.")
        return value.startswith(ROUTE), uuid.UUID(value.removeprefix(ROUTE))


def prefix_of(column: int) -> str | None:
    return f"c{column}" if column else None


def variables_in(*texts: str) -> list[str]:
    """The {{variable}} names in the texts, in order of first use."""
    names: list[str] = []
    for text in texts:
        for name in VARIABLE.findall(text or ""):
            if name not in names:
                names.append(name)
    return names


def fill(text: str, values: dict[str, str]) -> str:
    return VARIABLE.sub(lambda m: values.get(m.group(1), m.group(0)), text)


class ColumnForm(forms.Form):
    """One column: a model and the parameters sent to it."""

    model = forms.ChoiceField(label="Model")
    temperature = forms.FloatField(label="Temperature", required=False, min_value=0, max_value=2)
    max_tokens = forms.IntegerField(
        label="Max tokens", required=False, min_value=1, max_value=200_000
    )
    top_p = forms.FloatField(label="Top p", required=False, min_value=0, max_value=1)
    stop = forms.CharField(
        label="Stop sequences",
        required=False,
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="One per line, up to 4.",
    )

    def __init__(self, *args, column: int = 0, choices=None, model=None, **kwargs):
        super().__init__(*args, prefix=prefix_of(column), **kwargs)
        self.column = column
        if self.is_bound:
            # A run validates the id it names; the picker's whole list costs a query.
            self.fields["model"] = PickField(label="Model")
        else:
            self.picker(choices or [])
        self.fixed = {}
        if model is not None:
            self.explain(model)

    def picker(self, choices: list) -> None:
        """The model <select>; picking a model loads its parameters into this column."""
        from django.urls import reverse

        self.fields["model"] = forms.ChoiceField(
            label="Model",
            choices=[("", "— choose a model —")] + choices,
            widget=forms.Select(
                attrs={
                    "hx-get": reverse("sandbox-column"),
                    "hx-trigger": "change",
                    "hx-target": f"#column-params-{self.column}",
                    "hx-swap": "innerHTML",  # not the form's "none"
                    "hx-include": "this",
                    "hx-vals": f'{{"column": "{self.column}"}}',
                    "data-model-picker": "",
                }
            ),
        )
        self._bound_fields_cache.pop("model", None)

    def explain(self, model) -> None:
        """Say which parameters the model's saved request body fixes, next to each field."""
        template = model.request_template
        if template is None:
            template = model.integration.request_template
        self.fixed = fixed_params(template)
        if "max_tokens" not in self.fixed:
            self._blank_max_tokens(model)
        for name, value in self.fixed.items():
            shown = "\n".join(value) if isinstance(value, list) else value
            self.fields[
                name
            ].help_text = (
                f"Set by the model's request body to {shown!r}. Type a value to override it."
            )
            self.fields[name].widget.attrs["placeholder"] = f"{shown} (request body)"

    def _blank_max_tokens(self, model) -> None:
        """Say what a blank Max tokens sends: the model's default, or the protocol's (Anthropic
        requires one, 1,024), or nothing."""
        from integrations.llm.protocols import adapter_for

        field = self.fields["max_tokens"]
        if model.max_tokens:
            field.widget.attrs["placeholder"] = f"{model.max_tokens:,} (the model's default)"
            field.help_text = "Blank sends the model's default."
        elif sent := adapter_for(model.integration.protocol).default_max_tokens:
            field.widget.attrs["placeholder"] = f"{sent:,} (sent when blank)"
            field.help_text = f"Blank sends {sent:,}: this protocol requires a value."
        else:
            field.help_text = "Blank sends none: the server's own limit applies."

    def clean_stop(self) -> list[str]:
        lines = [line for line in self.cleaned_data["stop"].splitlines() if line.strip()]
        if len(lines) > 4:
            raise forms.ValidationError("At most 4 stop sequences.")
        return lines

    def params(self) -> tuple[dict, frozenset]:
        """The parameters to send, and which of them override the model's request body."""
        data = self.cleaned_data
        params = {name: data.get(name) for name in PARAMS}
        params["stop"] = params["stop"] or None
        params = {k: v for k, v in params.items() if v is not None}
        return params, frozenset(k for k in params if k in self.fixed)


class SandboxForm(forms.Form):
    system_prompt = forms.CharField(
        label="System prompt",
        required=False,
        max_length=MAX_TURN_CHARS,
        widget=forms.Textarea(attrs={"rows": 3}),
    )
    user_prompt = forms.CharField(
        label="User message",
        required=False,
        max_length=MAX_TURN_CHARS,
        widget=forms.Textarea(attrs={"rows": 5}),
        help_text="Use {{name}} for a variable; fill it in under Variables.",
    )
    stream = forms.BooleanField(label="Stream the reply", required=False, initial=True)
    tools = forms.CharField(
        label="Tools (JSON)",
        required=False,
        max_length=64_000,
        widget=forms.Textarea(attrs={"rows": 8, "class": "code", "spellcheck": "false"}),
        help_text='A list of tools: {"name", "description", "parameters"} with a JSON Schema each.',
    )
    tool_choice = forms.ChoiceField(
        label="Tool choice",
        required=False,
        choices=[
            ("auto", "Auto: the model decides"),
            ("required", "Required: call a tool"),
            ("none", "None: answer in text"),
        ],  # fmt: skip
    )
    response_format = forms.ChoiceField(
        label="Response format",
        required=False,
        choices=[
            ("text", "Text"),
            ("json_object", "JSON object"),
            ("json_schema", "JSON matching a schema"),
        ],
    )
    response_schema = forms.CharField(
        label="Response schema (JSON Schema)",
        required=False,
        max_length=64_000,
        widget=forms.Textarea(attrs={"rows": 6, "class": "code", "spellcheck": "false"}),
    )

    def __init__(self, data=None, initial=None, columns=None, turns=None, variables=None):
        super().__init__(data, initial=initial)
        self.turns_initial = turns or []
        self.variables_initial = variables or {}
        self.choices = None if self.is_bound else model_choices()
        if self.is_bound:
            data = _with_compare_columns(data)
            self.data = data
            count = 1 + sum(f"c{i}-model" in data for i in range(1, 10))
            self.columns = [ColumnForm(data, column=i) for i in range(count)]
        else:
            columns = columns or [{}]
            self.columns = [
                ColumnForm(
                    column=i,
                    initial=c.get("initial"),
                    choices=self.choices,
                    model=c.get("model"),
                )
                for i, c in enumerate(columns[: settings.SANDBOX_COMPARE_MAX])
            ]

    # --- reading the post ----------------------------------------------------------------

    def is_valid(self) -> bool:
        columns_ok = all([c.is_valid() for c in self.columns])  # every column's errors
        return super().is_valid() and columns_ok

    def clean(self):
        cleaned = super().clean()
        if len(self.columns) > settings.SANDBOX_COMPARE_MAX:
            raise forms.ValidationError(
                f"Compare at most {settings.SANDBOX_COMPARE_MAX} models at once."
            )
        turns = self._turns()
        draft = (cleaned.get("user_prompt") or "").strip()
        if draft:
            turns.append({"role": "user", "content": cleaned["user_prompt"]})
        if not turns or turns[-1]["role"] not in ("user", "tool"):
            self.add_error("user_prompt", "Write the user message to send.")
        self._tools(cleaned)
        names = variables_in(cleaned.get("system_prompt", ""), *[t["content"] for t in turns])
        values = {n: self.data.get(f"var-{n}", "") for n in names}
        missing = [n for n in names if not values[n].strip()]
        if missing:
            listed = ", ".join("{{" + n + "}}" for n in missing)
            raise forms.ValidationError(f"Fill in the variables: {listed}.")
        cleaned["values"] = values
        cleaned["turns"] = [t | {"content": fill(t["content"], values)} for t in turns]
        cleaned["template"] = (
            {"system": cleaned.get("system_prompt", ""), "turns": turns, "variables": values}
            if names
            else {}
        )
        return cleaned

    def template(self) -> dict:
        """The prompts as typed, with the variables' values, when they used any: a run
        keeps them so that it reopens with its {{variables}} to edit, not filled in."""
        return self.cleaned_data.get("template", {})

    def _tools(self, cleaned: dict) -> None:
        """Tools and the response format, each checked next to its field."""
        try:
            cleaned["tool_list"] = tools.parse_tools(cleaned.get("tools", ""))
        except tools.ToolsError as exc:
            self.add_error("tools", str(exc))
            cleaned["tool_list"] = ()
        try:
            cleaned["output"] = tools.output_format(
                cleaned.get("response_format", ""), cleaned.get("response_schema", "")
            )
        except tools.ToolsError as exc:
            self.add_error("response_schema", str(exc))

    def _posted(self, name: str) -> list[str]:
        return self.data.getlist(name) if hasattr(self.data, "getlist") else []

    def _turns(self) -> list[dict]:
        roles, contents = self._posted("turn_role"), self._posted("turn_content")
        calls = self._posted("turn_tool_calls") or [""] * len(roles)
        call_ids = self._posted("turn_tool_call_id") or [""] * len(roles)
        if (
            len({len(roles), len(contents), len(calls), len(call_ids)}) != 1
            or len(roles) > MAX_TURNS
        ):
            raise forms.ValidationError(f"The conversation is garbled or over {MAX_TURNS} turns.")
        turns = []
        for number, (role, content, called, call_id) in enumerate(
            zip(roles, contents, calls, call_ids, strict=True), 1
        ):
            if role not in dict(ROLES):
                raise forms.ValidationError(f"Message {number} has no valid role.")
            try:
                turn_calls = tools.calls_of(called) if role == "assistant" else []
            except tools.ToolsError as exc:
                raise forms.ValidationError(f"Message {number}: {exc}") from exc
            if not content.strip() and not turn_calls:
                raise forms.ValidationError(f"Message {number} is empty: write it or delete it.")
            if len(content) > MAX_TURN_CHARS or "\x00" in content:
                raise forms.ValidationError(f"Message {number} is too long or has a NUL.")
            turn = {"role": role, "content": content}
            if turn_calls:
                turn["tool_calls"] = turn_calls
            if role == "tool":
                turn["tool_call_id"] = call_id[:64]
            turns.append(turn)
        return turns

    def column_prompt(self, column: ColumnForm) -> Prompt:
        data = self.cleaned_data
        params, overrides = column.params()
        turns = data["turns"]
        offered = data.get("tool_list", ())
        return Prompt(
            system=fill(data.get("system_prompt", ""), data["values"]),
            messages=tools.messages(turns),
            params=params,
            tools=offered,
            tool_choice=tools.tool_choice(data.get("tool_choice", ""), offered),
            output=data.get("output"),
            overrides=overrides,
        )

    def targets(self, only: int | None = None) -> list[tuple[services.Target, Prompt]] | None:
        """Each column's model, ready to call exactly as shown, with its prompt; None (and
        the error on the column) when a model is not available."""
        picked = []
        for column in self.columns:
            if only is not None and column.column != only:
                continue
            is_route, pk = column.cleaned_data["model"]
            if is_route:
                prompt = self.column_prompt(column)
                goal = routed.prepare(pk, prompt, self.cleaned_data.get("stream", False))
                if goal is None:
                    column.add_error("model", "That route is not available: disabled or deleted.")
                    return None
                picked.append((goal, prompt))
                continue
            goal = services.target(pk)
            if goal is None:
                column.add_error("model", "That model is not available: disabled or deleted.")
                return None
            column.explain(goal.model)  # before the prompt: what overrides the body
            picked.append((services.exact(goal), self.column_prompt(column)))
        return picked

    # --- rendering -------------------------------------------------------------------------

    def load_choices(self) -> None:
        """Fill the model pickers, for showing a posted form again."""
        self.choices = model_choices()
        for column in self.columns:
            column.picker(self.choices)

    def turn_rows(self) -> list[dict]:
        if self.is_bound:
            roles, contents = self._posted("turn_role"), self._posted("turn_content")
            calls = self._posted("turn_tool_calls") or [""] * len(roles)
            ids = self._posted("turn_tool_call_id") or [""] * len(roles)
            rows = zip(roles, contents, calls, ids, strict=False)
            return [
                {"role": r, "content": c, "calls_json": k, "tool_call_id": i} for r, c, k, i in rows
            ]
        return [t | {"calls_json": json.dumps(t["tool_calls"]) if t.get("tool_calls") else ""}
                for t in self.turns_initial]  # fmt: skip

    def variable_rows(self) -> list[dict]:
        texts = [self["system_prompt"].value() or "", self["user_prompt"].value() or ""]
        texts += [t["content"] for t in self.turn_rows()]
        source = (
            self.data
            if self.is_bound
            else {f"var-{k}": v for k, v in self.variables_initial.items()}
        )
        return [{"name": n, "value": source.get(f"var-{n}", "")} for n in variables_in(*texts)]


def _with_compare_columns(data):
    """The older `compare` list (models run with column 0's parameters) as columns."""
    if not hasattr(data, "getlist") or not data.getlist("compare"):
        return data
    data = data.copy()
    extra = [m for m in data.getlist("compare") if m and m != data.get("model")]
    for i, model in enumerate(extra, 1):
        data[f"c{i}-model"] = model
        for name in PARAMS:
            if data.get(name):
                data[f"c{i}-{name}"] = data[name]
    data.pop("compare")
    return data
