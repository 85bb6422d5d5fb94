"""The default Verifier: reads memory and says STOP (enough to answer) or CONTINUE.

While a tool claims the question (``Tool.fit``) and has not been called, it says CONTINUE without
asking its model: a two-step question ("How old would X be in 2030?") is not answered by its first
step's fact, and a small model cannot tell (issue 34).

Its reply is ``{"analysis": TEXT, "decision": "STOP" | "CONTINUE"}``, the decision a choice the schema
constrains. The prompt names the keys and the two choices but shows no sample values, which a small
model would copy (issue 34).
"""

from __future__ import annotations

from agentflow_core.engine import JsonSchema, Message
from agentflow_core.module import FlowState, ModuleContext
from agentflow_core.modules.toolbox import claims_pending
from agentflow_core.records import Decision, Verdict
from agentflow_core.structured import ask_structured, object_schema

SYSTEM = "You check whether an assistant has done enough work to answer a question."

CHECK = """Question: {query}

Notes on the question: {analysis}

Done so far:
{memory}

Can the question be answered correctly from these results? Look for missing parts, tool errors and \
results that disagree. Decide STOP when it can (or when more tool calls cannot help) and CONTINUE \
when another tool call is needed. Reply with JSON with the keys "analysis" and "decision"."""

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
        pending = claims_pending(state)
        if pending is not None:  # work a tool claims and nobody has tried: no model judges what is not done
            return pending
        prompt = CHECK.format(
            query=state.query.text,
            analysis=state.analysis.text if state.analysis else "(none)",
            memory=state.memory_text,
        )
        messages = [Message("system", SYSTEM), Message("user", prompt)]
        parsed, call = await ask_structured(
            self.engine, role="verifier", purpose="check", messages=messages, schema=SCHEMA, max_tokens=160
        )
        # Unreadable verdicts mean CONTINUE: the step limit still bounds the loop, and stopping
        # early on noise would throw away turns the planner might use.
        decision = Decision(parsed.values.get("decision", "CONTINUE"))
        return Verdict(analysis=parsed.values.get("analysis", ""), decision=decision, call=call)
