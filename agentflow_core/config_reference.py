"""A reference page for a TOML file, generated from the attrs classes it is structured into.

Each table of the file is an attrs class; each key is a field, described by its type, its default,
the constraints its validators check, and its ``#:`` comment (``field_docs``). Walking the classes
from the root gives every table once, in declaration order, so that the page is a pure function of
the code: ``agentflow config reference`` writes the ``agentflow.toml`` page from the core's classes and
the settings classes plugins register, and the training package writes its own page the same way.
"""

from __future__ import annotations

import enum
import json
import re
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import attrs

from agentflow_core.field_docs import field_docs

#: Field metadata of a field that is no key of the file (where the file was read, say); the page leaves it out.
NOT_A_KEY = "agentflow.not_a_key"

_SCALARS: dict[Any, tuple[str, str]] = {
    bool: ("boolean", "booleans"),
    int: ("integer", "integers"),
    float: ("number", "numbers"),
    str: ("string", "strings"),
    Any: ("any value", "values"),
}


@attrs.frozen
class Key:
    """One row of a table: what the key is called, takes, defaults to and is for (Markdown text)."""

    name: str
    type: str
    default: str
    doc: str


@attrs.frozen
class Table:
    """One ``[path]`` of the file: its class's docstring and its keys."""

    path: str
    doc: str
    keys: tuple[Key, ...]
    #: Every path where this class's table appears, when it is more than its own (``[engines.planner]``, ...).
    used_at: tuple[str, ...] = ()


def heading(path: str) -> str:
    """How a table's section is titled: ``[policy.lora]`` in code, or "Top level" for the root."""
    return f"`[{path}]`" if path else "Top level"


def anchor(path: str) -> str:
    """The ``#fragment`` GitHub gives the section of ``path``: lower case, punctuation dropped."""
    return re.sub(r"[^\w\- ]", "", heading(path).lower()).replace(" ", "-")


class Reference:
    """The tables of one file, gathered by walking attrs classes; each class's table is written once.

    ``paths`` names the section of a class used in several places (an engine table under every
    module's name): it is written there, and every key that uses it links to it.
    """

    def __init__(self, paths: Mapping[type, str] | None = None) -> None:
        self._paths = dict(paths or {})
        self._tables: dict[str, Table] = {}
        #: Sections in the order they were reached (a table is complete only after those below it).
        self._order: list[str] = []
        self._placed: dict[type, str] = {}
        self._used_at: dict[str, list[str]] = {}

    def add(self, cls: type, path: str, *, note: str = "") -> None:
        """The table ``cls`` at ``path`` and every table below it; ``note`` goes before the class's docstring."""
        self._table_of(cls, path, note)

    @property
    def tables(self) -> list[Table]:
        """Every table in the order it was reached, each naming the paths it stands for."""
        found = []
        for path in self._order:
            used = self._used_at[path]
            found.append(attrs.evolve(self._tables[path], used_at=tuple(used) if used != [path] else ()))
        return found

    def _table_of(self, cls: type, path: str, note: str = "") -> str:
        """Where ``cls``'s table is written (walking it first if this is its first use)."""
        if cls in self._placed:
            self._used_at[self._placed[cls]].append(path)
            return self._placed[cls]
        placed = self._paths.get(cls, path)
        self._placed[cls] = placed
        self._used_at[placed] = [path]
        self._order.append(placed)
        docs, hints = field_docs(cls), typing.get_type_hints(cls)
        keys = tuple(
            self._key(field, hints[field.name], docs.get(field.name, ""), placed)
            for field in attrs.fields(cls)
            if not field.metadata.get(NOT_A_KEY)
        )
        self._tables[placed] = Table(placed, " ".join(filter(None, (note, _first_paragraph(cls.__doc__)))), keys)
        return placed

    def _key(self, field: attrs.Attribute[Any], hint: Any, doc: str, parent: str) -> Key:
        inner = _without_none(hint)
        path = f"{parent}.{field.name}" if parent else field.name
        meaning = _markdown(doc) + _member_docs(inner)
        if attrs.has(inner):
            where = self._table_of(inner, path)
            return Key(field.name, f"table: [{heading(where)}](#{anchor(where)})", _default(field), meaning)
        value = _mapped_class(inner)
        if value is not None:
            where = self._table_of(value, f"{path}.NAME")
            return Key(field.name, f"tables: [{heading(where)}](#{anchor(where)})", _default(field), meaning)
        return Key(field.name, _type_words(inner) + _constraints(field.validator), _default(field), meaning)


