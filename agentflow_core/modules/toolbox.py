"""How tools are described to the planner and the executor.

Only what a tool *is* reaches the prompt: its name, what it does and returns, when to use it, its
limits, and (for the executor) its inputs by name. Worked examples and input descriptions stay out:
a small model copies them as values (issue 34: a tool's example question became the sub-goal, a
schema description the argument).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from agentflow_core.module import FlowState
from agentflow_core.records import Decision, Fit, Verdict
from agentflow_core.tool import ToolSpec


def describe_tools(tools: Sequence[ToolSpec]) -> str:
    """The metadata of every enabled tool, for query analysis."""
    return "\n".join(describe_tool(t) for t in tools) or "(no tools are enabled)"


def describe_tool(tool: ToolSpec) -> str:
    lines = [f"- {tool.name}: {tool.description} It returns {_sentence(tool.output)}"]
    lines += [f"  {_sentence(line)}" for line in (*tool.best_practices, *tool.limitations)]
    return "\n".join(lines)


def tool_menu(tools: Sequence[ToolSpec]) -> str:
    """One line per tool, for the per-turn planning prompt."""
    return "\n".join(f"- {t.name}: {t.description}" for t in tools) or "(no tools are enabled)"


def argument_list(schema: Mapping[str, Any]) -> str:
    """The inputs of a tool by name and type, choices spelled out, for the executor."""
    properties: Mapping[str, Mapping[str, Any]] = schema.get("properties", {})
    required = set(schema.get("required", ()))
    lines = []
    for name, prop in properties.items():
        kind = " or ".join(map(str, prop["enum"])) if "enum" in prop else str(prop.get("type", "any"))
        lines.append(f"- {name}: {kind}{'' if name in required else ', optional'}")
    return "\n".join(lines) or "(no inputs)"


def takes_a_request(tool: ToolSpec) -> bool:
    """Whether the tool's one required input is a free-text ``query``, the shape ``query_input`` makes.

    Such a tool takes a request in words (every built-in tool does), so the planner's sub-goal is its
    input as it stands. A single text input with another name (a time zone, a file path) is a value,
    not a request, and is left to the model.
    """
    properties = tool.input_schema.get("properties", {})
    return (
        list(tool.input_schema.get("required", ())) == ["query"] and properties.get("query", {}).get("type") == "string"
    )


def _sentence(text: str) -> str:
    text = text.strip()
    return text if text.endswith((".", "!", "?")) else f"{text}."


def untried_claims(state: FlowState) -> dict[str, str]:
    """The tools that claim the question now (``Tool.fit``) and have not been called yet, with why.

    The default planner offers only these while there are any, and the default verifier does not
    stop: after local_search found that Dov Kesante was born in 1928, python_coder claims "How old
    would Dov Kesante be in 2030?", and the subtraction is still to do. SmolLM2 did not see that,
    even with the claim named in its prompt: it stopped and answered 1928, or searched again (issue 34).
    """
    called = {step.tool_call.tool for step in state.steps}
    return {name: fit.why for name, fit in state.tool_fits.items() if fit.fit is Fit.CLAIMS and name not in called}


def claims_pending(state: FlowState) -> Verdict | None:
    """CONTINUE while a tool claims the question, has not been tried and a turn is left; else ``None``.

    The default verifier says it before asking its model; a verifier that otherwise always stops
    (the training tasks' ``stop``) says it too, so a two-step question gets its second step.
    """
    untried = untried_claims(state)
    if not untried or len(state.steps) >= state.max_steps:
        return None
    claims = "; ".join(f"{name} ({why})" if why else name for name, why in untried.items())
    return Verdict(f"not done yet: {claims} claims the question and has not been tried", Decision.CONTINUE)
