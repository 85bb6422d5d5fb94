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
import re

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


def arithmetic_expression(request: str) -> str | None:
    """The request as a Python expression when it is only arithmetic, else ``None``."""
    text = _LEAD.sub("", " ".join(request.split())).rstrip("?.!= ")
    for words, symbol in _WORDS:
        text = re.sub(words, symbol, text, flags=re.I)
    text = _THOUSANDS.sub("", text.translate(_SYMBOLS))
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError:
        return None
    if not _is_arithmetic(tree.body) or isinstance(tree.body, ast.Constant):
        return None  # a lone number is no computation
    return ast.unparse(tree.body)


def _is_arithmetic(node: ast.expr) -> bool:
    if isinstance(node, ast.Constant):
        return isinstance(node.value, int | float) and not isinstance(node.value, bool)
    if isinstance(node, ast.UnaryOp):
        return isinstance(node.op, ast.UAdd | ast.USub) and _is_arithmetic(node.operand)
    if isinstance(node, ast.BinOp):
        return isinstance(node.op, _OPERATORS) and _is_arithmetic(node.left) and _is_arithmetic(node.right)
    return False


#: Numbers a request may leave unsaid (100 for a percentage, 7 and 24 for weeks to hours): whole, 1 to 999.
_SMALL_WHOLE = "[1-9][0-9]{0,2}"
#: Operands in one written expression: enough for ``a * b + c`` or ``n * 7 * 24``, and a stopping point.
MAX_OPERANDS = 5
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def expression_pattern(request: str) -> str:
    """A regular expression for the arithmetic a small model may write for ``request``.

    Operands are the request's own numbers (``1,234`` read as ``1234``) or small whole numbers,
    joined by ``+ - * /`` with single spaces; no parentheses, as their balance is not regular. A
    grammar built from it keeps SmolLM2-135M from inventing operands (``6803 * 1.25``, ``9.67832``),
    which it did in most of its unconstrained expressions. Longest numbers first: an alternation
    tried in order must not stop at ``12`` in ``1234``.

    >>> import re
    >>> bool(re.fullmatch(expression_pattern("What is 30 percent of 6,803?"), "30 * 6803 / 100"))
    True
    >>> bool(re.fullmatch(expression_pattern("What is 30 percent of 6803?"), "30 * 1.25"))
    False
    """
    numbers = sorted(set(_NUMBER.findall(_THOUSANDS.sub("", request))), key=lambda n: (-len(n), n))
    operand = "|".join([*(n.replace(".", "[.]") for n in numbers), _SMALL_WHOLE])
    return f"^({operand})( [-+*/] ({operand})){{0,{MAX_OPERANDS - 1}}}$"
