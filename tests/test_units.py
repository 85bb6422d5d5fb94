"""The units python_coder's expressions may name: what text mentions them, and their exact sizes."""

from __future__ import annotations

from fractions import Fraction

import pytest

from agentflow_tools.units import UNITS, UnitError, asked_units, dimension_of, in_asked_unit, units_in


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


def test_no_unit_of_measure_is_the_base_so_a_quantity_never_passes_for_a_number() -> None:
    """Were seconds 1, ``15 * hour`` would print as the seconds in 15 hours whatever was asked."""
    plain = {"dozen"}
    assert all(size != 1 for name, size in UNITS.items() if name not in plain)


@pytest.mark.parametrize(
    ("text", "asked"),
    [
        ("How many hours are in 161 weeks?", ("hour",)),
        ("An inch is 2.54 centimetres. How many centimetres are 184 inches?", ("centimetre",)),
        ("What is 3 miles in feet?", ("foot",)),
        ("Convert 5 kilograms to pounds.", ("pound",)),
        ("What is the number of seconds in a day?", ("second",)),
        ("A train leaves at 3 pm and travels 120 miles.", ()),
        ("How many grams of flour are in 2 cups?", ("gram",)),
    ],
)
def test_the_unit_asked_for_is_the_one_after_how_many_in_or_to(text: str, asked: tuple[str, ...]) -> None:
    assert asked_units(text) == asked


@pytest.mark.parametrize(
    ("expression", "text", "computed"),
    [
        ("161 * week", "How many hours are in 161 weeks?", "161 * week / hour"),
        ("161 * week / hour", "How many hours are in 161 weeks?", "161 * week / hour"),  # already a number
        ("3 * mile", "What is 3 miles in feet?", "3 * mile / foot"),
        ("3 * mile - 10 * foot", "What is 3 miles less 10 feet in yards?", "(3 * mile - 10 * foot) / yard"),
        ("2 * 12 * dozen", "How many eggs are in 2 boxes of 12 dozen?", "2 * 12 * dozen"),  # a dozen is a number
        (
            "40 * mile / hour * 3 * hour",
            "How many miles in 3 hours at 40 miles an hour?",
            "40 * mile / hour * 3 * hour / mile",
        ),
    ],
)
def test_a_quantity_is_divided_by_the_unit_asked_for(expression: str, text: str, computed: str) -> None:
    assert in_asked_unit(expression, text)[0] == computed


def test_the_value_is_the_conversion() -> None:
    computed, unit = in_asked_unit("161 * week", "How many hours are in 161 weeks?")
    assert unit == "hour"
    assert eval(computed, {}, dict(UNITS)) == 27048  # the names are the table's units


@pytest.mark.parametrize(
    ("expression", "problem"),
    [
        ("3 * hour + 2 * inch", "adds a time and a length"),
        ("2 * mile ** 0.5", "raises a length to a power that is not a whole number"),
        ("60 * mile / hour", "is a length / time, and the question asks for no unit"),
    ],
)
def test_units_that_do_not_fit_are_named_in_the_error(expression: str, problem: str) -> None:
    with pytest.raises(UnitError, match=problem):
        in_asked_unit(expression, "What is it?")


def test_dimensions_multiply_and_cancel() -> None:
    assert dimension_of("3 * metre * metre * metre / litre") == (("length", 3), ("volume", -1))
    assert dimension_of("2 * (3 * hour) ** 2 / minute / second") == ()
