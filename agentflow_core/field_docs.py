"""The ``#:`` comments above the fields of a class: each config field's one documentation.

A setting is documented once, where it is declared, in the comment form Sphinx's autodoc reads
(``#: Seconds one call may take.`` on the lines above ``timeout_s: float = 120.0``). The config
reference is generated from these comments, so the page and the code cannot say different things.
The same form documents the members of an enum (``#: The paper's: ...`` above ``TRAJECTORY = ...``).
"""

from __future__ import annotations

import ast
import inspect
import textwrap

import attrs

#: What starts a documentation comment; a plain ``#`` comment stays a note for readers of the code.
MARKER = "#:"


def field_docs(cls: type) -> dict[str, str]:
    """The documentation of each field (or enum member) of ``cls`` and of its bases, by name.

    A field redeclared in a subclass takes the subclass's comment; one without a comment is absent.
    """
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__[:-1]):  # object has no source
        docs.update(_declared_docs(klass))
    return docs


def undocumented(cls: type) -> list[str]:
    """The fields of the attrs class ``cls`` without a ``#:`` comment, in declaration order."""
    docs = field_docs(cls)
    return [field.name for field in attrs.fields(cls) if not docs.get(field.name)]


def _declared_docs(cls: type) -> dict[str, str]:
    """The comments of the fields declared in ``cls``'s own body."""
    try:
        lines, _ = inspect.getsourcelines(cls)
    except (OSError, TypeError):  # made at run time, or a builtin
        return {}
    body = ast.parse(textwrap.dedent("".join(lines))).body
    if not body or not isinstance(body[0], ast.ClassDef):
        return {}
    docs = {}
    for statement in body[0].body:
        name = _declared_name(statement)
        comment = _comment_above(lines, statement.lineno - 1)
        if name and comment:
            docs[name] = comment
    return docs


def _declared_name(statement: ast.stmt) -> str | None:
    """``timeout_s`` of ``timeout_s: float = 1.0`` and of ``TIMEOUT = "x"``; ``None`` for anything else."""
    if isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name):
        return statement.target.id
    if isinstance(statement, ast.Assign) and len(statement.targets) == 1 and isinstance(statement.targets[0], ast.Name):
        return statement.targets[0].id
    return None


def _comment_above(lines: list[str], index: int) -> str:
    """The ``#:`` lines right above ``lines[index]``, joined into one paragraph."""
    found: list[str] = []
    for line in reversed(lines[:index]):
        text = line.strip()
        if not text.startswith(MARKER):
            break
        found.append(text.removeprefix(MARKER).strip())
    return " ".join(reversed(found)).strip()
