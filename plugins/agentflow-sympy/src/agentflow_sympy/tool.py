"""``symbolic_math``: the tool object the solver runs.

It reads its ``[tools.symbolic_math]`` table with ``structure_settings`` (so a typo in the config
fails at startup with the key named), then runs each call off the event loop with a deadline.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agentflow_core import ToolContext, ToolError, structure_settings
from agentflow_sympy.operations import OPERATIONS, compute
from agentflow_sympy.settings import Settings
from agentflow_sympy.spec import SPEC
from agentflow_sympy.worker import run_with_deadline


class SymbolicMath:
    spec = SPEC

    def __init__(self, context: ToolContext) -> None:
        self.settings = structure_settings(Settings, context.settings, where="settings")

    async def run(self, arguments: Mapping[str, Any]) -> str:
        expression, operation, variable = _read_arguments(arguments)
        text = await run_with_deadline(
            lambda: compute(expression, operation, variable, max_length=self.settings.max_length),
            timeout_s=self.settings.timeout_s,
            what=SPEC.name,
        )
        return _clip(text, self.settings.max_output_chars)

    async def aclose(self) -> None:
        """Nothing to release: each computation's thread ends on its own."""


def _read_arguments(arguments: Mapping[str, Any]) -> tuple[str, str, str | None]:
    """The solver has checked the schema already; this guards direct callers with the same words."""
    expression, operation, variable = (arguments.get(k) for k in ("expression", "operation", "variable"))
    if not isinstance(expression, str):
        raise ToolError("'expression' must be a string such as 'x**2 - 4'")
    if operation not in OPERATIONS:
        raise ToolError(f"'operation' must be one of {', '.join(OPERATIONS)}, got {operation!r}")
    if variable is not None and not isinstance(variable, str):
        raise ToolError("'variable' must be a name such as 'x'")
    return expression, operation, variable or None


def _clip(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]} … [{len(text) - limit} more characters]"
