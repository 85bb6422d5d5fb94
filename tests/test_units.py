"""The units python_coder's expressions may name: what text mentions them, and their exact sizes."""

from __future__ import annotations

from fractions import Fraction

import pytest

from agentflow_tools.units import UNITS, units_in


@pytest.mark.parametrize(
    ("text", "units"),
    [
        ("How many hours are in 161 weeks?", ("hour", "week")),
        ("3 feet and 2 inches in centimeters", ("foot", "inch", "centimetre")),
        ("What is 15% of 240, or 15 percent of a week?", ("week",)),  # a percentage is the number 100
        ("Kilometres, metres, millimetres", ("kilometre", "metre", "millimetre")),
        ("a kilogramme and two grams", ("kilogram", "gram")),
        ("On Mondays the secondary school hourly rate", ()),  # inside longer words: none
        ("a dozen eggs in 2 litres", ("dozen", "litre")),
    ],
)
def test_units_are_found_as_written(text: str, units: tuple[str, ...]) -> None:
    assert units_in(text) == units


@pytest.mark.parametrize(
    ("given", "asked", "factor"),
    [
        ("week", "hour", Fraction(168)),
        ("day", "second", Fraction(86400)),
        ("mile", "kilometre", Fraction("1.609344")),
        ("inch", "centimetre", Fraction("2.54")),
        ("foot", "inch", Fraction(12)),
        ("yard", "foot", Fraction(3)),
        ("pound", "ounce", Fraction(16)),
        ("kilogram", "gram", Fraction(1000)),
        ("tonne", "kilogram", Fraction(1000)),
        ("litre", "millilitre", Fraction(1000)),
    ],
)
def test_a_conversion_is_the_quantity_times_its_unit_over_the_unit_asked_for(
    given: str, asked: str, factor: Fraction
) -> None:
    assert UNITS[given] / UNITS[asked] == factor


def test_no_unit_of_measure_is_the_base_so_leaving_the_unit_asked_for_out_is_never_right() -> None:
    """``15 * hour`` must not be the seconds in 15 hours: that shortcut fails for hours in weeks."""
    plain = {"dozen"}
    assert all(size != 1 for name, size in UNITS.items() if name not in plain)
