"""Questions the embedded default is trained and measured on, in three kinds, with exact gold answers.

* ``arithmetic`` — sums, products, unit conversions with the factor stated, percentages: exact only
  through ``python_coder``;
* ``fact`` — an attribute of a made-up town, person or company (:mod:`.embedded_world`): known only
  through ``local_search`` over the world's passages;
* ``two_step`` — a fact, then arithmetic on it ("How old would X be in 2030?").

Training and held-out questions share no template, no entity and no number range, so the held-out
score measures what the modules learnt about *kinds* of questions, not the strings. The files are
reproducible from the seed::

    python -m agentflow_rl.flow_grpo.tasks.embedded_questions OUT_DIR   # embedded_{corpus,train,eval,...}.jsonl

The files in ``data/`` are its output with the defaults (a test keeps them so). Rows carry
``kind`` and the gold first ``tool`` besides the question and its answers.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

from agentflow_rl.flow_grpo.tasks.embedded_world import World

KINDS = ("arithmetic", "fact", "two_step")
CODER, SEARCH = "python_coder", "local_search"

#: A template, and how its numbers are drawn and its answer computed: rng -> (fields, answer).
Arithmetic = tuple[str, Callable[[random.Random], tuple[dict[str, Any], Fraction]]]


def _pair(low: int, high: int, op: Callable[[int, int], Fraction | int]) -> Callable[[random.Random], Any]:
    def draw(rng: random.Random) -> tuple[dict[str, Any], Fraction]:
        a, b = rng.randint(low, high), rng.randint(low, high)
        return {"a": a, "b": b}, Fraction(op(a, b))

    return draw


def _scaled(low: int, high: int, factor: Fraction, step: Fraction = Fraction(1)) -> Callable[[random.Random], Any]:
    def draw(rng: random.Random) -> tuple[dict[str, Any], Fraction]:
        n = rng.randint(low, high) * step
        return {"n": _text(n)}, n * factor

    return draw


def _percent(choices: tuple[int, ...], low: int, high: int) -> Callable[[random.Random], Any]:
    def draw(rng: random.Random) -> tuple[dict[str, Any], Fraction]:
        p, a = rng.choice(choices), rng.randint(low, high)
        return {"p": p, "a": a}, Fraction(p * a, 100)

    return draw


def _three(low: int, high: int) -> Callable[[random.Random], Any]:
    def draw(rng: random.Random) -> tuple[dict[str, Any], Fraction]:
        a, b, c = (rng.randint(low, high) for _ in range(3))
        return {"a": a, "b": b, "c": c}, Fraction(a * b + c)

    return draw


def _sum_of_three(low: int, high: int) -> Callable[[random.Random], Any]:
    def draw(rng: random.Random) -> tuple[dict[str, Any], Fraction]:
        a, b, c = (rng.randint(low, high) for _ in range(3))
        return {"a": a, "b": b, "c": c}, Fraction(a + b + c)

    return draw


def _quotient(low: int, high: int) -> Callable[[random.Random], Any]:
    def draw(rng: random.Random) -> tuple[dict[str, Any], Fraction]:
        b, q = rng.randint(low, high), rng.randint(low, high)
        return {"a": b * q, "b": b}, Fraction(q)

    return draw


#: Training operands are four-digit (hours, days and miles below 25, rates 5-65%); held-out ones three- and
#: five-digit (weeks and inches 100-299, rates 30-80%): no held-out operand was ever in a training question.
ARITHMETIC: dict[str, list[Arithmetic]] = {
    "train": [
        ("What is {a} * {b}?", _pair(1000, 4999, lambda a, b: a * b)),
        ("What is {a} plus {b}?", _pair(1000, 4999, lambda a, b: a + b)),
        ("Compute {a} minus {b}.", _pair(1000, 4999, lambda a, b: a - b)),
        ("What is {a} times {b} plus {c}?", _three(1000, 4999)),
        ("How many seconds are in {n} hours?", _scaled(3, 47, Fraction(3600), Fraction(1, 2))),
        ("How many minutes are in {n} days?", _scaled(2, 24, Fraction(1440))),
        ("A mile is 1.609 kilometres. How many kilometres are {n} miles?", _scaled(2, 24, Fraction("1.609"))),
        ("What is {p}% of {a}?", _percent((5, 15, 35, 65), 1000, 4999)),
        ("What is the total of {a} and {b}?", _pair(1000, 4999, lambda a, b: a + b)),
        ("What is the product of {a} and {b}?", _pair(1000, 4999, lambda a, b: a * b)),
        ("How many grams are in {n} kilograms?", _scaled(2, 24, Fraction(1000))),
        ("A foot is 0.3048 metres. How many metres are {n} feet?", _scaled(2, 24, Fraction("0.3048"))),
    ],
    "eval": [
        ("Calculate {a} multiplied by {b}.", _pair(100, 999, lambda a, b: a * b)),
        ("What is the sum of {a}, {b} and {c}?", _sum_of_three(5000, 9999)),
        ("How many hours are in {n} weeks?", _scaled(100, 299, Fraction(168))),
        ("An inch is 2.54 centimetres. How many centimetres are {n} inches?", _scaled(100, 299, Fraction("2.54"))),
        ("What is {a} divided by {b}?", _quotient(100, 999)),
        ("What is {p} percent of {a}?", _percent((30, 45, 80), 5000, 9999)),
    ],
}

#: Fact templates: (entity kind, question, the answers it accepts).
Fact = tuple[str, str, Callable[[Any], list[str]]]

FACTS: dict[str, list[Fact]] = {
    "train": [
        ("town", "In which region is {name}?", lambda t: [t.region, f"{t.region} region"]),
        ("town", "When was {name} founded?", lambda t: [str(t.founded)]),
        ("town", "How many people live in {name}?", lambda t: [str(t.population)]),
        ("town", "Who is the mayor of {name}?", lambda t: [t.mayor]),
        ("person", "Where was {name} born?", lambda p: [p.birthplace]),
        ("person", "What does {name} do for a living?", lambda p: [p.profession]),
        ("company", "Who founded {name}?", lambda c: [c.founder]),
        ("company", "Where is {name} based?", lambda c: [c.base]),
    ],
    "eval": [
        ("town", "Which river flows through {name}?", lambda t: [t.river, f"river {t.river}"]),
        ("town", "What is the population of {name}?", lambda t: [str(t.population)]),
        ("person", "In what year was {name} born?", lambda p: [str(p.born)]),
        ("person", "What is the profession of {name}?", lambda p: [p.profession]),
        ("company", "What does {name} make?", lambda c: [c.product]),
        ("company", "How many employees does {name} have?", lambda c: [str(c.staff)]),
    ],
}

#: Two-step templates: (entity kind, question, the answer as a number).
TwoStep = tuple[str, str, Callable[[Any], Fraction]]

TWO_STEP: dict[str, list[TwoStep]] = {
    "train": [
        ("town", "How many years passed between the founding of {name} and the year 2000?", lambda t: 2000 - t.founded),
        ("town", "What is twice the population of {name}?", lambda t: 2 * t.population),
        ("company", "If {name} hired 25 more people, how many employees would it have?", lambda c: c.staff + 25),
        ("person", "How old was {name} in 1950?", lambda p: 1950 - p.born),
    ],
    "eval": [
        ("person", "How old would {name} be in 2030?", lambda p: 2030 - p.born),
        ("town", "How many years before 1925 was {name} founded?", lambda t: 1925 - t.founded),
        ("company", "What is half the number of employees of {name}?", lambda c: Fraction(c.staff, 2)),
        ("town", "How many people would live in {name} if 750 more moved there?", lambda t: t.population + 750),
    ],
}  # fmt: skip


def questions(world: World, split: str, count: int, seed: int = 0) -> list[dict[str, Any]]:
    """``count`` rows of ``split``, the three kinds in turn (so any prefix is balanced)."""
    rng = random.Random(f"embedded-questions-{seed}-{split}")
    entities: dict[str, Sequence[Any]] = {
        "town": world.towns[split],
        "person": world.people[split],
        "company": world.companies[split],
    }
    rows = []
    for i in range(count):
        kind = KINDS[i % len(KINDS)]
        if kind == "arithmetic":
            template, draw = rng.choice(ARITHMETIC[split])
            fields, answer = draw(rng)
            rows.append(_row(template.format(**fields), [_text(answer)], kind, CODER))
        elif kind == "fact":
            entity_kind, template, answers = rng.choice(FACTS[split])
            entity = rng.choice(entities[entity_kind])
            rows.append(_row(template.format(name=entity.name), answers(entity), kind, SEARCH))
        else:
            entity_kind, template, number = rng.choice(TWO_STEP[split])
            entity = rng.choice(entities[entity_kind])
            rows.append(_row(template.format(name=entity.name), [_text(Fraction(number(entity)))], kind, SEARCH))
    return [{"id": f"{split}-{i}", **row} for i, row in enumerate(rows)]


def _row(question: str, answers: list[str], kind: str, tool: str) -> dict[str, Any]:
    return {"question": question, "answers": answers, "kind": kind, "tool": tool}


def _text(number: Fraction) -> str:
    """A number as Python would print it: ``12600``, ``19.308``, ``7.5``."""
    if number.denominator == 1:
        return str(number.numerator)
    return f"{float(number):.10f}".rstrip("0")


#: The kinds one tool call answers: what the answer stage trains on, one turn per rollout.
ONE_CALL = ("arithmetic", "fact")


def write(folder: str | Path, train: int = 600, held_out: int = 90, seed: int = 0) -> tuple[Path, Path, Path]:
    """The corpus, the training questions and the held-out questions, as JSONL files; also the
    training questions of the :data:`ONE_CALL` kinds alone (``embedded_train_one_call.jsonl``) and
    the facts, training and held-out (``embedded_{train,eval}_facts.jsonl``: the generator's choice
    among a passage's spans), and the arithmetic ones, training and held-out
    (``embedded_{train,eval}_arithmetic.jsonl``: python_coder's
    expressions; for training only those a model must write, as python_coder runs a question that is
    already arithmetic, "What is 17 * 23?", without one), and those with the fact-then-arithmetic ones
    (``embedded_{train,eval}_expressions.jsonl``: an expression on a number a search found)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    world = World.make(seed)
    corpus, train_path, eval_path = (folder / f"embedded_{name}.jsonl" for name in ("corpus", "train", "eval"))
    train_rows = questions(world, "train", train, seed)
    _write_jsonl(corpus, world.passages())
    _write_jsonl(train_path, train_rows)
    _write_jsonl(folder / "embedded_train_one_call.jsonl", [r for r in train_rows if r["kind"] in ONE_CALL])
    _write_jsonl(folder / "embedded_train_arithmetic.jsonl", [r for r in train_rows if _needs_expression(r)])
    _write_jsonl(folder / "embedded_train_facts.jsonl", [r for r in train_rows if r["kind"] == "fact"])
    eval_rows = questions(world, "eval", held_out, seed)
    _write_jsonl(eval_path, eval_rows)
    _write_jsonl(folder / "embedded_eval_arithmetic.jsonl", [r for r in eval_rows if r["kind"] == "arithmetic"])
    _write_jsonl(folder / "embedded_eval_facts.jsonl", [r for r in eval_rows if r["kind"] == "fact"])
    # The expressions with a found operand: arithmetic and fact-then-arithmetic, interleaved as generated.
    expressions = [r for r in train_rows if _needs_expression(r) or r["kind"] == "two_step"]
    _write_jsonl(folder / "embedded_train_expressions.jsonl", expressions)
    _write_jsonl(folder / "embedded_eval_expressions.jsonl", [r for r in eval_rows if r["kind"] != "fact"])
    return corpus, train_path, eval_path


def _needs_expression(row: dict[str, Any]) -> bool:
    from agentflow_tools.arithmetic import arithmetic_expression

    return row["kind"] == "arithmetic" and arithmetic_expression(row["question"]) is None


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")


if __name__ == "__main__":
    import sys

    print(*write(sys.argv[1] if len(sys.argv) > 1 else "."))
