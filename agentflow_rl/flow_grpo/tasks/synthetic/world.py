"""The synthetic task's world: the numbers stored under the keys, its questions and their answers."""

from __future__ import annotations

import itertools
import random
import re
from collections.abc import Callable, Mapping, Sequence

import attrs

from agentflow_core import Score, Step, ToolSuccess
from agentflow_rl.flow_grpo.tasks.records import TrainRecord
from agentflow_rl.flow_grpo.tasks.synthetic.compact import compact_vocabulary

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
        numbers = [self.values[o] if is_key(o) else int(o) for o in operands]
        return str(OPERATIONS[tool][2](*numbers))

    def score(self, record: TrainRecord, answer: str) -> Score:
        """Exact match of the final answer against the gold number."""
        got = answer.strip()
        return Score(
            correct=got in record.answers, value=float(got in record.answers), method="exact_match", extracted=got
        )


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


def is_key(operand: str) -> bool:
    """Whether an operand names a stored number (``k3``) rather than being one (``7``)."""
    return bool(_KEY.match(operand))
