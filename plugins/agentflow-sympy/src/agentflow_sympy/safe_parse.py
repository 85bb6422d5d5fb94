"""Turning untrusted text into a SymPy expression without running arbitrary Python.

``parse_expr`` (like ``sympify``) works by rewriting the text's tokens and then ``eval``-ing
them, so on its own it runs whatever Python it is given: ``__import__('os').system('...')``
or ``().__class__.__bases__[0].__subclasses__()``. Our text comes from a language model that
may have been steered by whatever it read, so only what arithmetic needs gets through, in layers:

1. length and characters: letters, digits, blanks and ``+ - * / ^ ( ) , . ! =``. No quotes,
   brackets, braces, ``:``, ``;``, ``@``, ``#`` or backslashes, so no strings, subscripts,
   dicts, lambdas with bodies, statements or comments;
2. tokens: no keywords (``lambda``, ``import``, ``for``, ``not``...), no ``.`` outside a
   number (attribute access), no names with ``__``, no Python built-in names, reserved helper
   names refused, bounded number literals; a math function must be called;
3. the ``eval``: ``__builtins__`` is empty, the globals hold only the allow-listed math
   functions and constants, and every other name is bound to a plain ``Symbol`` in the locals;
4. sizes: the text is first parsed *unevaluated* and every exact constant that SymPy would
   compute (powers, factorials) is estimated in floating point and refused when too big.
   ``9**9**9**9`` or ``factorial(10**7)`` would otherwise run for minutes inside one C call
   that holds the GIL, where no timeout can interrupt it.

This is not a sandbox: a legal expression can still ask for heavy work
(``expand((a+b+c+d)**300)``). The tool's time limit bounds how long the agent waits for that.
"""

from __future__ import annotations

import builtins
import functools
import io
import keyword
import re
import tokenize
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import attrs
import sympy
from sympy.parsing.sympy_parser import (
    auto_number,
    auto_symbol,
    convert_xor,
    factorial_notation,
    implicit_multiplication,
    parse_expr,
)

from agentflow_core import ToolError

#: Functions an expression may call, under the names a model is likely to write.
FUNCTIONS: Mapping[str, Callable[..., Any]] = {
    **{
        name: getattr(sympy, name)
        for name in (
            *("sin", "cos", "tan", "cot", "sec", "csc", "asin", "acos", "atan", "acot", "atan2"),
            *("sinh", "cosh", "tanh", "coth", "asinh", "acosh", "atanh", "exp", "log", "sqrt", "cbrt", "root"),
            *("Abs", "sign", "floor", "ceiling", "Min", "Max", "factorial", "gamma", "binomial"),
            *("re", "im", "conjugate", "arg", "erf"),
        )
    },
    "ln": sympy.log,
    "abs": sympy.Abs,
    "min": sympy.Min,
    "max": sympy.Max,
    "pow": sympy.Pow,
}

CONSTANTS: Mapping[str, sympy.Basic] = {"pi": sympy.pi, "E": sympy.E, "I": sympy.I, "oo": sympy.oo}

#: What the token transformations emit (``Integer(2)``, ``factorial2(n)`` for ``n!!``) and what
#: ``evaluate=False`` rewrites operators into. A user symbol with one of these names would shadow them.
_HELPERS: Mapping[str, Callable[..., Any]] = {
    "Integer": sympy.Integer,
    "Float": sympy.Float,
    "Rational": sympy.Rational,
    "Symbol": sympy.Symbol,
    "Add": sympy.Add,
    "Mul": sympy.Mul,
    "Pow": sympy.Pow,
    "factorial2": sympy.factorial2,
}
_RESERVED = frozenset({*_HELPERS, "Function"})

#: Python's own names are not math: ``eval``, ``open``, ``getattr``... (abs, min, max and pow are mapped above).
_PYTHON_NAMES = frozenset(dir(builtins)) - set(FUNCTIONS)

#: Without ``lambda_notation`` and ``repeated_decimals`` from the standard set; with ``2x`` -> ``2*x``.
_TRANSFORMATIONS = (auto_symbol, auto_number, factorial_notation, convert_xor, implicit_multiplication)