def render(tables: Sequence[Table], *, level: int = 2) -> str:
    """The tables as Markdown sections, one heading and one key table each."""
    parts = []
    for table in tables:
        lines = [f"{'#' * level} {heading(table.path)}", ""]
        if table.used_at:
            lines += ["Used as " + ", ".join(f"`[{p}]`" for p in table.used_at) + ".", ""]
        if table.doc:
            lines += [_markdown(table.doc), ""]
        lines += ["| key | type | default | meaning |", "| --- | --- | --- | --- |"]
        lines += [f"| `{k.name}` | {_cell(k.type)} | {_cell(k.default)} | {_cell(k.doc)} |" for k in table.keys]
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"


def undocumented_fields(tables: Sequence[Table]) -> list[str]:
    """``path.key`` of every key without a meaning."""
    return [f"{t.path}.{k.name}" if t.path else k.name for t in tables for k in t.keys if not k.doc]


# -- the words of one key ------------------------------------------------------------------------


def _without_none(hint: Any) -> Any:
    """``X`` of ``X | None`` (TOML has no null: an unset key is the None)."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        rest = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        if len(rest) == 1:
            return rest[0]
    return hint


def _mapped_class(hint: Any) -> type | None:
    """``X`` of a ``Mapping[str, X]`` whose values are tables."""
    args = typing.get_args(hint)
    if _is_mapping(hint) and len(args) == 2 and attrs.has(args[1]):
        return typing.cast(type, args[1])
    return None


def _is_mapping(hint: Any) -> bool:
    origin = typing.get_origin(hint)
    return isinstance(origin, type) and issubclass(origin, Mapping)


def _type_words(hint: Any) -> str:
    """What a TOML value of ``hint`` is, in words: ``integer``, ``array of strings``, ``"bm25" or "embeddings"``."""
    if hint in _SCALARS:
        return _SCALARS[hint][0]
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return _choices([member.value for member in hint])
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Literal:
        return _choices(list(args))
    if _is_mapping(hint):
        return "table" if len(args) < 2 or args[1] is Any else f"table of {_plural(args[1])}"
    if isinstance(origin, type) and issubclass(origin, Sequence) and args:
        if (len(args) == 2 and args[1] is Ellipsis) or len(args) == 1:
            return f"array of {_plural(args[0])}"
        if len(set(args)) == 1:
            return f"array of {len(args)} {_plural(args[0])}"
    return f"`{hint}`"


def _plural(hint: Any) -> str:
    return _SCALARS[hint][1] if hint in _SCALARS else f"values of type {_type_words(hint)}"


def _choices(values: Sequence[Any]) -> str:
    return " or ".join(f"`{_toml(v)}`" for v in values)


def _member_docs(hint: Any) -> str:
    """A line ``<br>`value`: what it means`` for each documented member of an enum."""
    if not (isinstance(hint, type) and issubclass(hint, enum.Enum)):
        return ""
    docs = field_docs(hint)
    return "".join(f"<br>`{_toml(m.value)}`: {_markdown(docs[m.name])}" for m in hint if docs.get(m.name))


def _constraints(validator: Any) -> str:
    """``>= 1``, ``> 0, < 1``: the bounds of attrs' number validators, however they are combined."""
    found: list[str] = []
    pending = [validator]
    while pending:
        current = pending.pop(0)
        if isinstance(current, list | tuple):
            pending[:0] = current
        elif hasattr(current, "compare_op") and hasattr(current, "bound"):
            found.append(f"{current.compare_op} {current.bound:g}")
        elif hasattr(current, "validator"):  # optional(...)
            pending.insert(0, current.validator)
        elif hasattr(current, "_validators"):  # and_(...), or a list given to attrs.field
            pending[:0] = list(current._validators)
    return (", " + ", ".join(found)) if found else ""


def _default(field: attrs.Attribute[Any]) -> str:
    default: Any = field.default
    if default is attrs.NOTHING:
        return "required"
    factory = getattr(default, "factory", None)  # an attrs.Factory (typed as a function, so no isinstance)
    if factory is not None:
        default = factory(None) if default.takes_self else factory()
    if default is None:
        return "unset"
    if attrs.has(type(default)):
        return "its keys' defaults"
    return f"`{_toml(default)}`"


def _toml(value: Any) -> str:
    """``value`` as TOML writes it."""
    if isinstance(value, enum.Enum):
        return _toml(value.value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }" if value else "{}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return repr(value)


def _first_paragraph(doc: str | None) -> str:
    return " ".join((doc or "").strip().split("\n\n")[0].split())


def _markdown(text: str) -> str:
    """reStructuredText's ``code`` and :role:`target` as Markdown code."""
    text = re.sub(r":[a-z]+:`~?([^`]+)`", r"`\1`", text)
    return text.replace("``", "`")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
