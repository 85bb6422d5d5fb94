"""Asking a model for a JSON object, and reading whatever comes back.

The request always carries the JSON schema (servers that support ``response_format`` return
valid JSON), but the answer is parsed tolerantly: code fences, prose around the object, or
plain ``Key: value`` lines are all accepted, because small models and some servers ignore the
schema. What could not be read is reported, never raised: the module picks a fallback and the
``ModuleCall`` records the parse error.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from agentflow_core.engine import Completion, Engine, GenerationRequest, JsonSchema, Message
from agentflow_core.records import ModuleCall, ModuleRole


@attrs.frozen
class Parsed:
    #: Fields that could be read, coerced to the schema's types where possible.
    values: Mapping[str, Any]
    #: ``None`` when the response was a valid instance; else what was wrong.
    error: str | None = None


async def ask(
    engine: Engine,
    *,
    role: ModuleRole,
    purpose: str,
    messages: Sequence[Message],
    schema: JsonSchema | None = None,
    max_tokens: int | None = None,
) -> tuple[Completion, ModuleCall]:
    """One module call: send, time, and wrap the exchange in a ``ModuleCall``."""
    request = GenerationRequest(messages=tuple(messages), json_schema=schema, max_tokens=max_tokens)
    started = time.perf_counter()
    completion = await engine.generate(request)
    latency = completion.latency_s or time.perf_counter() - started
    call = ModuleCall(
        role=role,
        purpose=purpose,
        engine=engine.name,
        messages=request.messages,
        response=completion.text,
        usage=completion.usage,
        latency_s=latency,
        tokens=completion.tokens,
    )
    return completion, call


def object_schema(properties: Mapping[str, Mapping[str, Any]], required: Sequence[str] | None = None) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": dict(properties),
        "required": list(required if required is not None else properties),
        "additionalProperties": False,
    }


def parse_object(text: str, schema: Mapping[str, Any]) -> Parsed:
    """Read ``text`` as an instance of the object ``schema`` as far as possible."""
    properties: Mapping[str, Mapping[str, Any]] = schema.get("properties", {})
    raw = _json_object(text)
    how = None
    if raw is None:
        raw = _labelled_lines(text, list(properties))
        how = "response was not JSON; read labelled lines" if raw else "response was neither JSON nor labelled lines"
    values: dict[str, Any] = {}
    problems: list[str] = []
    for name, prop in properties.items():
        if name not in raw:
            continue
        value, problem = _coerce(raw[name], prop)
        if problem:
            problems.append(f"{name}: {problem}")
        if value is not None:
            values[name] = value
    missing = [n for n in schema.get("required", ()) if n not in values]
    if missing:
        problems.append(f"missing {', '.join(missing)}")
    error = "; ".join(p for p in (how, *problems) if p) or None
    return Parsed(values, error)


def _json_object(text: str) -> dict[str, Any] | None:
    """The first JSON object in ``text``, allowing fences and prose around it."""
    stripped = text.strip()
    candidates = [stripped]
    candidates += [m.group(1) for m in re.finditer(r"```(?:json)?\s*(.*?)```", text, re.S)]
    for candidate in candidates:
        try:
            value = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    decoder = json.JSONDecoder()
    for match in re.finditer(r"\{", text):
        try:
            value, _ = decoder.raw_decode(text, match.start())
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return None


def _labelled_lines(text: str, names: Sequence[str]) -> dict[str, str]:
    """``Sub-goal: ...`` style answers; a value runs until the next known label."""
    if not names:
        return {}
    labels = {_label_key(n): n for n in names}
    pattern = re.compile(r"^[\s*#>-]*([A-Za-z][A-Za-z _-]{0,40}?)\s*\**\s*[:=]\s*(.*)$")
    found: dict[str, list[str]] = {}
    current: str | None = None
    for line in text.splitlines():
        match = pattern.match(line)
        name = labels.get(_label_key(match.group(1))) if match else None
        if match and name:
            current = name
            found[current] = [match.group(2).strip().strip("*").strip()]
        elif current is not None:
            found[current].append(line.strip())
    return {name: "\n".join(parts).strip() for name, parts in found.items()}


def _label_key(label: str) -> str:
    return re.sub(r"[^a-z]", "", label.lower())


def _coerce(value: Any, prop: Mapping[str, Any]) -> tuple[Any, str | None]:
    choices = prop.get("enum")
    if choices is not None:
        return _choose(value, choices)
    kind = prop.get("type")
    if kind == "string":
        if isinstance(value, str):
            return value, None
        return (json.dumps(value, ensure_ascii=False) if isinstance(value, dict | list) else str(value)), None
    if kind == "object":
        if isinstance(value, dict):
            return value, None
        parsed = _json_object(str(value))
        return (parsed, None) if parsed is not None else (None, "expected an object")
    return value, None


def _choose(value: Any, choices: Sequence[Any]) -> tuple[Any, str | None]:
    """Match an enum answer exactly, then ignoring case and punctuation, then as a mention."""
    if value in choices:
        return value, None
    text = str(value)
    by_key = {_label_key(str(c)): c for c in choices}
    if _label_key(text) in by_key:
        return by_key[_label_key(text)], None
    mentioned = [c for c in choices if re.search(rf"(?<![\w]){re.escape(str(c))}(?![\w])", text, re.I)]
    if len(mentioned) == 1:
        return mentioned[0], f"{text!r} is not one of the choices; read it as {mentioned[0]!r}"
    return None, f"{text!r} is not one of {', '.join(map(str, choices))}"


async def ask_structured(
    engine: Engine,
    *,
    role: ModuleRole,
    purpose: str,
    messages: Sequence[Message],
    schema: JsonSchema,
    max_tokens: int | None = None,
) -> tuple[Parsed, ModuleCall]:
    """``ask`` with a schema, then ``parse_object``; the call records any parse error."""
    completion, call = await ask(
        engine, role=role, purpose=purpose, messages=messages, schema=schema, max_tokens=max_tokens
    )
    parsed = parse_object(completion.text, schema.schema)
    if parsed.error:
        call = attrs.evolve(call, parse_error=parsed.error)
    return parsed, call
