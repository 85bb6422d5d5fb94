"""Math answers: symbolic equivalence with Hugging Face's ``math-verify``, numbers otherwise.

``math-verify`` (extra ``eval``) parses LaTeX and plain expressions from the reply, so ``\\boxed{\\frac{1}{2}}``
equals ``0.5`` and ``33`` equals ``033``. When it is not installed, or finds nothing it can parse in
the reply, the fallback compares the last number of the extracted answer exactly, as a fraction.

>>> from agentflow_core import BenchmarkItem
>>> item = BenchmarkItem("demo", "0", "What is 6 x 7?", answers=("42",))
>>> score_math(item, "The product is \\\\boxed{42}.").correct
True
"""

from __future__ import annotations

import functools
import re
import threading
from fractions import Fraction
from types import ModuleType
from typing import Any

from agentflow_core import BenchmarkItem, Score
from agentflow_rl.benchmarks.extract import candidates, explicit_answer

_FRAC = re.compile(r"\\[dt]?frac\s*\{\s*(-?\d+)\s*\}\s*\{\s*(-?\d+)\s*\}")
_CLAUSE = re.compile(r",\s|;\s|\s(?:which|because|since|so|as|and)\s", re.I)
_NUMBER = re.compile(r"-?\d+(?:,\d{3})*(?:\.\d+)?(?:\s*/\s*\d+)?")


@functools.cache
def _math_verify() -> ModuleType | None:
    try:
        import math_verify
    except ImportError:
        return None
    return math_verify


def _timeout() -> int | None:
    # math-verify times out with signal.alarm, which only the main thread may use.
    return 5 if threading.current_thread() is threading.main_thread() else None


def _verify(gold: str, response: str) -> tuple[bool, str] | None:
    """``(equal, what was parsed)`` from math-verify, or ``None`` when it cannot decide."""
    mv = _math_verify()
    if mv is None:
        return None
    parsed_gold: Any = mv.parse(f"${gold}$", parsing_timeout=_timeout())
    parsed: Any = mv.parse(response, parsing_timeout=_timeout())
    if not parsed_gold or not parsed:
        return None
    equal = bool(mv.verify(parsed_gold, parsed, timeout_seconds=_timeout()))
    return equal, str(parsed[-1])


def last_number(text: str) -> Fraction | None:
    """The last number in ``text`` (``\\frac{a}{b}``, ``a/b``, ``1,234``, ``-3.5``), exactly."""
    text = _FRAC.sub(lambda m: f"{m.group(1)}/{m.group(2)}", text)
    found = _NUMBER.findall(text)
    if not found:
        return None
    token = found[-1].replace(",", "").replace(" ", "")
    try:
        return Fraction(token)
    except (ValueError, ZeroDivisionError):
        return None


def score_math(item: BenchmarkItem, response: str) -> Score:
    """Each answer span is checked (see ``extract.candidates``); math-verify decides when it can parse one."""
    spans = candidates(response)
    if not explicit_answer(response):
        # "The answer is $1.5$ pounds, which is 1.5 x 3 = 4": the stated answer leads; what follows is working.
        spans = list(dict.fromkeys(_CLAUSE.split(span, maxsplit=1)[0].strip() for span in spans))
    parsed_any = False
    for span in spans:
        for gold in item.answers:
            verdict = _verify(gold, span)
            if verdict is None:
                continue
            parsed_any = True
            if verdict[0]:
                return Score(correct=True, value=1.0, method="math_verify", extracted=verdict[1])
    if parsed_any:
        return Score(correct=False, value=0.0, method="math_verify", extracted=spans[0])
    return _score_numbers(item, spans)


def _score_numbers(item: BenchmarkItem, spans: list[str]) -> Score:
    """The fallback: the last number of a span equals a gold number exactly."""
    golds = [last_number(gold) for gold in item.answers]
    for span in spans:
        predicted = last_number(span)
        if predicted is not None and predicted in golds:
            return Score(correct=True, value=1.0, method="number", extracted=span)
    return Score(correct=False, value=0.0, method="number", extracted=spans[0] if spans else "")
