"""The default Planner: analyses the query once, then picks a sub-goal and one tool per turn.

This is the module Flow-GRPO trains, so its calls keep the engine's token trace.
"""

from __future__ import annotations

from agentflow_core.engine import JsonSchema, Message
from agentflow_core.module import FlowState, ModuleContext
from agentflow_core.modules.toolbox import describe_tools, tool_menu
from agentflow_core.records import PlannerDecision, QueryAnalysis
from agentflow_core.structured import ask, ask_structured, object_schema

SYSTEM = (
    "You are the planner of an assistant that answers questions by calling tools. "
    "You think about what a question needs and choose one tool call at a time."
)

ANALYZE = """Question: {query}

Tools you can use:
{tools}

Before acting, study the question. In a few sentences say: what exactly is asked and in what form \
the answer should be; which skills or facts are needed; which tools fit and why; what could go wrong."""

NEXT_STEP = """Tools:
{menu}

Your analysis of the question: {analysis}

Actions taken so far:
{memory}

Question: {query}

This is turn {turn} of at most {max_steps}. Choose the one next action that brings the answer closest. \
Reply with a JSON object with three keys: "context" (the earlier results this action builds on), \
"sub_goal" (what the tool must achieve; self-contained, with every number, name or fact it needs), \
"tool" (the name of exactly one tool from the list: {names})."""


def decision_schema(tool_names: list[str]) -> JsonSchema:
    return JsonSchema(
        name="next_step",
        schema=object_schema(
            {
                "context": {"type": "string", "description": "earlier results this step builds on"},
                "sub_goal": {"type": "string", "description": "what this one tool call must achieve"},
                "tool": {"type": "string", "enum": tool_names},
            }
        ),
    )


class DefaultPlanner:
    def __init__(self, context: ModuleContext) -> None:
        self.engine = context.engine

    async def analyze(self, state: FlowState) -> QueryAnalysis:
        prompt = ANALYZE.format(query=state.query.text, tools=describe_tools(state.tools))
        messages = [Message("system", SYSTEM), Message("user", prompt)]
        completion, call = await ask(self.engine, role="planner", purpose="analyze", messages=messages, max_tokens=256)
        return QueryAnalysis(completion.text.strip(), call=call)

    async def next_step(self, state: FlowState) -> PlannerDecision:
        names = [t.name for t in state.tools]
        schema = decision_schema(names)
        prompt = NEXT_STEP.format(
            query=state.query.text,
            analysis=state.analysis.text if state.analysis else "",
            menu=tool_menu(state.tools),
            memory=state.memory_text,
            turn=len(state.steps) + 1,
            max_steps=state.max_steps,
            names=", ".join(names),
        )
        messages = [Message("system", SYSTEM), Message("user", prompt)]
        parsed, call = await ask_structured(
            self.engine, role="planner", purpose="next_step", messages=messages, schema=schema, max_tokens=256
        )
        values = parsed.values
        # A turn must name a real tool; when the model did not, take the first enabled one so the
        # loop goes on, and let the recorded parse error show what happened.
        tool = values.get("tool") or (names[0] if names else "")
        return PlannerDecision(
            context=values.get("context", ""),
            sub_goal=values.get("sub_goal") or state.query.text,
            tool=tool,
            call=call,
        )
