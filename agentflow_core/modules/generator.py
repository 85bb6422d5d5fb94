"""The default Generator: writes the final answer from memory (and, on request, a direct one).

Its reply is ``{"reasoning": TEXT, "answer": TEXT}``, and the answer it returns reads as the
reasoning followed by a last line ``Answer: <answer>``. The full text stays in the trajectory and
what a person reads; scorers take the last line (``agentflow_rl.benchmarks.extract.answer_line``),
so "…would be Boston." no longer hides a right ``Boston`` (issue 34). A reply that is not the JSON
asked for (a server that ignores schemas) is kept as it came.

When tools returned short values (``ToolOutput.value``: the number a program printed;
``ToolOutput.candidates``: the names and numbers of a passage local_search found), the generator
first chooses among them (each result's value and its likeliest candidate) or "none of these" with
one constrained call; only "none" leads to a written answer. SmolLM2-135M, asked to write the
answer with the sandbox's ``391`` in its prompt, wrote ``17 * 23``; asked to choose, it takes the
printed value (issue 34).
"""

from __future__ import annotations

import attrs

from agentflow_core.engine import JsonSchema, Message
from agentflow_core.module import FlowState, ModuleContext
from agentflow_core.records import Answer, ModuleCall, ToolSuccess
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

CHOOSE = """Question: {query}

Done so far:
{memory}

Which of these answers the question: {options}? Reply with JSON with the key "answer"."""

#: The choice that sends the generator on to write an answer of its own.
NONE_OF_THESE = "none of these"

SCHEMA = JsonSchema(
    name="answer", schema=object_schema({"reasoning": {"type": "string"}, "answer": {"type": "string"}})
)


def answer_text(reasoning: str, answer: str) -> str:
    """What the answer reads as: the reasoning, then the short answer on a last line of its own."""
    short = f"Answer: {' '.join(answer.split())}"
    reasoning = reasoning.strip()
    return f"{reasoning}\n\n{short}" if reasoning else short


#: Candidates offered from each result: its first, the likeliest (``ToolOutput.candidates`` is ordered
#: so). On 10 held-out facts SmolLM2 chose right 10 times offered local_search's first span, 4 times
#: offered its first three or all twelve: every span offered is a chance to choose wrong. The rest
#: stay in the result's text for a generator that chooses "none of these" and writes its own answer.
CANDIDATES_OFFERED = 1


def result_values(state: FlowState) -> dict[str, str]:
    """The short values the turns' tools returned, each with where it came from ("python_coder
    returned 391."), latest turn first; in a turn its ``value``, then its first candidates
    (:data:`CANDIDATES_OFFERED`).

    A value a later successful call was given as ``found`` (``FOUND_INPUT``) is left out: it was an
    input of that call, as the year 1928 is of ``2030 - 1928``, and SmolLM2 chose it over the result.
    """
    values: dict[str, str] = {}
    consumed: set[str] = set()
    for step in reversed(state.steps):
        if not isinstance(step.result, ToolSuccess):
            continue
        tool, result = step.tool_call.tool, step.result
        offered = [(result.value, f"{tool} returned {result.value}.")] if result.value else []
        offered += [(candidate, f"{tool} found {candidate}.") for candidate in result.candidates[:CANDIDATES_OFFERED]]
        for value, source in offered:
            if value != NONE_OF_THESE and value not in consumed:
                values.setdefault(value, source)
        found = step.tool_call.arguments.get("found")
        if isinstance(found, list):
            consumed.update(value for value in found if isinstance(value, str))
    return values


class DefaultGenerator:
    def __init__(self, context: ModuleContext) -> None:
        self.engine = context.engine

    async def final_answer(self, state: FlowState) -> Answer:
        values = result_values(state)
        choice = None
        if values:
            chosen, choice = await self._choose(state, values)
            if chosen is not None:
                return Answer(answer_text(values[chosen], chosen), call=choice)
        prompt = FINAL.format(query=state.query.text, memory=state.memory_text)
        answer = await self._answer("final_answer", prompt)
        return attrs.evolve(answer, choice=choice)

    async def _choose(self, state: FlowState, values: dict[str, str]) -> tuple[str | None, ModuleCall]:
        schema = JsonSchema(name="result_choice", schema=object_schema({"answer": {"enum": [*values, NONE_OF_THESE]}}))
        # "none of these" stays a choice but is not offered in words: listed, SmolLM2 took it over the
        # sandbox's 861 for 190281 / 221.
        options = "; ".join(values)
        prompt = CHOOSE.format(query=state.query.text, memory=state.memory_text, options=options)
        messages = [Message("system", SYSTEM), Message("user", prompt)]
        parsed, call = await ask_structured(
            self.engine, role="generator", purpose="choose_result", messages=messages, schema=schema, max_tokens=64
        )
        chosen = parsed.values.get("answer")
        return (chosen if chosen in values else None), call

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