_ALLOWED_CHARS = re.compile(r"[A-Za-z0-9_+\-*/^().,!= \t]")
_OPERATORS = frozenset({"+", "-", "*", "/", "**", "^", "(", ")", ",", "!"})
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_MAX_NAME_CHARS = 40
_MAX_NUMBER_CHARS = 100
_DECIMAL_EXPONENT = re.compile(r"[eE]([+-]?[0-9_]+)")

#: Largest constant exponent, also for symbolic bases: ``(x + 1)**1000`` still expands in seconds.
MAX_EXPONENT = 1000
#: Largest exact constant SymPy may compute (Python will not print an int above 4300 digits anyway).
MAX_DIGITS = 4000
_DIGIT_LIMIT = sympy.Float(f"1e{MAX_DIGITS}")
#: Constants that SymPy computes exactly, and expensively, as soon as they are built.
_GROWING = (sympy.Pow, sympy.factorial, sympy.factorial2, sympy.gamma, sympy.binomial)


@attrs.frozen
class MathInput:
    """An expression, or the two sides of an equation ``lhs = rhs``."""

    lhs: sympy.Expr
    rhs: sympy.Expr | None = None

    @property
    def is_equation(self) -> bool:
        return self.rhs is not None

    @property
    def free_symbols(self) -> set[sympy.Symbol]:
        sides = (self.lhs,) if self.rhs is None else (self.lhs, self.rhs)
        return set().union(*(side.free_symbols for side in sides))


def parse_math(text: str, *, max_length: int) -> MathInput:
    """Parse ``text`` as one expression or one equation; every refusal is a one-line ``ToolError``."""
    text = text.strip()
    if not text:
        raise ToolError("the expression is empty")
    if len(text) > max_length:
        raise ToolError(f"the expression is {len(text)} characters long; at most {max_length} are accepted")
    bad = next((c for c in text if not _ALLOWED_CHARS.fullmatch(c)), None)
    if bad is not None:
        raise ToolError(f"character {bad!r} is not allowed; use numbers, names, + - * / ** ( ) and math functions")
    sides = [_parse_side(side) for side in _split_equation(text)]
    return MathInput(sides[0], sides[1] if len(sides) == 2 else None)


def symbol(name: str) -> sympy.Symbol:
    """The ``Symbol`` for a variable name given on its own, checked like a name in an expression."""
    name = name.strip()
    _check_name(name, followed_by_call=False)
    if name in CONSTANTS:
        raise ToolError(f"{name} is a constant, not a variable")
    return sympy.Symbol(name)


def _split_equation(text: str) -> list[str]:
    if "!=" in text:
        raise ToolError("'!=' is not supported; give one expression or one equation with '='")
    sides = text.replace("==", "=").split("=")
    if len(sides) > 2:
        raise ToolError("more than one '=': give one equation at a time")
    if any(not side.strip() for side in sides):
        raise ToolError("an equation needs an expression on both sides of '='")
    return [side.strip() for side in sides]


def _parse_side(text: str) -> sympy.Expr:
    names = _check_tokens(text)
    _check_sizes(_eval(text, names, evaluate=False))
    expr = _eval(text, names, evaluate=True)
    if not isinstance(expr, sympy.Expr):
        raise ToolError(f"{text!r} is not a single math expression (a top-level ',' makes a list)")
    return expr


# -- layer 2: tokens ---------------------------------------------------------------------------


def _check_tokens(text: str) -> set[str]:
    """Refuse anything but arithmetic; return the names that become plain symbols."""
    tokens = [t for t in _tokens(text) if t.type not in (tokenize.NEWLINE, tokenize.NL, tokenize.ENDMARKER)]
    symbols: set[str] = set()
    for token, following in zip(tokens, [*tokens[1:], None], strict=True):
        if token.type == tokenize.NAME:
            _check_name(token.string, followed_by_call=following is not None and following.string == "(")
            if token.string not in FUNCTIONS and token.string not in CONSTANTS:
                symbols.add(token.string)
        elif token.type == tokenize.NUMBER:
            _check_number(token.string)
        elif token.string == ".":
            raise ToolError("'.' is allowed only inside numbers; attribute access is not math")
        elif token.string.strip() and token.string not in _OPERATORS:
            raise ToolError(f"{token.string!r} is not allowed in a math expression")
    return symbols


