"""Recognising a request that is nothing but arithmetic, so python_coder can run it as written.

"What is 17 * 23?" needs no program a model writes: ``print(17 * 23)`` is the program, and the
sandbox runs it exactly. A small model asked for a program writes a function it never calls, or
calls with made-up numbers (issue 34: SmolLM2-135M got none of seven such tasks right), so
python_coder asks its engine only for requests that are more than an expression.

The request may open with a few words ("what is", "compute") and close with a question mark; the
multiplication and division signs, ``^`` (as a power) and the words plus, minus, times, multiplied
by, divided by and to the power of are read as operators. Whatever remains must parse as Python made only of numbers,
the arithmetic operators and parentheses; anything else (a name, a call, a comparison) is not
arithmetic, and the engine writes the program as usual.

>>> arithmetic_expression("What is 17 * 23?")
'17 * 23'
>>> arithmetic_expression("Compute 2^10 minus 1,000.")
'2 ** 10 - 1000'
>>> arithmetic_expression("How many feet are in 3.5 miles?") is None
True
"""

from __future__ import annotations

import ast
import itertools
import re
from collections.abc import Collection

from agentflow_tools.units import UNITS, units_in

_LEAD = re.compile(
    r"^(?:please\s+)?(?:what\s+is|what's|how\s+much\s+is|compute|calculate|evaluate|work\s+out|find)\s+"
    r"(?:the\s+(?:value|result)\s+of\s+)?",
    re.I,
)
_WORDS = (
    (r"\bmultiplied\s+by\b", "*"),
    (r"\bdivided\s+by\b", "/"),
    (r"\bto\s+the\s+power\s+of\b", "**"),
    (r"\btimes\b", "*"),
    (r"\bplus\b", "+"),
    (r"\bminus\b", "-"),
)
_SYMBOLS = str.maketrans({"×": "*", "÷": "/", "−": "-", "^": "**"})
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_OPERATORS = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod, ast.Pow)


def arithmetic_expression(request: str, names: Collection[str] = ()) -> str | None:
    """The request as a Python expression when it is only arithmetic, else ``None``.

    ``names`` are words that may stand as operands (units, for an expression a model wrote); the
    request itself is read with none, so "How many feet are in 3.5 miles?" is not arithmetic.
    """
    text = _LEAD.sub("", " ".join(request.split())).rstrip("?.!= ")
    for words, symbol in _WORDS:
        text = re.sub(words, symbol, text, flags=re.I)
    text = _THOUSANDS.sub("", text.translate(_SYMBOLS))
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError:
        return None
    if not _is_arithmetic(tree.body, frozenset(names)) or isinstance(tree.body, ast.Constant | ast.Name):
        return None  # a lone number is no computation
    return ast.unparse(tree.body)


def _is_arithmetic(node: ast.expr, names: frozenset[str]) -> bool:
    if isinstance(node, ast.Name):
        return node.id in names
    if isinstance(node, ast.Constant):
        return isinstance(node.value, int | float) and not isinstance(node.value, bool)
    if isinstance(node, ast.UnaryOp):
        return isinstance(node.op, ast.UAdd | ast.USub) and _is_arithmetic(node.operand, names)
    if isinstance(node, ast.BinOp):
        operands = (node.left, node.right)
        return isinstance(node.op, _OPERATORS) and all(_is_arithmetic(operand, names) for operand in operands)
    return False


