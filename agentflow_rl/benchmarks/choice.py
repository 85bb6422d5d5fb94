"""Multiple choice (MedQA, GPQA): the reply may name the option letter or the option text.

Accepted: ``C``, ``(C)``, ``C.``, ``C. Colorectal cancer``, ``Option C``, ``the answer is C``, or the
text ``Colorectal cancer`` alone. A reply whose text matches one option exactly picks it; otherwise
an option's text found inside the reply picks it only when no other option's text is found too
(options contained in a longer matching option do not count against it). A reply that writes out
several options (``A. ... B. ... C. ...``, small models echo the question) counts only through an
explicit ``<answer>``, ``\\boxed{}`` or ``The answer is ...``.

>>> from agentflow_core import BenchmarkItem
>>> item = BenchmarkItem("demo", "0", "?", answers=("Paris", "B"), choices={"A": "Rome", "B": "Paris"})
>>> score_choice(item, "(B) Paris").correct, score_choice(item, "Rome").correct
(True, False)
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from agentflow_core import BenchmarkItem, Score
from agentflow_rl.benchmarks.extract import candidates, explicit_answer, labelled
from agentflow_rl.benchmarks.normalize import normalize_answer

# Letters are upper case and followed by punctuation or the end, so that the article in "A patient ..." is no answer.
_LETTER_FIRST = re.compile(r"^\W*(?:(?i:option|choice|answer)\s*)?\(?([A-Z])(?:\)|[.:,\]]|$)")
_LETTER_SAID = re.compile(r"\b(?i:answer|option|choice)\s*(?i:is|:)?\s*\(?([A-Z])(?:\)|[.:,\]\s]|$)")


def gold_letters(item: BenchmarkItem) -> set[str]:
    """The option letters that the gold answers name, by letter or by text."""
    letters = {a.strip().upper() for a in item.answers if a.strip().upper() in item.choices}
    wanted = {normalize_answer(a) for a in item.answers}
    letters |= {letter for letter, text in item.choices.items() if normalize_answer(text) in wanted}
    return letters


def pick_option(span: str, choices: Mapping[str, str]) -> str | None:
    """The letter of the option that ``span`` names, or ``None`` when it names none (or several)."""
    for pattern in (_LETTER_FIRST, _LETTER_SAID):
        found = pattern.search(span.strip())
        if found and found.group(1) in choices:
            letter = found.group(1)
            # "A patient ..." starts with a capital A too: a letter must not be followed by another option's text.
            rest = normalize_answer(span.strip()[found.end() :])
            if not rest or rest in normalize_answer(choices[letter]) or not _texts_in(rest, choices):
                return letter
    said = normalize_answer(span)
    exact = [letter for letter, text in choices.items() if normalize_answer(text) == said]
    if exact:
        return exact[0]
    inside = _texts_in(said, choices)
    return inside[0] if len(inside) == 1 else None


def _texts_in(said: str, choices: Mapping[str, str]) -> list[str]:
    padded = f" {said} "
    found = {letter: normalize_answer(text) for letter, text in choices.items()}
    found = {letter: text for letter, text in found.items() if text and f" {text} " in padded}
    # Drop options whose text is part of another found option's text ("cancer" inside "colorectal cancer").
    return [
        letter for letter, text in found.items() if not any(text != other and text in other for other in found.values())
    ]


def listed_options(response: str, choices: Mapping[str, str]) -> list[str]:
    """Option letters the reply writes out as ``X. something``; several mean it is repeating the options."""
    found = re.findall(r"(?:^|\s)\(?([A-Z])[.)]\s+\S", response)
    return sorted({letter for letter in found if letter in choices})


def score_choice(item: BenchmarkItem, response: str) -> Score:
    golds = gold_letters(item)
    spans = candidates(response)
    if len(listed_options(response, item.choices)) > 1:
        # Only an explicit commitment counts after an echo of the options; its last line is just option D.
        explicit = explicit_answer(response) or labelled(response)
        spans = [explicit] if explicit else []
    for span in spans:
        letter = pick_option(span, item.choices)
        if letter is not None:
            ok = letter in golds
            return Score(correct=ok, value=float(ok), method="choice", extracted=f"{letter}. {item.choices[letter]}")
    return Score(correct=False, value=0.0, method="choice", extracted="")
