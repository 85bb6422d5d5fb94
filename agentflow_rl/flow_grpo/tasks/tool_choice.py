"""Modules and tools for training *which tool* the planner picks, over any enabled tools.

Registered through ``register_modules`` by agentflow_rl's plugin, so any ``records`` training task
(or an agentflow.toml) can name them:

* planner ``tool_choice`` — lists the enabled tools with their descriptions and asks for
  ``{"tool": NAME}`` (a JSON-schema enum of the enabled names); no query analysis;
* executor ``first_argument`` — passes the sub-goal as the tool's first required string argument,
  no model call;
* verifier ``stop`` — STOP after the first turn;
* generator ``last_output`` — the last tool output as the answer, no model call.

With ``[task] dry_run_tools = true`` the enabled tools are described to the modules but never run
(:func:`dry_run`), so a rollout costs one planner call: what the ``tool_choice`` reward needs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from agentflow_core import (
    Answer,
    Decision,
    FlowState,
    Message,
    ModuleContext,
    ModuleRegistrar,
    ToolCall,
    ToolSuccess,
    Verdict,
)
from agentflow_core.modules.toolbox import claims_pending
from agentflow_core.registry import RegisteredTool, Registry
from agentflow_core.tool import ToolSpec
from agentflow_rl.flow_grpo.tasks.choice import ChoicePlanner

SYSTEM = (
    "You route questions to tools. Read the tools' descriptions and pick the one tool that fits the "
    'question. Reply with JSON like {"tool": "NAME"}.'
)
#: The tools before the question: a batch's prompts then open alike and that opening is forwarded once.
PROMPT = """Tools:
{tools}

Question: {query}"""

#: What a dry-run tool returns instead of running.
DRY_RUN_OUTPUT = "(not run: tools are dry-run in this training task)"


def tool_choice_messages(state: FlowState) -> tuple[Message, ...]:
    """The planner's prompt: every enabled tool with its own description, then the question (the
    shared opening first, so a batch forwards it once)."""
    tools = "\n".join(f"- {t.name}: {t.description}" for t in state.tools)
    return (Message("system", SYSTEM), Message("user", PROMPT.format(query=state.query.text, tools=tools)))


class ToolChoicePlanner(ChoicePlanner):
    """One decision per turn, the tool, from the tools' own descriptions."""

    def messages(self, state: FlowState) -> tuple[Message, ...]:
        return tool_choice_messages(state)


class FirstArgumentExecutor:
    """The sub-goal as the first required string argument of the chosen tool (``query`` if none)."""

    def __init__(self, context: ModuleContext) -> None:
        pass

    async def command(self, state: FlowState, decision: Any) -> ToolCall:
        spec = state.tool(decision.tool)
        name = _first_string_argument(spec.input_schema) if spec is not None else None
        return ToolCall(decision.tool, {name or "query": decision.sub_goal}, explanation="the sub-goal as the input")


class StopVerifier:
    def __init__(self, context: ModuleContext) -> None:
        pass

    async def check(self, state: FlowState) -> Verdict:
        """STOP, unless a tool claims the question and has not been tried (``claims_pending``): the
        embedded stages' fact-then-arithmetic questions need python_coder after local_search."""
        return claims_pending(state) or Verdict("one turn is enough for a tool-choice task", Decision.STOP)


class LastOutputGenerator:
    def __init__(self, context: ModuleContext) -> None:
        pass

    async def final_answer(self, state: FlowState) -> Answer:
        outputs = [s.result.output for s in state.steps if isinstance(s.result, ToolSuccess)]
        return Answer(outputs[-1] if outputs else "")

    async def direct_answer(self, state: FlowState) -> Answer:
        return Answer("")


def register_tool_choice_modules(register: ModuleRegistrar) -> None:
    register("planner", "tool_choice", ToolChoicePlanner)
    register("executor", "first_argument", FirstArgumentExecutor)
    register("verifier", "stop", StopVerifier)
    register("generator", "last_output", LastOutputGenerator)


def _first_string_argument(schema: Mapping[str, Any]) -> str | None:
    properties = schema.get("properties", {})
    for name in schema.get("required", []):
        if isinstance(properties.get(name), Mapping) and properties[name].get("type") == "string":
            return str(name)
    return None


class _DryRunTool:
    def __init__(self, spec: ToolSpec) -> None:
        self.spec = spec

    async def run(self, arguments: Mapping[str, Any]) -> str:
        return DRY_RUN_OUTPUT

    async def aclose(self) -> None:
        pass


def dry_run(registry: Registry) -> Registry:
    """The same registry with every tool described as before but never run.

    A dry-run tool keeps its name, description and output note (what the planner reads), accepts
    any arguments, needs no engine, and answers :data:`DRY_RUN_OUTPUT`; its real factory is never
    called, so no sandbox starts and no request leaves the machine.
    """
    tools = {}
    for name, registered in registry.tools.items():
        spec = attrs.evolve(registered.spec, input_schema={"type": "object"}, uses_engine=False)
        tools[name] = RegisteredTool(spec, lambda context, spec=spec: _DryRunTool(spec), registered.source)
    return attrs.evolve(registry, tools=tools)
