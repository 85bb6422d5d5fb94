"""The synthetic task's tools: ``lookup`` fetches one key's number; ``double``, ``square`` and ``add`` compute."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agentflow_core import ToolError, ToolSpec
from agentflow_rl.flow_grpo.tasks.synthetic.world import LOOKUP, OPERATIONS

_INT = {"type": "integer"}
SPECS = {
    LOOKUP: ToolSpec(
        name=LOOKUP,
        description="Returns the number stored under one key such as k3. Call it once per key.",
        input_schema={"type": "object", "properties": {"key": {"type": "string"}}, "required": ["key"]},
        output="'k3 = 7'",
    ),
    "double": ToolSpec(
        name="double",
        description="Doubles a number.",
        output="the number",
        input_schema={"type": "object", "properties": {"value": _INT}, "required": ["value"]},
    ),
    "square": ToolSpec(
        name="square",
        description="Squares a number.",
        output="the number",
        input_schema={"type": "object", "properties": {"value": _INT}, "required": ["value"]},
    ),
    "add": ToolSpec(
        name="add",
        description="Adds two numbers.",
        output="the number",
        input_schema={"type": "object", "properties": {"a": _INT, "b": _INT}, "required": ["a", "b"]},
    ),
}


class LookupTool:
    spec = SPECS[LOOKUP]

    def __init__(self, values: Mapping[str, int]) -> None:
        self._values = values

    async def run(self, arguments: Mapping[str, Any]) -> str:
        key = str(arguments["key"])
        if key not in self._values:
            raise ToolError(f"no number is stored under {key!r}")
        return f"{key} = {self._values[key]}"

    async def aclose(self) -> None:
        pass


class ArithmeticTool:
    def __init__(self, name: str) -> None:
        self.spec = SPECS[name]
        self._fn = OPERATIONS[name][2]

    async def run(self, arguments: Mapping[str, Any]) -> str:
        return str(self._fn(*(int(arguments[k]) for k in self.spec.input_schema["required"])))

    async def aclose(self) -> None:
        pass
