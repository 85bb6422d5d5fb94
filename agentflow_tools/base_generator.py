"""base_generator: answers a self-contained sub-question with the tool's own LLM.

It is the paper's general-purpose fallback tool: no retrieval, no execution, only the model's
own knowledge and reasoning, so it is as reliable as the engine behind it and no more.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from agentflow_core import (
    Engine,
    GenerationRequest,
    Message,
    ToolContext,
    ToolError,
    ToolSpec,
    structure_settings,
)
from agentflow_core.tool import query_input

SPEC = ToolSpec(
    name="base_generator",
    description="Answers a question or follows an instruction with a general language model.",
    input_schema=query_input("The request."),
    output="the model's answer as text",
    limitations=(
        "It knows only what the model learned in training: no current events, no lookups.",
        "It may get exact arithmetic and rare facts wrong.",
    ),
    best_practices=(
        "Use it for reasoning, summarising earlier results, or general knowledge.",
        "Put everything the answer depends on into the query; it cannot see the rest of the conversation.",
    ),
    uses_engine=True,
)

SYSTEM = "You are a careful, concise assistant. Answer the request directly."


@attrs.frozen
class Settings:
    #: Longest answer, in tokens.
    max_tokens: int = attrs.field(default=384, validator=attrs.validators.ge(1))


class BaseGenerator:
    spec = SPEC

    def __init__(self, context: ToolContext) -> None:
        if context.engine is None:
            raise ToolError("base_generator needs an engine")
        self._engine: Engine = context.engine
        self._settings = structure_settings(Settings, context.settings, where="settings")

    async def run(self, arguments: Mapping[str, Any]) -> str:
        request = GenerationRequest(
            messages=(Message("system", SYSTEM), Message("user", str(arguments["query"]))),
            max_tokens=self._settings.max_tokens,
        )
        completion = await self._engine.generate(request)
        text = completion.text.strip()
        if not text:
            raise ToolError("the model returned an empty answer")
        return text

    async def aclose(self) -> None:
        """The engine belongs to the solver's pool, which closes it."""
