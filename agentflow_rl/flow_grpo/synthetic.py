"""A synthetic multi-turn tool-use environment where only the Planner's choices decide success.

Questions name an operation and one or two operands; an operand is a number (``7``) or a key
(``k3``) whose number must first be fetched with the ``lookup`` tool, one key per call::

    twice of 7      -> double                      (1 turn)
    squared of k3   -> lookup, square              (2 turns)
    k3 plus k5      -> lookup, lookup, add         (3 turns, no slack)

Calling an arithmetic tool before its keys are looked up is a tool error (a wasted turn); a wrong
operation gives a wrong answer. The Executor, Verifier and Generator are deterministic rules,
registered through the public hooks like any plugin: the Executor fills arguments from the
question and earlier lookups, the Verifier stops after the first successful arithmetic call, the
Generator answers with that call's output. So a trajectory succeeds exactly when the Planner
looks up what is needed and then picks the right operation, within the turn limit.

Training a model Verifier too (``verifier = "synthetic_chat"``) wants ``generator =
"synthetic_stopped"``: there a trajectory answers only if its Verifier said STOP, so stopping at
the right turn is part of success (see ``StoppedGenerator``).

This is a test bed for the trainer, not a benchmark: the rules are simple on purpose so that a
tiny random policy can learn them on a CPU, and so that a learning curve means the trainer works.
"""

from __future__ import annotations

import itertools
import random
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs

from agentflow_core import (
    Answer,
    Decision,
    FlowState,
    ModuleContext,
    ModuleRegistrar,
    PlannerDecision,
    Score,
    Step,
    ToolCall,
    ToolError,
    ToolRegistrar,
    ToolSpec,
    ToolSuccess,
    Verdict,
    hookimpl,
)
from agentflow_rl.flow_grpo.data import TrainRecord
from agentflow_rl.flow_grpo.planners import ChatPlanner, CompactPlanner, compact_vocabulary
from agentflow_rl.flow_grpo.verifiers import ChatVerifier, CompactVerifier

LOOKUP = "lookup"
#: Arithmetic tools: (question word, number of operands, function).
OPERATIONS: dict[str, tuple[str, int, Callable[..., int]]] = {
    "double": ("twice", 1, lambda x: 2 * x),
    "square": ("squared", 1, lambda x: x * x),
    "add": ("plus", 2, lambda x, y: x + y),
}
TOOL_NAMES = (LOOKUP, *OPERATIONS)
_WORD_TO_TOOL = {word: tool for tool, (word, _, _) in OPERATIONS.items()}
_KEY = re.compile(r"^k\d+$")
_LOOKED_UP = re.compile(r"^(k\d+) = (-?\d+)$")


