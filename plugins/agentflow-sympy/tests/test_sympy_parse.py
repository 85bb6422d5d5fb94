"""The parser lets arithmetic through and nothing else; every refusal is one readable line."""

from __future__ import annotations

import pytest
import sympy
from agentflow_sympy.safe_parse import parse_math

from agentflow_core import ToolError

x, y = sympy.symbols("x y")


def parse(text: str) -> sympy.Expr:
    return parse_math(text, max_length=500).lhs


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("x**2 - 5*x + 6", x**2 - 5 * x + 6),
        ("x^2", x**2),  # the caret is a power, as models often write it
        ("2x + 3", 2 * x + 3),  # implicit multiplication
        ("x(x + 1)", x * (x + 1)),  # a symbol followed by '(' multiplies, it is never called
        ("sqrt(2) * pi", sympy.sqrt(2) * sympy.pi),
        ("ln(E)", sympy.Integer(1)),
        ("abs(-3) + max(2, 5)", sympy.Integer(8)),
        ("x!", sympy.factorial(x)),
        ("0.5 * y", sympy.Float(0.5) * y),
        ("theta_1 * 2", 2 * sympy.Symbol("theta_1")),
    ],
)
def test_arithmetic_is_accepted(text: str, expected: sympy.Expr) -> None:
    assert parse(text) == expected


def test_an_equation_has_two_sides() -> None:
    parsed = parse_math("2*x + 3 = 7", max_length=500)
    assert parsed.is_equation and (parsed.lhs, parsed.rhs) == (2 * x + 3, 7)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # Attempts to reach Python through eval: quotes, attributes, subscripts, dunders, keywords, builtins.
        ("__import__('os').system('true')", 'character "\'" is not allowed'),
        ("().__class__.__bases__", "'.' is allowed only inside numbers"),
        ("x.evalf", "'.' is allowed only inside numbers"),
        ("x[0]", "character '[' is not allowed"),
        ("lambda: 1", "character ':' is not allowed"),
        ("x; y", "character ';' is not allowed"),
        ("__import__", "is not a valid name"),
        ("x__y", "is not a valid name"),
        ("lambda x", "'lambda' is a Python keyword"),
        ("x for x in y", "'for' is a Python keyword"),
        ("not x", "'not' is a Python keyword"),
        ("eval(x)", "'eval' is a Python name, not math"),
        ("getattr(x, y)", "'getattr' is a Python name, not math"),
        ("open(x)", "'open' is a Python name, not math"),
        ("Symbol(x)", "'Symbol' is reserved"),
        ("Integer", "'Integer' is reserved"),
        # Not one expression.
        ("", "the expression is empty"),
        ("x = 1 = 2", "more than one '='"),
        ("x =", "both sides"),
        ("1, 2", "not a single math expression"),
        ("(x + 1", "unbalanced parentheses"),
        ("sin", "sin is a function: write sin(...)"),
        # Sizes that would hold the GIL inside one C call for minutes.
        ("9**9**9**9", "too large"),
        ("factorial(10**6)", "too large to compute exactly"),
        ("factorial(1000000)", "too large to compute exactly"),
        ("((9**1000)**1000)**1000", "too large to compute exactly"),
        ("x**100000", "exponent"),
        ("1e999999", "out of range"),
        ("1" * 101, "more than 100 digits"),
    ],
)
def test_everything_else_is_refused_in_one_line(text: str, message: str) -> None:
    with pytest.raises(ToolError) as info:
        parse_math(text, max_length=500)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_length_is_bounded() -> None:
    with pytest.raises(ToolError, match="at most 20 are accepted"):
        parse_math("x + " * 10 + "1", max_length=20)


def test_names_cannot_reach_python() -> None:
    # Every name that is not an allow-listed function or constant is a plain symbol, even SymPy's own API.
    assert parse("sympify + S + N") == sympy.Symbol("sympify") + sympy.Symbol("S") + sympy.Symbol("N")
