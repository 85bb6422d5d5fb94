"""An optional LLM judge: any configured engine decides whether a reply matches the gold answer.

The paper scores with GPT-4o as a judge; the deterministic scorers are stricter (exact match)
and free. With ``--judge-engine provider:model`` both verdicts are recorded, so a report can show
how far apart they are. The judge sees the question, every gold alias (and the options of a
multiple-choice item) and the reply; it answers with JSON ``{"analysis": ..., "correct": true|false}``,
read tolerantly. A judge that fails counts as "not correct" and says why in ``Score.extracted``,
never stopping the run. When its engine failed the verdict's method is ``JUDGE_FAILED``, so the
eval can tell a judge that was not heard from one that said no (an unreadable verdict is the
judge's answer and keeps ``llm_judge``).
"""

from __future__ import annotations

from agentflow_core import BenchmarkItem, Engine, EngineError, JsonSchema, Message, Score
from agentflow_core.structured import ask, object_schema, parse_object

#: ``Score.method`` of a verdict that never came: the judge's engine failed.
JUDGE_FAILED = "llm_judge_failed"

SYSTEM = "You grade answers to exam questions. You are strict about facts and lenient about wording."

PROMPT = """Question:
{question}

Correct answer (any of these): {gold}

Response to grade:
{response}

Does the response give the correct answer? Ignore formatting, extra explanation and equivalent \
notations (numbers, units, dates, names with or without middle names); a response that gives \
several different answers, or none, is not correct.
Reply with JSON: {{"analysis": "one or two sentences", "correct": true or false}}"""

SCHEMA = JsonSchema(
    name="judgement", schema=object_schema({"analysis": {"type": "string"}, "correct": {"type": "boolean"}})
)


class LLMJudge:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @property
    def name(self) -> str:
        return self.engine.name

    async def score(self, item: BenchmarkItem, response: str) -> Score:
        gold = " | ".join(item.answers)
        if item.choices:
            gold += " (options: " + "; ".join(f"{k}. {v}" for k, v in item.choices.items()) + ")"
        prompt = PROMPT.format(question=item.question, gold=gold, response=response.strip() or "(empty)")
        messages = [Message("system", SYSTEM), Message("user", prompt)]
        try:
            # The judge is no module of the agent; "verifier" is the closest role for the call record.
            completion, _ = await ask(
                self.engine, role="verifier", purpose="judge", messages=messages, schema=SCHEMA, max_tokens=256
            )
        except EngineError as exc:
            return Score(correct=False, value=0.0, method=JUDGE_FAILED, extracted=f"judge failed: {exc}")
        parsed = parse_object(completion.text, SCHEMA.schema)
        correct = parsed.values.get("correct")
        if not isinstance(correct, bool):
            return Score(correct=False, value=0.0, method="llm_judge", extracted=f"unreadable verdict: {parsed.error}")
        return Score(
            correct=correct, value=float(correct), method="llm_judge", extracted=str(parsed.values.get("analysis", ""))
        )
