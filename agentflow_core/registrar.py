"""The rules every ``register`` callback shares: provenance, explicit overrides, and clashes.

An item is known by a key (a tool's name, an engine's provider, a command's name). One
registration per key is the rule. A plugin may take a key over from another, built-in or not,
only by saying so: ``register(..., replace=True)``; the item then records whose registration it
replaced. Two plain registrations of one key, or two replacements of it, are an error naming
both sources, because which one wins would otherwise depend on the order plugins happen to
load in. The rules are applied once every plugin has been asked (:meth:`Registrar.resolve`), so
the outcome does not depend on the order pluggy calls them in either.
"""

from __future__ import annotations

from typing import Any, ClassVar, Generic, Protocol, TypeVar

import attrs

from agentflow_core import provenance
from agentflow_core.errors import PluginError


class Registered(Protocol):
    @property
    def source(self) -> str: ...

    @property
    def replaces(self) -> str | None: ...


T = TypeVar("T", bound=Registered)


@attrs.frozen
class _Pending(Generic[T]):
    key: str
    item: T
    replace: bool
    attribution: provenance.Attribution


class Registrar(Generic[T]):
    """Collects one hook's registrations; subclasses are the ``register`` callbacks plugins receive."""

    #: What one item is called in messages: "tool", "engine provider", "command".
    what: ClassVar[str] = "item"

    def __init__(self) -> None:
        self._pending: list[_Pending[T]] = []

    @property
    def source(self) -> str:
        """The plugin calling right now, as its distribution (or module) reads."""
        return provenance.current().source

    def _add(self, key: str, item: T, *, replace: bool) -> None:
        self._pending.append(_Pending(key, item, bool(replace), provenance.current()))

    def resolve(self) -> dict[str, T]:
        """One item per key, with the override and clash rules applied."""
        by_key: dict[str, list[_Pending[T]]] = {}
        for pending in self._in_registration_order():
            if not pending.attribution.failed:
                by_key.setdefault(pending.key, []).append(pending)
        return {key: self._one(key, entries) for key, entries in by_key.items()}

    def _in_registration_order(self) -> list[_Pending[T]]:
        # pluggy calls the last registered plugin first; naming the built-in first reads better.
        calls: dict[int, list[_Pending[T]]] = {}
        for pending in self._pending:
            calls.setdefault(id(pending.attribution), []).append(pending)
        return [pending for call in reversed(calls.values()) for pending in call]

    def _one(self, key: str, entries: list[_Pending[T]]) -> T:
        plain = [e.item for e in entries if not e.replace]
        overrides = [e.item for e in entries if e.replace]
        if len(plain) > 1:
            raise PluginError(
                f"{self.what} {key!r} is registered twice: by {plain[0].source} and by {plain[1].source}; "
                "a plugin that means to replace it registers it with replace=True"
            )
        if len(overrides) > 1:
            raise PluginError(
                f"{self.what} {key!r} is replaced (replace=True) by two plugins: {overrides[0].source} and "
                f"{overrides[1].source}; turn one off with AGENTFLOW_DISABLE_PLUGINS"
            )
        if not overrides:
            return plain[0]
        replaced: Any = plain[0].source if plain else None
        # mypy's attrs plugin wants T bound to an attrs class, which a Protocol cannot say; every item is one.
        return attrs.evolve(overrides[0], replaces=replaced)  # type: ignore[misc]
