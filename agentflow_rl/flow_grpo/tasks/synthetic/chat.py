"""The synthetic task in English, for an instruction-tuned model such as SmolLM2: a Planner and a Verifier."""

from __future__ import annotations

from agentflow_core import FlowState, Message, Step, ToolSuccess
from agentflow_rl.flow_grpo.tasks.choice import ChoicePlanner, ChoiceVerifier
from agentflow_rl.flow_grpo.tasks.synthetic.world import is_key, known_values, parse_question

PLANNER_SYSTEM = (
    "You plan tool calls. Names like k3 stand for stored numbers: look each one up with the lookup tool "
    "(one key per call) before doing arithmetic on it. Plain numbers need no lookup."
)
#: Fixed text first, the question and the turns last: every prompt of a run opens with the same
#: tokens, and the engine and the trainer forward that opening once per batch.
PLANNER_PROMPT = """Tools:
{tools}

Name the one tool to call next, as JSON like {{"tool": "NAME"}}.

Question: {query}
Done so far:
{history}"""


#: Worded with the CONTINUE case first: SmolLM2-135M-Instruct's reply to a verifier prompt leans to
#: STOP whatever the state, and how far depends on the wording. With the STOP case first, a group of
#: 8 rollouts almost never tries CONTINUE, so the verifier's training gets no signal (the probed
#: probabilities are in docs/flow-grpo.md).
VERIFIER_SYSTEM = (
    "You decide whether an agent needs another tool call. Names like k3 stand for stored numbers that the "
    "lookup tool fetches, one key per call; the answer is the output of the arithmetic tool (double, square or "
    "add) once every key is looked up. Reply CONTINUE if another tool call is needed, or STOP if the last call "
    'already produced the answer, as JSON like {"decision": "CONTINUE"} or {"decision": "STOP"}.'
)
VERIFIER_PROMPT = """Question: {query}
Done so far:
{history}"""


def outcome_text(step: Step) -> str:
    if isinstance(step.result, ToolSuccess):
        return step.result.output
    return f"error: {step.result.error}"


def chat_history(state: FlowState) -> str:
    """One numbered line per turn, ``1. lookup -> k3 = 7``; ``nothing yet`` before the first."""
    return "\n".join(f"{s.index}. {s.tool_call.tool} -> {outcome_text(s)}" for s in state.steps) or "nothing yet"


class ChatPlanner(ChoicePlanner):
    """The tool choice asked in English: the tools with their descriptions, the question, the turns so far.

    The tools come before the question so that every prompt of a run opens with the same tokens,
    which the engine and the trainer forward once per batch (``token_runtime.prefill``).
    """

    max_tokens = 24

    def messages(self, state: FlowState) -> tuple[Message, ...]:
        tools = "\n".join(f"- {t.name}: {t.description}" for t in state.tools)
        prompt = PLANNER_PROMPT.format(query=state.query.text, tools=tools, history=chat_history(state))
        note = self.memory_note(state)
        return (Message("system", PLANNER_SYSTEM), Message("user", f"{prompt}\n{note}" if note else prompt))

    def memory_note(self, state: FlowState) -> str:
        """A line summing up the memory after the turns (none here); an environment may state its own."""
        return ""


class SyntheticChatPlanner(ChatPlanner):
    """The English planner, its prompt ending with the keys not looked up yet.

    The line restates what the memory already holds (the question's keys minus those with a
    successful lookup), the way a memory module summarises its turns: with SmolLM2 the same
    line then ends the prompt of a one-turn question and of a question whose keys are all
    known, which are the states where the arithmetic is the right call.
    """

    def memory_note(self, state: FlowState) -> str:
        _, operands = parse_question(state.query.text)
        known = known_values(state.steps)
        pending = [o for o in dict.fromkeys(operands) if is_key(o) and o not in known]
        return f"Keys still to look up: {', '.join(pending) or 'none'}"


class ChatVerifier(ChoiceVerifier):
    """Asks STOP or CONTINUE in English, the CONTINUE case first."""

    def messages(self, state: FlowState) -> tuple[Message, ...]:
        prompt = VERIFIER_PROMPT.format(query=state.query.text, history=chat_history(state))
        return (Message("system", VERIFIER_SYSTEM), Message("user", prompt))
