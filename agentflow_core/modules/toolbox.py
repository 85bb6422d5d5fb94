"""How tools are described to the planner and the executor."""

from __future__ import annotations

import json
from collections.abc import Sequence

from agentflow_core.tool import ToolSpec


def describe_tools(tools: Sequence[ToolSpec]) -> str:
    """The full metadata of every enabled tool, for query analysis."""
    return "\n\n".join(describe_tool(t) for t in tools) or "(no tools are enabled)"


def describe_tool(tool: ToolSpec) -> str:
    lines = [f"- {tool.name}: {tool.description}", f"  returns: {tool.output}"]
    inputs = tool.input_schema.get("properties", {})
    if inputs:
        lines.append(
            "  inputs: "
            + "; ".join(
                f"{k} ({v.get('type', 'any')}): {v.get('description', '')}".rstrip(": ") for k, v in inputs.items()
            )
        )
    if tool.limitations:
        lines.append("  limitations: " + " ".join(tool.limitations))
    if tool.best_practices:
        lines.append("  best practices: " + " ".join(tool.best_practices))
    for example in tool.examples[:1]:
        lines.append(f"  example ({example.description}): {json.dumps(dict(example.arguments), ensure_ascii=False)}")
    return "\n".join(lines)


def tool_menu(tools: Sequence[ToolSpec]) -> str:
    """One line per tool, for the per-turn planning prompt."""
    return "\n".join(f"- {t.name}: {t.description}" for t in tools) or "(no tools are enabled)"
