"""The seven operations, each a small function from parsed input to one line of text.

The text is what the planner, verifier and generator read, so it says what was computed
("solutions for x: [2, 3]") and uses SymPy's plain syntax, which models read and write well.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import sympy

from agentflow_core import ToolError
from agentflow_sympy.safe_parse import MathInput, parse_math, symbol

#: The operations that work with respect to one variable.
_NEEDS_VARIABLE = frozenset({"solve", "diff", "integrate"})


def compute(expression: str, operation: str, variable: str | None, *, max_length: int) -> str:
    """Parse, check and compute; any failure is a one-line ``ToolError`` the model can act on."""
    parsed = parse_math(expression, max_length=max_length)
    if parsed.is_equation and operation != "solve":
        raise ToolError(f"'=' makes an equation, which only 'solve' accepts; {operation} takes one expression")
    var = _variable(parsed, operation, variable)
    try:
        return OPERATIONS[operation](parsed, var)
    except ToolError:
        raise
    except Exception as exc:  # SymPy's own refusals: NotImplementedError, PolynomialError, ...
        detail = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise ToolError(f"SymPy cannot {operation} this: {detail}") from None


def _variable(parsed: MathInput, operation: str, variable: str | None) -> sympy.Symbol | None:
    if variable:
        return symbol(variable)
    if operation not in _NEEDS_VARIABLE:
        return None
    names = sorted(str(s) for s in parsed.free_symbols)
    if len(names) == 1:
        return sympy.Symbol(names[0])
    if not names:
        raise ToolError(f"{operation} needs a variable, but the expression has none")
    raise ToolError(f"{operation} needs to know the variable: the expression has {', '.join(names)}; set 'variable'")


def _solve(parsed: MathInput, var: sympy.Symbol | None) -> str:
    expr = parsed.lhs - parsed.rhs if parsed.rhs is not None else parsed.lhs
    solutions = sympy.solve(expr, var)
    if not solutions:
        return f"solutions for {var}: none found"
    if any(s.has(sympy.CRootOf) for s in solutions):  # roots with no closed form: numbers say more
        return f"solutions for {var} (numeric): {[s.evalf(12) for s in solutions]}"
    return f"solutions for {var}: {solutions}"


def _diff(parsed: MathInput, var: sympy.Symbol | None) -> str:
    return f"derivative with respect to {var}: {sympy.diff(parsed.lhs, var)}"


def _integrate(parsed: MathInput, var: sympy.Symbol | None) -> str:
    result = sympy.integrate(parsed.lhs, var)
    if result.has(sympy.Integral):
        raise ToolError(f"SymPy found no closed form for the integral of {parsed.lhs} with respect to {var}")
    return f"antiderivative with respect to {var} (plus a constant): {result}"


def _simplify(parsed: MathInput, _: sympy.Symbol | None) -> str:
    return str(sympy.simplify(parsed.lhs))


def _factor(parsed: MathInput, _: sympy.Symbol | None) -> str:
    expr = parsed.lhs
    if expr.is_Integer and abs(expr) > 1:
        primes = sympy.factorint(expr)
        return " * ".join(f"{p}**{k}" if k > 1 else str(p) for p, k in sorted(primes.items()))
    return str(sympy.factor(expr))


def _expand(parsed: MathInput, _: sympy.Symbol | None) -> str:
    return str(sympy.expand(parsed.lhs))


def _evaluate(parsed: MathInput, _: sympy.Symbol | None) -> str:
    expr = parsed.lhs
    if expr.free_symbols:
        names = ", ".join(sorted(str(s) for s in expr.free_symbols))
        raise ToolError(f"evaluate needs numbers only, but the expression contains {names}; put in their values")
    if expr.is_Integer:
        return str(expr)
    value = expr.evalf(15)
    return f"{expr} = {value}" if expr.is_Rational else str(value)


OPERATIONS: Mapping[str, Callable[[MathInput, sympy.Symbol | None], str]] = {
    "simplify": _simplify,
    "solve": _solve,
    "diff": _diff,
    "integrate": _integrate,
    "evaluate": _evaluate,
    "factor": _factor,
    "expand": _expand,
}