def _check_number(literal: str) -> None:
    if len(literal) > _MAX_NUMBER_CHARS:
        raise ToolError(f"a number has more than {_MAX_NUMBER_CHARS} digits")
    # '1e999999' is short, but SymPy turns it into an exact 10**999999 first: minutes of C code holding the GIL.
    exponent = _DECIMAL_EXPONENT.search(literal)
    if exponent and not literal.lower().startswith("0x") and abs(int(exponent.group(1))) > MAX_DIGITS:
        raise ToolError(f"the number {literal} is out of range: decimal exponents up to {MAX_DIGITS} are accepted")


def _tokens(text: str) -> Iterator[tokenize.TokenInfo]:
    try:
        yield from tokenize.generate_tokens(io.StringIO(text).readline)
    except (tokenize.TokenError, SyntaxError) as exc:
        message = exc.args[0] if exc.args else str(exc)
        if "EOF" in str(message):
            message = "unbalanced parentheses"
        raise ToolError(f"cannot read the expression: {message}") from None


def _check_name(name: str, *, followed_by_call: bool) -> None:
    if not _NAME.fullmatch(name) or "__" in name:
        raise ToolError(f"{name!r} is not a valid name: use letters, digits and single underscores")
    if len(name) > _MAX_NAME_CHARS:
        raise ToolError(f"the name {name[:20]}... is longer than {_MAX_NAME_CHARS} characters")
    if keyword.iskeyword(name):
        raise ToolError(f"{name!r} is a Python keyword, not math")
    if name in _PYTHON_NAMES:
        raise ToolError(f"{name!r} is a Python name, not math")
    if name in _RESERVED:
        raise ToolError(f"{name!r} is reserved; use another variable name")
    if name in FUNCTIONS and not followed_by_call:
        raise ToolError(f"{name} is a function: write {name}(...) with its argument")


# -- layer 3: the eval -------------------------------------------------------------------------


def _eval(text: str, names: set[str], *, evaluate: bool) -> Any:
    functions = FUNCTIONS if evaluate else _UNEVALUATED_FUNCTIONS
    helpers = _HELPERS if evaluate else {**_HELPERS, "factorial2": _UNEVALUATED_FUNCTIONS["factorial2"]}
    global_dict: dict[str, Any] = {"__builtins__": {}, **helpers, **functions, **CONSTANTS}
    local_dict: dict[str, Any] = {name: sympy.Symbol(name) for name in names}
    try:
        return parse_expr(
            text, local_dict=local_dict, global_dict=global_dict, transformations=_TRANSFORMATIONS, evaluate=evaluate
        )
    except Exception as exc:  # SymPy's evaluation raises many kinds; each is bad input here
        raise ToolError(f"cannot read {text!r} as math: {_first_line(exc)}") from None


#: During the size check nothing may compute: ``factorial(1000000)`` would, even with ``evaluate=False``.
_UNEVALUATED_FUNCTIONS: Mapping[str, Callable[..., Any]] = {
    name: functools.partial(function, evaluate=False)
    for name, function in {**FUNCTIONS, "factorial2": sympy.factorial2}.items()
}


def _first_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 200 else text[:199] + "…"


# -- layer 4: sizes ----------------------------------------------------------------------------


def _check_sizes(expr: Any) -> None:
    """Refuse huge exact constants before SymPy builds them; children first, so estimates stay cheap."""
    if not isinstance(expr, sympy.Basic):
        return
    for node in sympy.postorder_traversal(expr):
        if isinstance(node, sympy.Pow) and not node.exp.free_symbols and _exceeds(node.exp, MAX_EXPONENT):
            raise ToolError(f"an exponent in {_short(node)} is too large: at most {MAX_EXPONENT} is accepted")
        if isinstance(node, _GROWING) and not node.free_symbols and _exceeds(node, _DIGIT_LIMIT):
            raise ToolError(f"{_short(node)} is too large to compute exactly (more than {MAX_DIGITS} digits)")


def _exceeds(value: sympy.Basic, bound: Any) -> bool:
    """Whether ``|value|`` is finite and above ``bound``, judged in floating point (never exactly)."""
    try:
        size = abs(value.evalf(8))
        return bool(size.is_finite and size > bound)
    except (TypeError, ValueError, ArithmeticError):
        return False  # not a comparable number (nan, zoo): nothing big gets computed


def _short(node: sympy.Basic) -> str:
    text = str(node)
    return text if len(text) <= 60 else text[:59] + "…"
