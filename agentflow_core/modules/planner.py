"""The default Planner: analyses the query once, then picks one tool and a sub-goal per turn.

This is the module Flow-GRPO trains, so its calls keep the engine's token trace. Its reply is
``{"tool": NAME, "question": TEXT}``: the tool first, as a choice the schema constrains to the enabled
names, then the request for it, recorded as the step's sub-goal; for most tools it is exactly what
the tool receives (see the executor).
The prompts show no example values and the schema carries no descriptions: a small model echoes
whatever sample text it is shown (issue 34). Tools that claim the question (``Tool.fit``) and have
not been called yet are the only ones offered while there are any: the fits are evidence, and a
small model's choice is not (SmolLM2 searched again with a subtraction still to do).
"""

from __future__ import annotations

import re

from agentflow_core.engine import JsonSchema, Message
from agentflow_core.module import FlowState, ModuleContext
from agentflow_core.modules.toolbox import describe_tools, tool_menu, untried_claims
from agentflow_core.records import PlannerDecision, QueryAnalysis
from agentflow_core.structured import ask, ask_structured, object_schema

SYSTEM = "You plan how an assistant answers a question with tools, one tool call at a time."

ANALYZE = """Question: {query}

Tools:
{tools}

Briefly: what is asked, what form should the answer take, and which tool can help?"""

#: The tools first: every turn's prompt opens alike (a batch forwards that once), and the question
#: sits right above the reply, where a small model looks for what to ask. "question" as the key, not
#: "sub_goal": SmolLM2 fills a key named like an identifier with identifiers ("boiling_point"), and one
#: named "question" with a question, most often the one it was asked (8 of 10 against 4 of 10).
NEXT_STEP = """Tools:
{menu}

Done so far:
{memory}

Question: {query}

Turn {turn} of {max_steps}. Choose the tool for the next call and write its question: the request \
that tool receives, complete in itself. When one call can answer the whole question, the question is \
the question. Reply with JSON with the keys "tool" and "question"."""


def decision_schema(tool_names: list[str]) -> JsonSchema:
    return JsonSchema(
        name="next_step",
        schema=object_schema({"tool": {"type": "string", "enum": tool_names}, "question": {"type": "string"}}),
    )


class DefaultPlanner:
    def __init__(self, context: ModuleContext) -> None:
        self.engine = context.engine

    async def analyze(self, state: FlowState) -> QueryAnalysis:
        prompt = ANALYZE.format(query=state.query.text, tools=describe_tools(state.tools))
        messages = [Message("system", SYSTEM), Message("user", prompt)]
        completion, call = await ask(self.engine, role="planner", purpose="analyze", messages=messages, max_tokens=160)
        return QueryAnalysis(completion.text.strip(), call=call)

    async def next_step(self, state: FlowState) -> PlannerDecision:
        # A tool that claims the question and has not been tried is tried before any other.
        untried = untried_claims(state)
        tools = [t for t in state.tools if t.name in untried] or list(state.tools)
        names = [t.name for t in tools]
        prompt = NEXT_STEP.format(
            query=state.query.text,
            menu=tool_menu(tools),
            memory=state.memory_text,
            turn=len(state.steps) + 1,
            max_steps=state.max_steps,
        )
        messages = [Message("system", SYSTEM), Message("user", prompt)]
        parsed, call = await ask_structured(
            self.engine,
            role="planner",
            purpose="next_step",
            messages=messages,
            schema=decision_schema(names),
            max_tokens=160,
        )
        values = parsed.values
        # A turn must name a real tool; when the model did not, take the first enabled one so the
        # loop goes on, and let the recorded parse error show what happened.
        return PlannerDecision(
            context="",
            sub_goal=request(str(values.get("question", "")), state.query.text),
            tool=values.get("tool") or (names[0] if names else ""),
            call=call,
        )


def request(written: str, question: str) -> str:
    """The request as one line; one with no word in it (``""``, ``"{"``: issue 34) asks nothing, so the
    question goes instead, the one request that is never wrong to send."""
    line = " ".join(written.split())
    return line if re.search(r"\w", line) else question
