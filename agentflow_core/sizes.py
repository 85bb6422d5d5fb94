"""Cutting text to a size, with a marker that says how much was left out.

Whatever a module writes is copied into memory, into every later prompt and into the trajectory,
so one 20 MB analysis from a broken or hostile server would grow all three without end (#33).
The solver passes every record a module returns through :func:`capped`; a cut is never silent.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, TypeVar

import attrs

from agentflow_core.records import ModuleCall

T = TypeVar("T")

#: The key that replaces tool arguments too large to keep even with their texts cut.
ARGUMENTS_CUT_KEY = "_cut"


def clip(text: str, max_chars: int) -> str:
    """``text`` itself when it fits, else its first ``max_chars`` characters and a marker."""
    if len(text) <= max_chars:
        return text
    return f"{text[:max_chars]} … [cut: {len(text) - max_chars} of {len(text)} characters not shown]"


def capped(record: T, max_chars: int) -> T:
    """``record`` (a module's output) with each text it carries cut to ``max_chars``.

    That is every string field of the record, the strings inside a mapping field (a tool call's
    arguments) and the raw response of its ``ModuleCall``; the prompts it was sent are left whole.
    Anything that is not an attrs record is returned as it is.
    """
    cls = type(record)
    if not attrs.has(cls):
        return record
    changes = {}
    for field in attrs.fields(cls):
        value = getattr(record, field.name)
        new = _capped_value(value, max_chars)
        if new is not value:
            changes[field.name] = new
    # ``record`` is an attrs instance (checked above), which mypy cannot carry over from ``cls`` to it.
    return attrs.evolve(record, **changes) if changes else record  # type: ignore[misc]


def _capped_value(value: Any, max_chars: int) -> Any:
    if isinstance(value, str):
        return clip(value, max_chars)
    if isinstance(value, ModuleCall):
        response = clip(value.response, max_chars)
        return value if response is value.response else attrs.evolve(value, response=response)
    if isinstance(value, Mapping):
        return capped_arguments(value, max_chars)
    return value


def capped_arguments(arguments: Mapping[str, Any], max_chars: int) -> Mapping[str, Any]:
    """Tool arguments whose texts together take at most about ``max_chars`` characters.

    Texts are cut in order, sharing the room; arguments that are still larger (thousands of keys
    or numbers) are replaced by one ``_cut`` entry saying so, which the tool's schema then refuses
    as a visible tool error rather than a call with half its arguments.
    """
    if len(json.dumps(arguments, ensure_ascii=False, default=str)) <= max_chars:
        return arguments
    room = [max_chars]
    fitted = _fit(dict(arguments), room)
    size = len(json.dumps(fitted, ensure_ascii=False, default=str))
    if size <= 2 * max_chars:
        return fitted
    return {ARGUMENTS_CUT_KEY: f"the arguments took more than {max_chars} characters even with their texts cut"}


def _fit(value: Any, room: list[int]) -> Any:
    """``value`` with its strings cut so that together they use at most ``room[0]`` characters."""
    if isinstance(value, str):
        kept = clip(value, room[0])
        room[0] = max(0, room[0] - len(value))
        return kept
    if isinstance(value, Mapping):
        return {key: _fit(item, room) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_fit(item, room) for item in value]
    return value
