"""A registry of the built-ins plus the plugins a test names, and nothing else installed."""

from __future__ import annotations

from typing import Any

from agentflow_core.plugins import load_registry
from agentflow_core.registry import Registry


def registry_with(*plugins: Any, builtin_tools: bool = True) -> Registry:
    """The core's engines and modules, agentflow's bundled tools and benchmarks (unless
    ``builtin_tools=False``), and ``plugins``.

    Third-party entry points are not read, so whatever else is installed cannot change a test's
    outcome. The bundled plugins are found through agentflow's own entry points, as the CLI finds
    them: the core never imports ``agentflow_tools``.
    """
    return load_registry(entry_points=False, bundled=builtin_tools, extra=plugins)
