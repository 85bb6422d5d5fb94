"""What the planner and executor read about ``symbolic_math``; plain data, no SymPy import."""

from __future__ import annotations

from agentflow_core import ToolExample, ToolSpec

OPERATIONS = ("simplify", "solve", "diff", "integrate", "evaluate", "factor", "expand")

SPEC = ToolSpec(
    name="symbolic_math",
    description=(
        "Exact symbolic mathematics with SymPy: solves an equation, differentiates, integrates, simplifies, "
        "factors or expands an expression, or evaluates it to a decimal number."
    ),
    input_schema={
        "type": "object",
        "properties": {
            "expression": {
                "type": "string",
                "minLength": 1,
                "description": (
                    "one expression in Python/SymPy syntax, e.g. 'x**2 - 5*x + 6' or 'sin(x)**2 + cos(x)**2'; "
                    "for solve it may be an equation with one '=', e.g. '2*x + 3 = 7'"
                ),
            },
            "operation": {
                "type": "string",
                "enum": list(OPERATIONS),
                "description": "what to do with the expression",
            },
            "variable": {
                "type": "string",
                "pattern": "^[A-Za-z][A-Za-z0-9_]*$",
                "description": "the unknown to solve for or differentiate/integrate by; needed when there are several",
            },
        },
        "required": ["expression", "operation"],
        "additionalProperties": False,
    },
    output=(
        "one line: the result in SymPy syntax, e.g. 'solutions for x: [2, 3]', "
        "'derivative with respect to x: 2*x', or a decimal number for evaluate"
    ),
    limitations=(
        "One expression or one equation in one unknown: no systems of equations, inequalities, matrices or plots.",
        "Integrals are indefinite (no limits); derivatives are first derivatives.",
        "Numbers are bounded: exponents above 1000 and exact results above 4000 digits are refused.",
        "A computation that takes longer than its time limit (10 s by default) is abandoned.",
    ),
    best_practices=(
        "Write ** for powers and * for products; E is Euler's number, I the imaginary unit, pi and oo infinity.",
        "Use it for any exact algebra or calculus instead of working it out in text.",
        "Give 'variable' whenever the expression has more than one symbol.",
        "Put numbers in directly: it cannot see earlier steps, only this expression.",
    ),
    examples=(
        ToolExample("roots of a quadratic", {"expression": "x**2 - 5*x + 6", "operation": "solve", "variable": "x"}),
        ToolExample("a derivative", {"expression": "x**3*sin(x)", "operation": "diff", "variable": "x"}),
        ToolExample("a decimal value", {"expression": "sqrt(2)*pi", "operation": "evaluate"}),
    ),
)
