"""Modules whose one model call per turn picks from a closed list: the tool to call, or STOP/CONTINUE.

The reply is ``{key: <choice>}`` with the choices as a JSON-schema enum, so under constrained
decoding even a random model answers with a valid choice and the reward depends on *which* one.
Each call records the engine's ``TokenTrace`` in its ``ModuleCall``, which is what Flow-GRPO
trains on. A planner here does not analyse the query with the model: ``analyze`` returns an
empty analysis and makes no call.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from agentflow_core import (
    Decision,
    FlowState,
    GenerationRequest,
    JsonSchema,
    Message,
    ModuleCall,
    ModuleContext,
    PlannerDecision,
    QueryAnalysis,
    Verdict,
)
from agentflow_core.records import ModuleRole

DECISIONS = (Decision.STOP.value, Decision.CONTINUE.value)


def choice_schema(name: str, key: str, choices: Sequence[str]) -> JsonSchema:
    """``{key: <one of choices>}`` and nothing else."""
    return JsonSchema(
        name=name,
        schema={
            "type": "object",
            "properties": {key: {"type": "string", "enum": list(choices)}},
            "required": [key],
            "additionalProperties": False,
        },
    )


def tool_schema(names: Sequence[str]) -> JsonSchema:
    return choice_schema("next_tool", "tool", names)


DECISION_SCHEMA = choice_schema("verdict", "decision", DECISIONS)


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


class ChoicePlanner:
    """A Planner whose one decision per turn is the tool, among the enabled ones; subclasses write the prompt."""

    max_tokens = 16

    def __init__(self, context: ModuleContext) -> None:
        self.engine = context.engine

    async def analyze(self, state: FlowState) -> QueryAnalysis:
        return QueryAnalysis("")

    async def next_step(self, state: FlowState) -> PlannerDecision:
        names = [t.name for t in state.tools]
        reply, call = await ask_choice(
            self.engine,
            self.messages(state),
            "planner",
            "next_step",
            tool_schema(names),
            "tool",
            names,
            self.max_tokens,
        )
        tool = reply or (names[0] if names else "")
        return PlannerDecision(context="", sub_goal=state.query.text, tool=tool, call=call)

    def messages(self, state: FlowState) -> tuple[Message, ...]:
        raise NotImplementedError


class ChoiceVerifier:
    """A Verifier that asks the model STOP or CONTINUE (a reply naming neither stops); subclasses write the prompt."""

    max_tokens = 16

    def __init__(self, context: ModuleContext) -> None:
        self.engine = context.engine

    async def check(self, state: FlowState) -> Verdict:
        choice, call = await ask_choice(
            self.engine,
            self.messages(state),
            "verifier",
            "check",
            DECISION_SCHEMA,
            "decision",
            DECISIONS,
            self.max_tokens,
        )
        decision = Decision(choice) if choice is not None else Decision.STOP
        return Verdict(analysis="", decision=decision, call=call)

    def messages(self, state: FlowState) -> tuple[Message, ...]:
        raise NotImplementedError
