"""The synthetic task's fixed modules: deterministic rules, so that only the trained modules decide success."""

from __future__ import annotations

from agentflow_core import Answer, Decision, FlowState, ModuleContext, PlannerDecision, ToolCall, ToolSuccess, Verdict
from agentflow_rl.flow_grpo.tasks.synthetic.tools import SPECS
from agentflow_rl.flow_grpo.tasks.synthetic.world import LOOKUP, OPERATIONS, is_key, known_values, parse_question


class RuleExecutor:
    """Fills arguments from the question and earlier lookups; leaves out what is not known yet.

    A missing argument makes the solver report a schema error: that is the visible tool error a
    premature arithmetic call earns.
    """

    def __init__(self, context: ModuleContext) -> None:
        pass

    async def command(self, state: FlowState, decision: PlannerDecision) -> ToolCall:
        _, operands = parse_question(state.query.text)
        known = known_values(state.steps)
        if decision.tool == LOOKUP:
            pending = [o for o in operands if is_key(o) and o not in known]
            return ToolCall(LOOKUP, {"key": (pending or operands)[0]}, explanation="fetch the next key")
        spec = SPECS.get(decision.tool)
        if spec is None:
            return ToolCall(decision.tool, {}, explanation="unknown tool")
        numbers = [known.get(o) if is_key(o) else int(o) for o in operands]
        names = spec.input_schema["required"]
        arguments = {name: n for name, n in zip(names, numbers, strict=False) if n is not None}
        return ToolCall(decision.tool, arguments, explanation="arithmetic on known numbers")


class RuleVerifier:
    """STOP after the first successful arithmetic call, CONTINUE otherwise."""

    def __init__(self, context: ModuleContext) -> None:
        pass

    async def check(self, state: FlowState) -> Verdict:
        last = state.steps[-1]
        done = last.tool_call.tool in OPERATIONS and isinstance(last.result, ToolSuccess)
        return Verdict(
            "an arithmetic result exists" if done else "no result yet", Decision.STOP if done else Decision.CONTINUE
        )


class RuleGenerator:
    """Answers with the output of the last successful arithmetic call, else ``unknown``."""

    def __init__(self, context: ModuleContext) -> None:
        pass

    async def final_answer(self, state: FlowState) -> Answer:
        results = [
            s.result.output for s in state.steps if s.tool_call.tool in OPERATIONS and isinstance(s.result, ToolSuccess)
        ]
        return Answer(results[-1] if results else "unknown")

    async def direct_answer(self, state: FlowState) -> Answer:
        return Answer("unknown")


class StoppedGenerator(RuleGenerator):
    """The rule Generator for an agent that must say when it is done: out of turns, no answer.

    With the rule Generator a Verifier that never stops loses little. The Executor takes operands
    from the question, so repeating the arithmetic repeats the answer, and a planner can fill the
    turn limit with harmless calls: trained together on that task, SmolLM2's Verifier learned to
    say CONTINUE in every state, after a lookup and after the answer alike, while the sampled reward
    rose (docs/flow-grpo.md). Here only a STOP ends a trajectory with an answer, and a STOP is
    right only once an arithmetic result exists, so the Verifier's decision decides success.
    """

    async def final_answer(self, state: FlowState) -> Answer:
        last = state.steps[-1].verdict if state.steps else None
        if last is None or last.decision is not Decision.STOP:
            return Answer("unknown")
        return await super().final_answer(state)
