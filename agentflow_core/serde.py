"""The one cattrs converter. Records go to and from JSON only through here."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, TypeVar

import cattrs
from cattrs.preconf.json import make_converter
from cattrs.strategies import configure_tagged_union

from agentflow_core.records import ToolFailure, ToolSuccess

T = TypeVar("T")


def _make() -> cattrs.Converter:
    conv = make_converter(forbid_extra_keys=True)
    # Tool outcomes are a tagged union so a reader sees at a glance which branch a step took.
    configure_tagged_union(ToolSuccess | ToolFailure, conv, tag_name="_type")
    # Free-form mappings (tool arguments, options) are plain JSON; keep them as they are.
    is_free_mapping = lambda t: t == Mapping[str, Any]  # noqa: E731
    conv.register_structure_hook_func(is_free_mapping, lambda v, _: dict(v))
    conv.register_unstructure_hook_func(is_free_mapping, dict)
    return conv


converter = _make()


def to_dict(obj: Any) -> Any:
    return converter.unstructure(obj)


def from_dict(data: Any, cls: type[T]) -> T:
    return converter.structure(data, cls)


def to_json(obj: Any, *, indent: int | None = None) -> str:
    return json.dumps(to_dict(obj), indent=indent, ensure_ascii=False)


def from_json(text: str, cls: type[T]) -> T:
    return from_dict(json.loads(text), cls)
