"""Each scorer accepts every gold answer of its shipped set, in the forms models write, and rejects wrong ones."""

from __future__ import annotations

import pytest

from agentflow_core import BenchmarkItem
from agentflow_rl.benchmarks import PAPER_BENCHMARKS, FileBenchmark
from agentflow_rl.benchmarks import math as math_scorer
from agentflow_rl.benchmarks.choice import score_choice
from agentflow_rl.benchmarks.extract import answer_line, boxed, candidates, explicit_answer, extract_answer, tagged
from agentflow_rl.benchmarks.game24 import check_24, score_game24
from agentflow_rl.benchmarks.normalize import normalize_answer
from agentflow_rl.benchmarks.qa import exact_match, score_qa, token_f1
from tests.eval_support import DATA_DIR, needs_data

BY_NAME = {b.name: b for b in PAPER_BENCHMARKS}


def _items(name: str) -> tuple[FileBenchmark, list[BenchmarkItem]]:
    benchmark = BY_NAME[name]
    return benchmark, list(benchmark.load(DATA_DIR))


def _other_gold(items: list[BenchmarkItem], index: int) -> str:
    """A gold answer of another item that is not an alias of this one's."""
    mine = {normalize_answer(a) for a in items[index].answers}
    rotated = items[index + 1 :] + items[:index]
    return next(o.answers[0] for o in rotated if normalize_answer(o.answers[0]) not in mine)


@needs_data
@pytest.mark.parametrize("name", ["bamboogle", "2wiki", "hotpotqa", "musique"])
def test_qa_accepts_every_gold_and_rejects_others(name: str) -> None:
    benchmark, items = _items(name)
    for index, item in enumerate(items):
        for gold in item.answers:
            generator = f"The results name it.\n\nAnswer: {gold}"  # how AgentFlow's generator ends a reply
            for reply in (
                gold,
                f"<answer>{gold}</answer>",
                f"{gold.upper()}.\nIt says so on the page.",
                f"**{gold}**",
                generator,
            ):
                assert benchmark.score(item, reply).correct, (item.id, reply)
        wrong = _other_gold(items, index)
        assert not benchmark.score(item, wrong).correct, (item.id, wrong)
        assert not benchmark.score(item, "").correct


@needs_data
@pytest.mark.parametrize("name", ["aime24", "amc23"])
def test_math_accepts_every_gold_and_rejects_neighbours(name: str) -> None:
    benchmark, items = _items(name)
    for item in items:
        gold = item.answers[0]
        for reply in (
            gold,
            f"The final answer is $\\boxed{{{gold}}}$.",
            f"<answer>{gold}</answer>",
            f"{gold}\n\nsince x = 7",
            f"Since x = 7 and 2x = 14, it is {int(gold) + 3} minus 3.\n\nAnswer: {gold}",
        ):
            assert benchmark.score(item, reply).correct, (item.id, reply)
        wrong_lead = f"The answer is ${int(gold) + 1}$, which is $2 \\times 3 = {gold}$"  # working after the answer
        for wrong in (str(int(gold) + 1), f"\\boxed{{{int(gold) - 1}}}", "I do not know", wrong_lead):
            assert not benchmark.score(item, wrong).correct, (item.id, wrong)


@needs_data
def test_medqa_accepts_letter_or_text_and_rejects_other_options() -> None:
    benchmark, items = _items("medqa")
    for item in items:
        text, letter = item.answers
        for reply in (
            text,
            letter,
            f"({letter})",
            f"{letter}. {text}",
            f"The answer is {letter}.",
            f"<answer>{text}</answer>",
            f"A. {item.choices['A']} B. {item.choices['B']} are wrong here.\n\nAnswer: {letter}",
        ):
            assert benchmark.score(item, reply).correct, (item.id, reply)
        for other, other_text in item.choices.items():
            if other != letter:
                assert not benchmark.score(item, other_text).correct, (item.id, other_text)
                assert not benchmark.score(item, f"{other}. {other_text}").correct, (item.id, other)


@needs_data
def test_game24_accepts_all_listed_solutions_and_rejects_broken_ones() -> None:
    benchmark, items = _items("gameof24")
    solutions = 0
    for item in items:
        numbers = item.extra["numbers"]
        for solution in item.answers:
            solutions += 1
            assert benchmark.score(item, solution).correct, (item.id, solution)
            assert benchmark.score(item, f"<answer>{solution} = 24</answer>").correct, (item.id, solution)
            assert benchmark.score(item, f"Try it.\n\nAnswer: {solution}").correct, (item.id, solution)
        first = item.answers[0]
        assert not benchmark.score(item, first + "+1").correct  # a number that is not given
        assert not benchmark.score(item, first + f"+{numbers[0]}-{numbers[0]}").correct  # a number used twice
        assert not benchmark.score(item, f"({first})×1").correct  # one operand too many
    assert solutions == sum(len(i.answers) for i in items) > 300


