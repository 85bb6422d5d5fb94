"""Units a written expression may name, so a small model converts by naming units instead of recalling factors.

SmolLM2-135M does not know that a week has 168 hours: asked for the hours in 161 weeks it wrote
``161 * 7`` (issue 34). It can learn a pattern that holds for every conversion, though: the
quantity times the unit it is given in, divided by the unit asked for, ``161 * week / hour``. Each
unit here is its exact size, so any such expression is exact. Only units the question or the
request mentions are offered to the model.

>>> units_in("How many hours are in 161 weeks?")
('hour', 'week')
>>> units_in("An inch is 2.54 centimeters; how many in 3 feet?")
('inch', 'centimetre', 'foot')
"""

from __future__ import annotations

import re
from fractions import Fraction

#: Every unit's exact size in a base unit the table does not name: milliseconds, tenths of a
#: millimetre, micrograms, microlitres (``dozen`` is a plain number; a percentage is the number
#: 100, ``agentflow_tools.arithmetic.worded_numbers_in``). With a named
#: base (seconds) ``15 * hour`` would be the seconds in 15 hours, a shortcut that rewards leaving the
#: unit asked for out and fails for every other one; here only ``15 * hour / second`` is a number.
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
    found: list[str] = []
    for match in _MENTION.finditer(text):
        start, end = match.span()
        word_before = start > 0 and _WORD_EDGE.match(text[start - 1])
        word_after = end < len(text) and _WORD_EDGE.match(text[end])
        if match.group() != "%" and (word_before or word_after):
            continue  # part of a longer word: "day" in "Monday"
        name = match.lastgroup
        if name is not None and name not in found:
            found.append(name)
    return tuple(found)