@attrs.frozen
class SyntheticTask:
    """The world of one run: the numbers stored under the keys, and the question pool."""

    values: Mapping[str, int]
    #: Largest literal operand; literals are 1..max_literal.
    max_literal: int = 9

    @classmethod
    def make(cls, keys: int = 12, seed: int = 0) -> SyntheticTask:
        rng = random.Random(seed)
        return cls({f"k{i}": rng.randint(1, 9) for i in range(keys)})

    def vocabulary(self) -> list[str]:
        """Every word a compact prompt can contain; the tiny tokenizer is built from it."""
        words = [*self.values, *(str(n) for n in range(1, self.max_literal + 1))]
        words += [word for word, _, _ in OPERATIONS.values()] + ["of"]
        return [*words, *compact_vocabulary(TOOL_NAMES)]

    def shapes(self) -> dict[str, list[str]]:
        """Every distinct question, by shape: ``un`` (unary on a number), ``uk`` (unary on a key),
        ``nn``, ``kn`` (one key, either side) and ``kk`` (two keys)."""
        keys, numbers = list(self.values), [str(n) for n in range(1, self.max_literal + 1)]
        unary = [(word, o) for word in ("twice", "squared") for o in (*keys, *numbers)]
        binary = [(a, b) for a in (*keys, *numbers) for b in (*keys, *numbers)]
        found: dict[str, list[str]] = {"un": [], "uk": [], "nn": [], "kn": [], "kk": []}
        for word, operand in unary:
            found["uk" if operand in self.values else "un"].append(f"{word} of {operand}")
        for a, b in binary:
            found[{0: "nn", 1: "kn", 2: "kk"}[(a in self.values) + (b in self.values)]].append(f"{a} plus {b}")
        return found

    def split(
        self, held_out: float = 0.25, seed: int = 0, max_held_out: int = 20
    ) -> tuple[list[TrainRecord], list[TrainRecord]]:
        """Train and held-out questions; no question is in both, and every shape is in both.

        Held out: a ``held_out`` share of each shape, at most ``max_held_out`` of one shape, taking
        the shapes in turn, so that the first N questions (``run.eval_questions``) weigh them as
        alike as their sizes allow; listed shape by shape, the first 40 of the default split held no
        two-key question at all. Train: the rest, the rarer shapes repeated until each shape has as
        many questions as the commonest, so the policy meets all five equally often.
        """
        rng = random.Random(seed)
        train: dict[str, list[str]] = {}
        held: list[list[str]] = []
        for shape, questions in self.shapes().items():
            rng.shuffle(questions)
            cut = min(max_held_out, max(1, round(len(questions) * held_out)))
            held.append(questions[:cut])
            train[shape] = questions[cut:]
        test = [q for turn in itertools.zip_longest(*held) for q in turn if q is not None]
        longest = max(len(q) for q in train.values())
        repeated = [q for qs in train.values() for q in (qs * (longest // len(qs) + 1))[:longest]]
        return self._records(repeated, "train"), self._records(test, "test")

    def _records(self, questions: list[str], prefix: str) -> list[TrainRecord]:
        return [TrainRecord(f"{prefix}-{i}", q, (self.solve(q),)) for i, q in enumerate(questions)]

    def solve(self, question: str) -> str:
        tool, operands = parse_question(question)
        numbers = [self.values[o] if _KEY.match(o) else int(o) for o in operands]
        return str(OPERATIONS[tool][2](*numbers))

    def score(self, record: TrainRecord, answer: str) -> Score:
        """Exact match of the final answer against the gold number."""
        got = answer.strip()
        return Score(
            correct=got in record.answers, value=float(got in record.answers), method="exact_match", extracted=got
        )

    def plugin(self) -> SyntheticPlugin:
        return SyntheticPlugin(self)


def parse_question(question: str) -> tuple[str, list[str]]:
    """``"k3 plus 5"`` -> ``("add", ["k3", "5"])``; ``"twice of k1"`` -> ``("double", ["k1"])``."""
    words = question.split()
    if len(words) == 3 and words[1] == "plus":
        return "add", [words[0], words[2]]
    if len(words) == 3 and words[1] == "of" and words[0] in _WORD_TO_TOOL:
        return _WORD_TO_TOOL[words[0]], [words[2]]
    raise ValueError(f"not a synthetic question: {question!r}")


def known_values(steps: Sequence[Step]) -> dict[str, int]:
    """Numbers fetched by successful lookups so far, by key."""
    found = {}
    for step in steps:
        if step.tool_call.tool == LOOKUP and isinstance(step.result, ToolSuccess):
            match = _LOOKED_UP.match(step.result.output)
            if match:
                found[match.group(1)] = int(match.group(2))
    return found


# -- tools ----------------------------------------------------------------------------------------

_INT = {"type": "integer"}
SPECS = {
    LOOKUP: ToolSpec(
        name=LOOKUP,
        description="Returns the number stored under one key such as k3. Call it once per key.",
        input_schema={"type": "object", "properties": {"key": {"type": "string"}}, "required": ["key"]},
        output="'k3 = 7'",
    ),
    "double": ToolSpec(
        name="double",
        description="Doubles a number.",
        output="the number",
        input_schema={"type": "object", "properties": {"value": _INT}, "required": ["value"]},
    ),
    "square": ToolSpec(
        name="square",
        description="Squares a number.",
        output="the number",
        input_schema={"type": "object", "properties": {"value": _INT}, "required": ["value"]},
    ),
    "add": ToolSpec(
        name="add",
        description="Adds two numbers.",
        output="the number",
        input_schema={"type": "object", "properties": {"a": _INT, "b": _INT}, "required": ["a", "b"]},
    ),
}


class _LookupTool:
    spec = SPECS[LOOKUP]

    def __init__(self, values: Mapping[str, int]) -> None:
        self._values = values

    async def run(self, arguments: Mapping[str, Any]) -> str:
        key = str(arguments["key"])
        if key not in self._values:
            raise ToolError(f"no number is stored under {key!r}")
        return f"{key} = {self._values[key]}"

    async def aclose(self) -> None:
        pass


class _ArithmeticTool:
    def __init__(self, name: str) -> None:
        self.spec = SPECS[name]
        self._fn = OPERATIONS[name][2]

    async def run(self, arguments: Mapping[str, Any]) -> str:
        return str(self._fn(*(int(arguments[k]) for k in self.spec.input_schema["required"])))

    async def aclose(self) -> None:
        pass


# -- the fixed modules ----------------------------------------------------------------------------


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
            pending = [o for o in operands if _KEY.match(o) and o not in known]
            return ToolCall(LOOKUP, {"key": (pending or operands)[0]}, explanation="fetch the next key")
        spec = SPECS.get(decision.tool)
        if spec is None:
            return ToolCall(decision.tool, {}, explanation="unknown tool")
        numbers = [known.get(o) if _KEY.match(o) else int(o) for o in operands]
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
    say CONTINUE in every state (P(CONTINUE) 0.78-0.95 after a lookup and after the answer alike)
    while the sampled reward rose. Here only a STOP ends a trajectory with an answer, and a STOP is
    right only once an arithmetic result exists, so the Verifier's decision decides success.
    """

    async def final_answer(self, state: FlowState) -> Answer:
        last = state.steps[-1].verdict if state.steps else None
        if last is None or last.decision is not Decision.STOP:
            return Answer("unknown")
        return await super().final_answer(state)


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
        pending = [o for o in dict.fromkeys(operands) if _KEY.match(o) and o not in known]
        return f"Keys still to look up: {', '.join(pending) or 'none'}"


class SyntheticPlugin:
    """Registers the environment's tools and modules through the public hooks."""

    def __init__(self, task: SyntheticTask) -> None:
        self.task = task

    @hookimpl
    def register_tools(self, register: ToolRegistrar) -> None:
        register(SPECS[LOOKUP], lambda context: _LookupTool(self.task.values))
        for name in OPERATIONS:
            register(SPECS[name], lambda context, name=name: _ArithmeticTool(name))

    @hookimpl
    def register_modules(self, register: ModuleRegistrar) -> None:
        register("planner", "synthetic", CompactPlanner)
        register("planner", "synthetic_chat", SyntheticChatPlanner)
        register("executor", "synthetic", RuleExecutor)
        register("verifier", "synthetic", RuleVerifier)
        register("verifier", "synthetic_compact", CompactVerifier)
        register("verifier", "synthetic_chat", ChatVerifier)
        register("generator", "synthetic", RuleGenerator)
        register("generator", "synthetic_stopped", StoppedGenerator)
