"""The default Generator: writes the final answer from memory (and, on request, a direct one).

Its reply is ``{"reasoning": TEXT, "answer": TEXT}``, and the answer it returns reads as the
reasoning followed by a last line ``Answer: <answer>``. The full text stays in the trajectory and
what a person reads; scorers take the last line (``agentflow_rl.benchmarks.extract.answer_line``),
so "…would be Boston." no longer hides a right ``Boston`` (issue 34). A reply that is not the JSON
asked for (a server that ignores schemas) is kept as it came.
"""

from __future__ import annotations

from agentflow_core.engine import JsonSchema, Message
from agentflow_core.module import FlowState, ModuleContext
from agentflow_core.records import Answer
from agentflow_core.structured import ask_structured, object_schema

SYSTEM = "You write the final answer of an assistant that answers questions with tools."

REPLY = """Reply with JSON with the keys "reasoning" and "answer": first how you reach the answer, \
then the answer alone, as few words as it takes."""

FINAL = f"""Question: {{query}}

Done so far:
{{memory}}

Answer the question from these results. {REPLY}"""

DIRECT = f"""Question: {{query}}

Answer the question. {REPLY}"""

SCHEMA = JsonSchema(
    name="answer", schema=object_schema({"reasoning": {"type": "string"}, "answer": {"type": "string"}})
)


def answer_text(reasoning: str, answer: str) -> str:
    """What the answer reads as: the reasoning, then the short answer on a last line of its own."""
    short = f"Answer: {' '.join(answer.split())}"
    reasoning = reasoning.strip()
    return f"{reasoning}\n\n{short}" if reasoning else short


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
        parsed, call = await ask_structured(
            self.engine, role="generator", purpose=purpose, messages=messages, schema=SCHEMA, max_tokens=384
        )
        answer = str(parsed.values.get("answer", "")).strip()
        if not answer:
            return Answer(call.response.strip(), call=call)
        return Answer(answer_text(str(parsed.values.get("reasoning", "")), answer), call=call)