def test_game24_checker_is_exact_and_safe() -> None:
    assert check_24("8 / (3 - 8 / 3)", [3, 3, 8, 8])  # needs exact fractions: floats give 23.999...
    assert check_24("(13 − 1) × (1 + 1)", [1, 1, 1, 13])  # typographic minus and times
    assert check_24("[(6 ÷ 3) + 2] × 6", [2, 3, 6, 6])
    assert check_24("-(1 - 25)", [1, 25])  # unary minus is allowed
    assert not check_24("4 * 6", [4, 6, 1])  # a number left unused
    assert not check_24("4 * 6 * 1 * 1", [4, 6, 1])  # used twice
    assert not check_24("2 ** 3 * 3", [2, 3, 3])  # no powers
    assert not check_24("4.0 * 6", [4, 6])  # integers only
    assert not check_24("24 / (1 - 1) + 24", [24, 1, 1, 24])  # division by zero is no answer
    assert not check_24("__import__('os').system('true')", [1])
    assert not check_24("(" * 500 + "24" + ")" * 500, [24])


def test_game24_finds_the_expression_in_a_reply() -> None:
    item = BenchmarkItem("gameof24", "0", "q", ("(1+1+1)×8",), extra={"numbers": [1, 1, 1, 8]})
    assert score_game24(item, "Let me see. 8 × (1 + 1 + 1) = 24, done.").correct  # a solution not in the file
    assert not score_game24(item, "8 × 3 = 24").correct
    assert score_game24(item, "8 × 3 = 24").extracted == "8 * 3"


def test_extraction_prefers_tags_then_boxes_then_labels() -> None:
    assert tagged("think <answer>Paris</answer> more <answer> Rome </answer>") == "Rome"
    assert tagged("<answer>unclosed to the end") == "unclosed to the end"
    assert boxed("so \\boxed{\\frac{1}{2}} and \\boxed{3}") == "3"
    assert boxed("\\boxed{\\frac{1}{2}}") == "\\frac{1}{2}"
    assert extract_answer("Reasoning...\nThe final answer is: 42.") == "42"
    assert extract_answer("one\ntwo\n\n") == "two"
    assert candidates("<answer>Paris</answer> but maybe Rome") == ["Paris"]
    assert "Paris" in candidates("Paris. It is the capital.")  # the generator starts with the answer


def test_a_last_answer_line_is_the_short_answer_scorers_use() -> None:
    reply = 'The answer to the question "Where?" would be Boston.\n\nAnswer: Boston'
    assert answer_line(reply) == "Boston" and candidates(reply) == ["Boston"]
    assert answer_line("**Final answer:** 42.") == "42"
    assert explicit_answer("Answer: \\boxed{7}") == "7"
    assert explicit_answer("Answer: The answer is 12") == "12"
    assert answer_line("Answer: 41\nOn second thought it is 42.") is None  # the reply did not end with it
    assert answer_line("The answer: is not here") is None  # prose, not a line of its own
    item = BenchmarkItem("demo", "0", "Where?", ("Boston",))
    assert score_qa(item, reply).correct
    assert not score_qa(item, "Boston, I think.\n\nAnswer: Chicago").correct  # held to the short answer
    assert math_scorer.score_math(BenchmarkItem("demo", "0", "?", ("391",)), "17 * 23 is big.\n\nAnswer: 391").correct


def test_qa_rules_follow_search_r1() -> None:
    assert normalize_answer("The  Eiffel-Tower!") == "eiffeltower"
    assert exact_match("an apple", ["Apple"]) and exact_match("1,000", ["1000"]) and not exact_match("1.5", ["15"])
    assert token_f1("Frank Herbert wrote it", ["Frank Herbert"]) == pytest.approx(2 * 0.5 * 1 / 1.5)
    assert token_f1("no doubt yes", ["yes"]) == 0.0  # yes/no only by exact match
    item = BenchmarkItem("demo", "0", "Who wrote Dune?", ("Frank Herbert", "Herbert"))
    graded = score_qa(item, "It was written by Frank Herbert")
    assert not graded.correct and 0 < graded.value < 1


def test_choice_is_not_fooled_by_an_article() -> None:
    item = BenchmarkItem("m", "0", "?", ("Oral ulcers", "B"), choices={"A": "Colorectal cancer", "B": "Oral ulcers"})
    assert not score_choice(item, "A patient like this rarely has them.").correct
    assert score_choice(item, "A patient like this most likely develops oral ulcers.").correct
    assert not score_choice(item, "Either oral ulcers or colorectal cancer.").correct  # two options named: none
    echo = "Which is it?\nA. Colorectal cancer\nB. Oral ulcers"  # the options repeated: its last line is B
    assert not score_choice(item, echo).correct
    assert score_choice(item, echo + "\nThe answer is B.").correct


def test_math_falls_back_to_numbers_without_math_verify(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(math_scorer, "_math_verify", lambda: None)
    item = BenchmarkItem("amc23", "0", "q", ("3159",))
    assert math_scorer.score_math(item, "The answer is 3,159.").method == "number"
    assert math_scorer.score_math(item, "\\boxed{3159}").correct
    assert not math_scorer.score_math(item, "\\boxed{3158}").correct
    half = BenchmarkItem("x", "0", "q", ("1/2",))
    assert math_scorer.score_math(half, "\\boxed{\\frac{1}{2}}").correct
