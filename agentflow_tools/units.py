"""Units a written expression may name, so a small model converts by naming units instead of recalling factors.

SmolLM2-135M does not know that a week has 168 hours: asked for the hours in 161 weeks it wrote
``161 * 7`` (issue 34). It can name units, though: ``161 * week / hour``, or only ``161 * week``, the
quantity as given. Each unit here is its exact size, so any such expression is exact, and each has
the dimension it measures, so a value that is still a quantity (``161 * week`` is a time) is given in
the unit the question asks for (:func:`in_asked_unit`): the model needs to know neither the factor
nor which way round to divide. Only units the question or the request mentions are offered.

>>> units_in("How many hours are in 161 weeks?")
('hour', 'week')
>>> units_in("An inch is 2.54 centimeters; how many in 3 feet?")
('inch', 'centimetre', 'foot')
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from fractions import Fraction

#: Every unit's exact size in a base unit the table does not name: milliseconds, tenths of a
#: millimetre, micrograms, microlitres (``dozen`` is a plain number; a percentage is the number
#: 100, ``agentflow_tools.arithmetic.worded_numbers_in``). No unit is its dimension's base, so a
#: quantity never passes for a number: ``15 * hour`` is a time, given in a unit by :func:`in_asked_unit`.
UNITS: dict[str, Fraction] = {
    "second": Fraction(1000),
    "minute": Fraction(60_000),
    "hour": Fraction(3_600_000),
    "day": Fraction(86_400_000),
    "week": Fraction(604_800_000),
    "millimetre": Fraction(10),
    "centimetre": Fraction(100),
    "metre": Fraction(10_000),
    "kilometre": Fraction(10_000_000),
    "inch": Fraction(254),
    "foot": Fraction(3048),
    "yard": Fraction(9144),
    "mile": Fraction(16_093_440),
    "milligram": Fraction(1000),
    "gram": Fraction(1_000_000),
    "kilogram": Fraction(1_000_000_000),
    "tonne": Fraction(10**12),
    "ounce": Fraction("28349523.125"),
    "pound": Fraction(453_592_370),
    "millilitre": Fraction(1000),
    "litre": Fraction(1_000_000),
    "dozen": Fraction(12),
}

#: What each unit measures; a unit not here (``dozen``) is a plain number.
MEASURES: dict[str, str] = {
    **dict.fromkeys(("second", "minute", "hour", "day", "week"), "time"),
    **dict.fromkeys(("millimetre", "centimetre", "metre", "kilometre", "inch", "foot", "yard", "mile"), "length"),
    **dict.fromkeys(("milligram", "gram", "kilogram", "tonne", "ounce", "pound"), "mass"),
    **dict.fromkeys(("millilitre", "litre"), "volume"),
}

#: How each unit is written in English text: plurals, American spellings.
_WRITTEN = {
    "inch": r"inch(?:es)?",
    "foot": r"foot|feet",
    "gram": r"gram(?:me)?s?",
    "kilogram": r"kilogram(?:me)?s?",
    "milligram": r"milligram(?:me)?s?",
    **{name: rf"{name[:-2]}(?:re|er)s?" for name in ("millimetre", "centimetre", "metre", "kilometre")},
    **{name: rf"{name[:-2]}(?:re|er)s?" for name in ("millilitre", "litre")},
}
_MENTION = re.compile("|".join(rf"(?P<{name}>{_WRITTEN.get(name, name + 's?')})" for name in UNITS), re.I)
_WORD_EDGE = re.compile(r"\w")


def units_in(text: str) -> tuple[str, ...]:
    """The units ``text`` mentions, by their names in :data:`UNITS`, in order of first mention."""
    return tuple(dict.fromkeys(name for name, _ in _mentions(text)))


def _mentions(text: str) -> Iterator[tuple[str, int]]:
    """Each unit ``text`` mentions as a word of its own, and where."""
    for match in _MENTION.finditer(text):
        start, end = match.span()
        word_before = start > 0 and _WORD_EDGE.match(text[start - 1])
        word_after = end < len(text) and _WORD_EDGE.match(text[end])
        if match.lastgroup is not None and not (word_before or word_after):  # not "day" in "Monday"
            yield match.lastgroup, start


#: A dimension: each measure with its non-zero power, sorted (``(("length", 1), ("time", -1))`` is a speed).
Dimension = tuple[tuple[str, int], ...]
NUMBER: Dimension = ()


class UnitError(ValueError):
    """An expression whose units do not fit together: a time added to a length, a unit to a fractional power."""


def dimension_of(expression: str) -> Dimension:
    """What ``expression``'s value measures, its names read as units of :data:`UNITS`.

    >>> dimension_of("161 * week / hour"), dimension_of("161 * week"), dimension_of("3 * mile / hour")
    ((), (('time', 1),), (('length', 1), ('time', -1)))
    >>> dimension_of("3 * hour + 2 * inch")
    Traceback (most recent call last):
    ...
    agentflow_tools.units.UnitError: 3 * hour + 2 * inch adds a time and a length
    """
    return _dimension(ast.parse(expression, mode="eval").body, expression)


def _unit_dimension(name: str) -> Dimension:
    measure = MEASURES.get(name)
    return ((measure, 1),) if measure else NUMBER


def _dimension(node: ast.expr, expression: str) -> Dimension:
    if isinstance(node, ast.Name):
        return _unit_dimension(node.id)
    if isinstance(node, ast.UnaryOp):
        return _dimension(node.operand, expression)
    if not isinstance(node, ast.BinOp):
        return NUMBER  # a number
    left, right = _dimension(node.left, expression), _dimension(node.right, expression)
    if isinstance(node.op, ast.Mult | ast.Div):
        sign = 1 if isinstance(node.op, ast.Mult) else -1
        return _combined(left, right, sign)
    if isinstance(node.op, ast.Pow):
        power = node.right.value if isinstance(node.right, ast.Constant) else None
        if left == NUMBER:
            return NUMBER
        if right != NUMBER or not isinstance(power, int):
            raise UnitError(f"{expression} raises {describe(left)} to a power that is not a whole number")
        return _combined(NUMBER, left, power)
    if left != right:  # + - and the rest need like with like
        raise UnitError(f"{expression} adds {describe(left)} and {describe(right)}")
    return left


def _combined(left: Dimension, right: Dimension, sign: int) -> Dimension:
    powers = dict(left)
    for measure, power in right:
        powers[measure] = powers.get(measure, 0) + sign * power
    return tuple(sorted((measure, power) for measure, power in powers.items() if power))


def describe(dimension: Dimension) -> str:
    """A dimension as a reader says it: "a number", "a time", "a length / time"."""
    if not dimension:
        return "a number"
    over = [m if p == -1 else f"{m}^{-p}" for m, p in dimension if p < 0]
    top = " * ".join(m if p == 1 else f"{m}^{p}" for m, p in dimension if p > 0) or "1"
    return "a " + " / ".join([top, *over])


#: Words before a unit that make it the one asked for: "how many hours", "in feet?", "convert to grams".
_ASKING = re.compile(r"(?:\bhow\s+(?:many|much)|\bnumber\s+of|\bin|\binto|\bto)\s+$", re.I)


def asked_units(text: str) -> tuple[str, ...]:
    """The units ``text`` asks its answer in ("How many hours are in 161 weeks?" asks hours), in order.

    >>> asked_units("How many hours are in 161 weeks?"), asked_units("What is 3 miles in feet?")
    (('hour',), ('foot',))
    """
    return tuple(dict.fromkeys(name for name, start in _mentions(text) if _ASKING.search(text[:start])))


def in_asked_unit(expression: str, text: str) -> tuple[str, str | None]:
    """``expression`` as a number, and the unit it is given in where its value was a quantity.

    A quantity is given in the unit ``text`` (the question and request) asks for, of its dimension;
    where none is asked, in the smallest unit of that dimension the expression names (the whole
    number a reader expects: 135 minutes rather than 2.25 hours). A quantity of a dimension no single
    unit measures (a speed) with no unit asked is a :class:`UnitError`, as is a mismatch.

    >>> in_asked_unit("161 * week", "How many hours are in 161 weeks?")
    ('161 * week / hour', 'hour')
    >>> in_asked_unit("2 * hour + 15 * minute", "How long are 2 hours and 15 minutes?")
    ('(2 * hour + 15 * minute) / minute', 'minute')
    >>> in_asked_unit("161 * week / hour", "How many hours are in 161 weeks?")
    ('161 * week / hour', None)
    """
    dimension = dimension_of(expression)
    if dimension == NUMBER:
        return expression, None
    fitting = [name for name in asked_units(text) if _unit_dimension(name) == dimension]
    if not fitting:
        named = {node.id for node in ast.walk(ast.parse(expression, mode="eval")) if isinstance(node, ast.Name)}
        fitting = sorted((name for name in named if _unit_dimension(name) == dimension), key=UNITS.__getitem__)
    if not fitting:
        raise UnitError(f"{expression} is {describe(dimension)}, and the question asks for no unit to give it in")
    tree = ast.parse(expression, mode="eval").body
    return ast.unparse(ast.BinOp(tree, ast.Div(), ast.Name(fitting[0], ast.Load()))), fitting[0]


def plural(unit: str) -> str:
    """``hours``, ``inches``, ``feet``: how a unit is written after a number other than one."""
    return {"foot": "feet", "inch": "inches"}.get(unit, unit + "s")
