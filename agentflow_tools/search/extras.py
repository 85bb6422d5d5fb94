"""Import an optional dependency, or fail with the extra that installs it."""

from __future__ import annotations

import importlib
from types import ModuleType

from agentflow_core import ToolError


def need(module: str, extra: str = "search") -> ModuleType:
    """``module``, imported; a ToolError naming ``pip install 'agentflow[extra]'`` when it cannot be."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ToolError(
            f"{module} cannot be imported ({exc}); install it with: pip install 'agentflow[{extra}]'"
        ) from None
