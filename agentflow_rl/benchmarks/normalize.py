"""Answer normalisation shared by the QA scorers, as in SQuAD, HotpotQA and Search-R1.

Lower-case, drop punctuation and the articles a/an/the, squeeze whitespace. Unicode is folded
to NFKC first so that typographic variants (non-breaking spaces, full-width digits) compare equal;
accents are kept, because "Gülçiçek" and "Gulcicek" are different strings in the gold files.
"""

from __future__ import annotations

import re
import string
import unicodedata
from fractions import Fraction

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation + "‘’“”–—…")
_NUMBER = re.compile(r"^[-+]?(\d+(\.\d*)?|\.\d+)$")


def normalize_answer(text: str) -> str:
    """``"The  Eiffel-Tower!"`` -> ``"eiffeltower"``; see the module docstring for the rules."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = text.translate(_PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def answer_tokens(text: str) -> list[str]:
    return normalize_answer(text).split()


def as_number(text: str) -> Fraction | None:
    """``"138,535"``, ``"$72,641"``, ``"12%"``, ``"-1"`` as exact numbers; anything else ``None``.

    Lets ``1,000`` match ``1000`` where normalisation would glue the digits but keep ``1.5`` apart from ``15``.
    """
    cleaned = unicodedata.normalize("NFKC", text).strip().rstrip(".").replace(",", "").replace("−", "-")
    cleaned = cleaned.removeprefix("$").removesuffix("%").strip()
    if not _NUMBER.match(cleaned):
        return None
    return Fraction(cleaned)