#: Numbers written as words, as the operands they are: "half the staff" is ``staff / 2``.
_COUNTING = ("one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve")
NUMBER_WORDS = {
    **{word: i for i, word in enumerate(_COUNTING, 1)},
    "twice": 2,
    "double": 2,
    "half": 2,
    "triple": 3,
    "thrice": 3,
    "quarter": 4,
}
_NUMBER_WORD = re.compile(r"\b(" + "|".join(NUMBER_WORDS) + r")\b", re.I)
#: A percentage states the 100 it divides by: SmolLM2 writes ``30 * 6803 / percent`` for "30 percent of
#: 6803" when offered the unit, and ``30 * 6803 / 100`` is what it means.
_PERCENT = re.compile(r"%|\bper\s?cent\b", re.I)
#: Operands in one written expression when the question gives no numbers to build it on, and the
#: whole numbers it may then use (1 to 999).
MAX_OPERANDS = 5
_SMALL_WHOLE = "[1-9][0-9]{0,2}"
#: A question with more numbers than this does not make each one an operand the expression must use
#: (the permutations grow as the factorial); 4 is ``a * b + c - d``.
MAX_REQUIRED = 4
#: Extra operands (units, the request's numbers, numbers in words) after the required ones: only
#: after them, as SmolLM2 offered 100 after each number wrote ``30 * 100 + 6803`` for 30 percent of 6803.
EXTRAS_AFTER = 2
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_OPERATOR = " [-+*/] "


def numbers_in(text: str) -> list[str]:
    """The numbers ``text`` states in digits, ``1,234`` read as ``1234``, in order, repeats kept."""
    return _NUMBER.findall(_THOUSANDS.sub("", text))


def worded_numbers_in(text: str) -> list[str]:
    """The numbers ``text`` states in words ("twice", "a quarter of", "percent"), as digits."""
    words = [str(NUMBER_WORDS[word.lower()]) for word in _NUMBER_WORD.findall(text)]
    return words + (["100"] if _PERCENT.search(text) else [])


def stated_numbers(text: str) -> list[str]:
    """Every number ``text`` states, in digits or in words: what an expression can be built from."""
    return [*numbers_in(text), *worded_numbers_in(text)]


def expression_pattern(question: str, request: str = "", found: Collection[str] = ()) -> str:
    """A regular expression for the arithmetic a small model may write to answer ``question`` (and ``request``).

    Every number the question states in digits is an operand, each as often as it is stated, in any
    order: a word problem's numbers are its data, and SmolLM2-135M otherwise drops one (``161 * 7``
    for the hours in 161 weeks) or invents one (``6803 * 1.25``), which it did in most unconstrained
    expressions (issue 34). After them come at most :data:`EXTRAS_AFTER` more operands: numbers the
    request states (where the question states none), numbers earlier turns ``found`` (the year a
    search found, for an age in 2030), numbers either text states in words ("twice", "half"; a
    percentage states 100), units either text mentions (:mod:`agentflow_tools.units`: ``week``,
    ``inch``), which ``python_coder`` defines before the expression runs; nothing else, as every
    unstated constant the
    model was offered (7, 24, 100) it also used where it was wrong. Operators are ``+ - * /`` with
    single spaces, at least one of them; no parentheses, as their balance is not regular. Without a
    question, the request's numbers are the required ones; with none, or more than
    :data:`MAX_REQUIRED`, none is required and whole numbers up to 999 are offered instead. One
    number with nothing to add to it is a ``ValueError``: no expression computes anything from it.

    >>> import re
    >>> pattern = expression_pattern("What is 30 percent of 6,803?")
    >>> written = ("30 * 6803 / 100", "30 * 100 + 6803", "6803 * 1.25", "6803 / 100")
    >>> [bool(re.fullmatch(pattern, expression)) for expression in written]
    [True, False, False, False]
    >>> bool(re.fullmatch(expression_pattern("How many hours are in 161 weeks?"), "161 * week / hour"))
    True
    """
    required = numbers_in(question) or numbers_in(request)
    if len(required) > MAX_REQUIRED:
        required = []
    texts = f"{question} {request}"
    # The request's numbers only without a question's: a small planner's request makes numbers up
    # (``213 * 213.56`` for the hours in 213 weeks, the 213.56 its own).
    asked = numbers_in(request) if not numbers_in(question) else []
    stated = {*asked, *worded_numbers_in(texts), *found} - set(required)
    # Longest first: an alternation tried in order must not stop at ``12`` in ``1234``.
    others = [*(_literal(n) for n in sorted(stated, key=lambda n: (-len(n), n))), *units_in(texts)]
    if not required:
        # Whole numbers only where nothing was stated or found: SmolLM2 halved 1969 as ``1969 * 20``.
        free = "(" + "|".join(others or [_SMALL_WHOLE]) + ")"
        return f"^{free}({_OPERATOR}{free}){{1,{MAX_OPERANDS - 1}}}$"
    if len(required) == 1 and not others:
        raise ValueError(f"one number ({required[0]}) and nothing to compute it with")
    orders = dict.fromkeys(itertools.permutations(required))  # a repeated number makes repeated orders
    written = "(" + "|".join(_OPERATOR.join(_literal(n) for n in order) for order in orders) + ")"
    # At least one operator: a lone number computes nothing (SmolLM2 wrote "2030" for an age in 2030).
    return f"^{written}{_extras(others, fewest=1 if len(required) == 1 else 0)}$"


