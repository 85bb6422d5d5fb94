"""Game of 24: any arithmetic expression that uses each given number once and equals 24.

The expression is parsed with :mod:`ast` and evaluated by walking the tree with exact
``Fraction`` arithmetic: nothing is ever ``eval``-ed, only ``+ - * /``, parentheses, unary minus and
integer literals are allowed, and the typographic multiplication, division and minus signs (U+00D7,
U+00F7, U+2212 and kin) are read as ``*``, ``/`` and ``-``. Whatever
solution the model finds counts, not only the ones listed in the data file.

>>> check_24("(1+1+1)*8", [1, 1, 1, 8])
True
>>> check_24("8*3", [1, 1, 1, 8])
False
"""

from __future__ import annotations

import ast
import re
from collections import Counter
from collections.abc import Sequence
from fractions import Fraction

from agentflow_core import BenchmarkItem, Score
from agentflow_rl.benchmarks.extract import explicit_answer, labelled

_TYPOGRAPHY = str.maketrans({"×": "*", "✕": "*", "∗": "*", "·": "*", "⋅": "*", "÷": "/", "−": "-", "–": "-", "—": "-"})
_BINARY = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
}
#: Runs of characters an arithmetic expression is made of (after typography is folded).
_EXPRESSION = re.compile(r"[\d\s+\-*/()\[\]{}]+")
_MAX_LENGTH = 200


class _Invalid(Exception):
    """Not an expression we accept (a name, a call, a power, a float, division by zero...)."""


def _evaluate(node: ast.AST, used: list[int]) -> Fraction:
    if isinstance(node, ast.Expression):
        return _evaluate(node.body, used)
    if isinstance(node, ast.Constant) and type(node.value) is int:
        used.append(node.value)
        return Fraction(node.value)
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _evaluate(node.left, used), _evaluate(node.right, used)
        if isinstance(node.op, ast.Div) and right == 0:
            raise _Invalid("division by zero")
        return _BINARY[type(node.op)](left, right)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        value = _evaluate(node.operand, used)
        return -value if isinstance(node.op, ast.USub) else value
    raise _Invalid(type(node).__name__)


def _clean(expression: str) -> str:
    text = expression.translate(_TYPOGRAPHY).replace("[", "(").replace("]", ")").replace("{", "(").replace("}", ")")
    text = re.sub(r"\\(?:times|cdot)", "*", text).replace("\\div", "/").replace("$", "")
    return re.sub(r"=\s*24\s*$", "", text.strip()).strip()


def check_24(expression: str, numbers: Sequence[int], target: int = 24) -> bool:
    """Whether ``expression`` uses exactly ``numbers`` (each once) and equals ``target``."""
    text = _clean(expression)
    if not text or len(text) > _MAX_LENGTH:
        return False
    try:
        used: list[int] = []
        value = _evaluate(ast.parse(text, mode="eval"), used)
    except (SyntaxError, ValueError, _Invalid, RecursionError):
        return False
    return Counter(used) == Counter(numbers) and value == target


def expressions_in(text: str) -> list[str]:
    """Candidate expressions in a reply: the explicit answer first, then any arithmetic run, longest first."""
    explicit = [found for found in (explicit_answer(text), labelled(text)) if found]
    runs = [run.strip() for run in _EXPRESSION.findall(_clean_all(text)) if re.search(r"\d\D+\d", run)]
    return list(dict.fromkeys([*explicit, *sorted(runs, key=len, reverse=True)]))


def _clean_all(text: str) -> str:
    return re.sub(r"\\(?:times|cdot)", "*", text.translate(_TYPOGRAPHY)).replace("\\div", "/")


def score_game24(item: BenchmarkItem, response: str) -> Score:
    numbers = [int(n) for n in item.extra["numbers"]]
    found = expressions_in(response)
    for expression in found:
        if check_24(expression, numbers):
            return Score(correct=True, value=1.0, method="game24", extracted=expression)
    return Score(correct=False, value=0.0, method="game24", extracted=found[0] if found else "")
