"""The default Generator: writes the final answer from memory (and, on request, a direct one)."""

from __future__ import annotations

from agentflow_core.engine import Message
from agentflow_core.module import FlowState, ModuleContext
from agentflow_core.records import Answer
from agentflow_core.structured import ask

SYSTEM = "You are the answer writer of a tool-using assistant. You answer from the evidence you are given."

FINAL = """Question: {query}

Actions taken and their results:
{memory}

Using these results, answer the question. Start with the answer itself, stated plainly (a number, \
a name, a short phrase or a sentence, whatever the question asks for), then at most two sentences \
of justification. If a tool reported an error, do not rely on that step."""

DIRECT = """Question: {query}

Answer the question. Start with the answer itself, stated plainly, then at most two sentences of justification."""


class DefaultGenerator:
    def __init__(self, context: ModuleContext) -> None:
        self.engine = context.engine

    async def final_answer(self, state: FlowState) -> Answer:
        prompt = FINAL.format(query=state.query.text, memory=state.memory_text)
        return await self._answer("final_answer", prompt)

    async def direct_answer(self, state: FlowState) -> Answer:
        return await self._answer("direct_answer", DIRECT.format(query=state.query.text))

    async def _answer(self, purpose: str, prompt: str) -> Answer:
        messages = [Message("system", SYSTEM), Message("user", prompt)]
        completion, call = await ask(self.engine, role="generator", purpose=purpose, messages=messages, max_tokens=384)
        return Answer(completion.text.strip(), call=call)
