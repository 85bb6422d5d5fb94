"""The default Executor: turns the planner's sub-goal into concrete arguments for the chosen tool.

A tool whose only required input is a text ``query`` (every built-in tool) receives the sub-goal
as that query, with no model call: the planner already wrote the request, and a model asked to restate it
only paraphrases it, or (a small one) fills it with its own prompt's wording instead (issue 34). Such a
tool that also declares an optional ``question`` (``agentflow_core.tool.QUESTION_INPUT``) gets the
question being answered there, so it can see what a terse request leaves out; one that declares
``found`` (``FOUND_INPUT``) gets the values earlier turns found. For
any other tool the model writes JSON matching the tool's own input schema. The executor does not
run the tool: the solver does, so that timeouts and failures are handled in one place for every
executor.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from agentflow_core.engine import JsonSchema, Message
from agentflow_core.memory import found_so_far
from agentflow_core.module import FlowState, ModuleContext
from agentflow_core.modules.toolbox import argument_list, takes_a_request
from agentflow_core.records import PlannerDecision, ToolCall
from agentflow_core.structured import ask_structured, object_schema
from agentflow_core.tool import ToolSpec

SYSTEM = "You fill in the inputs of one tool call for an assistant that answers questions with tools."

COMMAND = """Question: {query}

Request for {tool}: {sub_goal}

{tool}: {description}
Inputs:
{inputs}

The tool sees nothing but its inputs, so put every value it needs into them. Reply with JSON with \
the key "arguments", holding the inputs."""


def command_schema(tool: ToolSpec) -> JsonSchema:
    """The reply's schema: the tool's input schema as ``arguments``, its definitions at the root.

    A tool's ``$ref: "#/$defs/..."`` (pydantic and MCP servers write them) resolves against the
    root of the document it sits in, so the definitions move up with it; the schema's name keeps
    only the characters OpenAI accepts there (an MCP tool is called ``server.tool``).
    """
    arguments = {k: v for k, v in tool.input_schema.items() if k not in _ROOT_ONLY}
    schema = object_schema({"arguments": arguments})
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
        if takes_a_request(tool):
            request: dict[str, str | list[str]] = {"query": decision.sub_goal}
            inputs = tool.input_schema.get("properties", {})
            if "question" in inputs:  # QUESTION_INPUT: what the request is for
                request["question"] = state.query.text
            found = found_so_far(state.steps) if "found" in inputs else []
            if found:  # FOUND_INPUT: what earlier turns found
                request["found"] = found
            return ToolCall(tool=tool.name, arguments=request, explanation="the sub-goal")
        prompt = COMMAND.format(
            query=state.query.text,
            tool=tool.name,
            description=tool.description,
            inputs=argument_list(tool.input_schema),
            sub_goal=decision.sub_goal,
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
        # Unreadable arguments go to the tool as nothing: its schema check then reports what is missing.
        return ToolCall(tool=tool.name, arguments=dict(arguments) if isinstance(arguments, Mapping) else {}, call=call)
