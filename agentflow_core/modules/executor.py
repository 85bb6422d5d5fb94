"""The default Executor: turns the planner's sub-goal into concrete arguments for the chosen tool.

It asks for JSON matching the tool's own input schema. It does not run the tool: the solver
does, so that timeouts and failures are handled in one place for every executor.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from agentflow_core.engine import JsonSchema, Message
from agentflow_core.module import FlowState, ModuleContext
from agentflow_core.records import PlannerDecision, ToolCall
from agentflow_core.structured import ask_structured, object_schema
from agentflow_core.tool import ToolSpec

SYSTEM = "You are the executor of a tool-using assistant. You write the exact arguments of one tool call."

COMMAND = """Tool: {tool}: {description}
Argument schema: {schema}

Question being worked on: {query}
Context from earlier steps: {context}
Sub-goal: {sub_goal}

Write the arguments of one call of {tool} that achieves the sub-goal. The tool sees nothing but these \
arguments, so copy every value it needs into them. Reply with a JSON object with two keys: \
"explanation" (one sentence) and "arguments" (an object that matches the argument schema)."""


def command_schema(tool: ToolSpec) -> JsonSchema:
    """The reply's schema: the tool's input schema as ``arguments``, its definitions at the root.

    A tool's ``$ref: "#/$defs/..."`` (pydantic and MCP servers write them) resolves against the
    root of the document it sits in, so the definitions move up with it; the schema's name keeps
    only the characters OpenAI accepts there (an MCP tool is called ``server.tool``).
    """
    arguments = {k: v for k, v in tool.input_schema.items() if k not in _ROOT_ONLY}
    schema = object_schema({"explanation": {"type": "string"}, "arguments": arguments})
    schema.update({k: tool.input_schema[k] for k in ("$defs", "definitions") if k in tool.input_schema})
    return JsonSchema(name=re.sub(r"[^A-Za-z0-9_-]", "_", f"{tool.name}_call")[:64], schema=schema)


#: Keywords that only mean something at the root of a schema document.
_ROOT_ONLY = ("$defs", "definitions", "$schema", "$id")


class DefaultExecutor:
    def __init__(self, context: ModuleContext) -> None:
        self.engine = context.engine

    async def command(self, state: FlowState, decision: PlannerDecision) -> ToolCall:
        tool = state.tool(decision.tool)
        if tool is None:
            # Nothing to ask the model: the solver turns an unknown tool into a visible tool error.
            return ToolCall(
                tool=decision.tool, arguments={}, explanation="the planner chose a tool that is not enabled"
            )
        prompt = COMMAND.format(
            query=state.query.text,
            tool=tool.name,
            description=tool.description,
            schema=json.dumps(tool.input_schema, ensure_ascii=False),
            sub_goal=decision.sub_goal,
            context=decision.context or "(none)",
        )
        messages = [Message("system", SYSTEM), Message("user", prompt)]
        parsed, call = await ask_structured(
            self.engine,
            role="executor",
            purpose="command",
            messages=messages,
            schema=command_schema(tool),
            max_tokens=384,
        )
        arguments = parsed.values.get("arguments")
        if not isinstance(arguments, Mapping):
            arguments = fallback_arguments(tool, decision)
        return ToolCall(
            tool=tool.name, arguments=dict(arguments), explanation=parsed.values.get("explanation", ""), call=call
        )


def fallback_arguments(tool: ToolSpec, decision: PlannerDecision) -> dict[str, Any]:
    """When the model gave no usable arguments: a tool with one required text input gets the sub-goal."""
    properties = tool.input_schema.get("properties", {})
    required = list(tool.input_schema.get("required", ()))
    text_inputs = [name for name in required if properties.get(name, {}).get("type") == "string"]
    if len(required) == 1 and text_inputs:
        return {text_inputs[0]: decision.sub_goal}
    return {}
