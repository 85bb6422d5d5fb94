"""The default Verifier: reads memory and says STOP (enough to answer) or CONTINUE."""

from __future__ import annotations

from agentflow_core.engine import JsonSchema, Message
from agentflow_core.module import FlowState, ModuleContext
from agentflow_core.records import Decision, Verdict
from agentflow_core.structured import ask_structured, object_schema

SYSTEM = "You are the verifier of a tool-using assistant. You judge whether the work done so far suffices."

CHECK = """Question: {query}

Analysis of the question: {analysis}

Actions taken and their results:
{memory}

Do these results contain everything needed to answer the question correctly and completely? Look for \
missing parts, tool errors and results that contradict each other. Answer STOP if the question can be \
answered now (or if further tool calls cannot help), CONTINUE if another action is needed.
Reply with JSON: {{"analysis": "a few sentences", "decision": "STOP or CONTINUE"}}"""

SCHEMA = JsonSchema(
    name="verification",
    schema=object_schema(
        {"analysis": {"type": "string"}, "decision": {"type": "string", "enum": ["STOP", "CONTINUE"]}}
    ),
)


class DefaultVerifier:
    def __init__(self, context: ModuleContext) -> None:
        self.engine = context.engine

    async def check(self, state: FlowState) -> Verdict:
        prompt = CHECK.format(
            query=state.query.text,
            analysis=state.analysis.text if state.analysis else "",
            memory=state.memory_text,
        )
        messages = [Message("system", SYSTEM), Message("user", prompt)]
        parsed, call = await ask_structured(
            self.engine, role="verifier", purpose="check", messages=messages, schema=SCHEMA, max_tokens=256
        )
        # Unreadable verdicts mean CONTINUE: the step limit still bounds the loop, and stopping
        # early on noise would throw away turns the planner might use.
        decision = Decision(parsed.values.get("decision", "CONTINUE"))
        return Verdict(analysis=parsed.values.get("analysis", ""), decision=decision, call=call)
