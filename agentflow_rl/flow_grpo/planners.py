"""Planners whose one decision per turn is the tool: what Flow-GRPO trains in the synthetic runs.

Both keep the core's ``Planner`` protocol and record the engine's ``TokenTrace`` in each
``ModuleCall``. They ask for ``{"tool": NAME}`` with the enabled tool names as a JSON-schema enum,
so with constrained decoding even a random model answers with a valid tool, and the reward
depends on *which* tool. ``CompactPlanner`` writes a terse prompt in the tiny policy's word list;
``ChatPlanner`` writes the same facts in English for a real instruction-tuned model.
Neither analyses the query with the model: ``analyze`` returns an empty analysis, no LLM call.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from typing import Any

from agentflow_core import (
    FlowState,
    GenerationRequest,
    JsonSchema,
    Message,
    ModuleCall,
    ModuleContext,
    PlannerDecision,
    QueryAnalysis,
    Step,
    ToolSuccess,
)
from agentflow_core.records import ModuleRole

#: Words of the compact prompts besides the question itself and the tool names.
_COMPACT_WORDS = (";", "done", ":", "none", "ok", "err", "stop", "?", "STOP", "CONTINUE")

CHAT_SYSTEM = (
    "You plan tool calls. Names like k3 stand for stored numbers: look each one up with the lookup tool "
    "(one key per call) before doing arithmetic on it. Plain numbers need no lookup."
)
#: Fixed text first, the question and the turns last: every prompt of a run opens with the same
#: tokens, and the engine and the trainer forward that opening once per batch.
CHAT_PROMPT = """Tools:
{tools}

Name the one tool to call next, as JSON like {{"tool": "NAME"}}.

Question: {query}
Done so far:
{history}"""


def compact_vocabulary(tool_names: Iterable[str]) -> list[str]:
    return [*_COMPACT_WORDS, *tool_names]


def tool_schema(names: Sequence[str]) -> JsonSchema:
    return JsonSchema(
        name="next_tool",
        schema={
            "type": "object",
            "properties": {"tool": {"type": "string", "enum": list(names)}},
            "required": ["tool"],
            "additionalProperties": False,
        },
    )


class _ToolChoicePlanner:
    max_tokens = 16

    def __init__(self, context: ModuleContext) -> None:
        self.engine = context.engine

    async def analyze(self, state: FlowState) -> QueryAnalysis:
        return QueryAnalysis("")

    async def next_step(self, state: FlowState) -> PlannerDecision:
        names = [t.name for t in state.tools]
        messages = self.messages(state)
        tool, call = await self._ask(messages, names)
        return PlannerDecision(context="", sub_goal=state.query.text, tool=tool, call=call)

    def messages(self, state: FlowState) -> tuple[Message, ...]:
        raise NotImplementedError

    async def _ask(self, messages: tuple[Message, ...], names: list[str]) -> tuple[str, ModuleCall]:
        reply, call = await ask_choice(
            self.engine, messages, "planner", "next_step", tool_schema(names), "tool", names, self.max_tokens
        )
        return reply or (names[0] if names else ""), call


async def ask_choice(
    engine: Any,
    messages: tuple[Message, ...],
    role: ModuleRole,
    purpose: str,
    schema: JsonSchema,
    key: str,
    choices: Sequence[str],
    max_tokens: int,
) -> tuple[str | None, ModuleCall]:
    """One constrained call whose reply is ``{key: <one of choices>}``; the choice (``None`` if the
    reply names none, with a parse error in the record) and the call's record."""
    request = GenerationRequest(messages, json_schema=schema, max_tokens=max_tokens)
    started = time.perf_counter()
    completion = await engine.generate(request)
    choice, error = _read_choice(completion.text, key, choices)
    call = ModuleCall(
        role=role,
        purpose=purpose,
        engine=engine.name,
        messages=messages,
        response=completion.text,
        usage=completion.usage,
        latency_s=completion.latency_s or time.perf_counter() - started,
        parse_error=error,
        tokens=completion.tokens,
    )
    return choice, call


def _read_choice(text: str, key: str, choices: Sequence[str]) -> tuple[str | None, str | None]:
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    choice = value.get(key) if isinstance(value, dict) else None
    if choice in choices:
        return choice, None
    return None, f"no valid {key} in {text[:80]!r}"


class CompactPlanner(_ToolChoicePlanner):
    """``<question> ; done : lookup ok add err`` — every word is in the tiny tokenizer."""

    def messages(self, state: FlowState) -> tuple[Message, ...]:
        history = " ".join(f"{s.tool_call.tool} {status_word(s)}" for s in state.steps)
        return (Message("user", f"{state.query.text} ; done : {history or 'none'}"),)


class ChatPlanner(_ToolChoicePlanner):
    """The same facts in English, for an instruction-tuned model such as SmolLM2.

    The tools come before the question so that every prompt of a run opens with the same tokens,
    which the engine and the trainer forward once per batch (:mod:`agentflow_core.engines.prefix`).
    """

    max_tokens = 24

    def messages(self, state: FlowState) -> tuple[Message, ...]:
        tools = "\n".join(f"- {t.name}: {t.description}" for t in state.tools)
        history = "\n".join(f"{s.index}. {s.tool_call.tool} -> {outcome_text(s)}" for s in state.steps) or "nothing yet"
        prompt = CHAT_PROMPT.format(query=state.query.text, tools=tools, history=history)
        note = self.memory_note(state)
        return (Message("system", CHAT_SYSTEM), Message("user", f"{prompt}\n{note}" if note else prompt))

    def memory_note(self, state: FlowState) -> str:
        """A line summing up the memory after the turns (none here); an environment may state its own."""
        return ""


def outcome_text(step: Step) -> str:
    if isinstance(step.result, ToolSuccess):
        return step.result.output
    return f"error: {step.result.error}"


def status_word(step: Step) -> str:
    return "ok" if isinstance(step.result, ToolSuccess) else "err"
