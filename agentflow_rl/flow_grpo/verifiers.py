"""Verifiers that decide STOP or CONTINUE with a model, for training the verifier in the flow.

The synthetic task's rule verifier stops after the first successful arithmetic call. These ask the
model instead, with ``{"decision": "STOP" | "CONTINUE"}`` as a JSON-schema enum, so success then
depends on the verifier too: stopping before the arithmetic leaves no answer, and continuing past
it lets a later call overwrite the result. ``CompactVerifier`` speaks the tiny policy's word list;
``ChatVerifier`` says the same in English for an instruction-tuned model.
"""

from __future__ import annotations

from agentflow_core import Decision, FlowState, JsonSchema, Message, ModuleContext, Verdict
from agentflow_rl.flow_grpo.planners import ask_choice, outcome_text, status_word

DECISIONS = (Decision.STOP.value, Decision.CONTINUE.value)
DECISION_SCHEMA = JsonSchema(
    name="verdict",
    schema={
        "type": "object",
        "properties": {"decision": {"type": "string", "enum": list(DECISIONS)}},
        "required": ["decision"],
        "additionalProperties": False,
    },
)

#: Worded with the CONTINUE case first: SmolLM2-135M-Instruct's reply to a verifier prompt leans to
#: STOP whatever the state, and how far depends on the wording. Probed on the base model, the
#: probability of CONTINUE after a lookup was 0.6% (one key) and 2.2% (two keys) with the STOP case
#: first, 8% and 27% with this text: at 1%, a group of 8 rollouts almost never tries CONTINUE, so
#: the verifier's training gets no signal. Greedy, the base says STOP in every state either way.
CHAT_SYSTEM = (
    "You decide whether an agent needs another tool call. Names like k3 stand for stored numbers that the "
    "lookup tool fetches, one key per call; the answer is the output of the arithmetic tool (double, square or "
    "add) once every key is looked up. Reply CONTINUE if another tool call is needed, or STOP if the last call "
    'already produced the answer, as JSON like {"decision": "CONTINUE"} or {"decision": "STOP"}.'
)
CHAT_PROMPT = """Question: {query}
Done so far:
{history}"""


class _ModelVerifier:
    max_tokens = 16

    def __init__(self, context: ModuleContext) -> None:
        self.engine = context.engine

    async def check(self, state: FlowState) -> Verdict:
        choice, call = await ask_choice(
            self.engine,
            self.messages(state),
            "verifier",
            "check",
            DECISION_SCHEMA,
            "decision",
            DECISIONS,
            self.max_tokens,
        )
        decision = Decision(choice) if choice is not None else Decision.STOP
        return Verdict(analysis="", decision=decision, call=call)

    def messages(self, state: FlowState) -> tuple[Message, ...]:
        raise NotImplementedError


class CompactVerifier(_ModelVerifier):
    """``<question> ; done : lookup ok add ok ; stop ?`` in the tiny tokenizer's words."""

    def messages(self, state: FlowState) -> tuple[Message, ...]:
        history = " ".join(f"{s.tool_call.tool} {status_word(s)}" for s in state.steps)
        return (Message("user", f"{state.query.text} ; done : {history or 'none'} ; stop ?"),)


class ChatVerifier(_ModelVerifier):
    """The same facts in English, for an instruction-tuned model such as SmolLM2."""

    def messages(self, state: FlowState) -> tuple[Message, ...]:
        history = "\n".join(f"{s.index}. {s.tool_call.tool} -> {outcome_text(s)}" for s in state.steps)
        prompt = CHAT_PROMPT.format(query=state.query.text, history=history or "nothing yet")
        return (Message("system", CHAT_SYSTEM), Message("user", prompt))
