"""A registry of the built-ins plus the plugins a test names, and nothing else installed."""

from __future__ import annotations

from typing import Any

from agentflow_core.plugins import load_registry
from agentflow_core.registry import Registry


def registry_with(*plugins: Any, builtin_tools: bool = True) -> Registry:
    """Built-in engines and modules, the built-in tools (unless told not to), and ``plugins``.

    Entry points are not read, so whatever else is installed cannot change a test's outcome.
    """
    extra: list[Any] = []
    if builtin_tools:
        import agentflow_tools.plugin

        extra.append(agentflow_tools.plugin)
    return load_registry(entry_points=False, extra=[*extra, *plugins])