def _extras(others: list[str], fewest: int) -> str:
    """Up to :data:`EXTRAS_AFTER` of ``others``, each at most once (SmolLM2 wrote ``1925 + 1798 * 1798``)."""
    runs = [run for n in range(max(fewest, 1), EXTRAS_AFTER + 1) for run in itertools.permutations(others, n)]
    if not runs:
        return ""
    group = "(" + "|".join("".join(f"{_OPERATOR}{operand}" for operand in run) for run in runs) + ")"
    return group if fewest else f"{group}?"


def _literal(number: str) -> str:
    return number.replace(".", "[.]")


def exact_program(expression: str) -> str:
    """A program that prints ``expression``'s exact value: each number a ``Fraction``, each unit defined.

    ``184 * 2.54`` prints ``467.36`` and ``0.1 + 0.2`` prints ``0.3``, where floats would print
    ``467.36000000000007`` or ``0.30000000000000004``; a whole result prints without ``.0``. A value
    whose decimals never end prints as a float. ``expression`` is one :func:`arithmetic_expression`
    returned, so its names are units.

    >>> exact_program("161 * week / hour").splitlines()[1:5]
    ['week = F(604800000, 1)', 'hour = F(3600000, 1)', 'try:', "    value = F('161') * week / hour"]
    """
    tree = ast.parse(expression, mode="eval")
    named = sorted((node for node in ast.walk(tree) if isinstance(node, ast.Name)), key=lambda node: node.col_offset)
    names = list(dict.fromkeys(node.id for node in named))
    exact = ast.unparse(_Exact().visit(tree))
    units = [f"{name} = F({UNITS[name].numerator}, {UNITS[name].denominator})" for name in names]
    # The message a float division would give, not ``Fraction(1, 0)``.
    compute = f"try:\n    value = {exact}\nexcept ZeroDivisionError:\n    {_DIVISION_BY_ZERO}"
    return "\n".join(["from fractions import Fraction as F", *units, compute, _SHOW])


_DIVISION_BY_ZERO = "raise ZeroDivisionError('division by zero') from None"


class _Exact(ast.NodeTransformer):
    def visit_Constant(self, node: ast.Constant) -> ast.expr:
        return ast.Call(ast.Name("F", ast.Load()), [ast.Constant(repr(node.value))], [])


#: Prints a ``Fraction`` (or the float a fractional power makes) as a person writes the number.
_SHOW = """if not isinstance(value, F):
    print(value)
elif value.denominator == 1:
    print(value.numerator)
else:
    rest, places = value.denominator, 0
    while rest % 10 == 0 or rest % 2 == 0 or rest % 5 == 0:
        rest //= 10 if rest % 10 == 0 else 2 if rest % 2 == 0 else 5
        places += 1
    if rest == 1:
        digits = f"{abs(value.numerator) * 10**places // value.denominator:0{places + 1}d}"
        sign = "-" if value < 0 else ""
        print(f"{sign}{digits[:-places]}.{digits[-places:]}".rstrip("0").rstrip("."))
    else:
        try:
            print(float(value))
        except OverflowError:
            print(value)"""
