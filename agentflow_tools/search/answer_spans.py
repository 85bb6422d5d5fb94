"""Short spans of a passage that could answer a question: a shortlist for a reader too small to quote.

SmolLM2-135M, given the passage "Pim Falelo is a glassblower, born in Prennquay in 1944." and asked
the year, wrote "In 2018, Pim Falelo was born in 2018" (issue 34): it cannot copy a span out of a
paragraph. It can choose one from a short list, as it chooses the number python_coder printed. So a
search tool offers the spans of its best passage: each number, and each run of words between
function words, common verbs and punctuation, less the words the question already has (the name
asked about is never its own answer).

>>> answer_spans("Pim Falelo is a glassblower, born in Prennquay in 1944.", "In what year was Pim Falelo born?")
('1944', 'Prennquay', 'glassblower')
>>> passage = "Tambmire is a town on the river Aube. It has a population of 49,033."
>>> answer_spans(passage, "Which river flows through Tambmire?")
('Aube', 'town', 'population', '49,033')
"""

from __future__ import annotations

import re

#: Words that join the facts of a sentence rather than state one: a span ends at each.
_FUNCTION = frozenset(
    """a an the this that these those it its it's he she they his her their them we our you your i
    and or but nor so yet as than then also too not no
    of in on at by for from to with without into onto over under about after before since until during
    between among through per via near
    is are was were be been being am has have had do does did will would can could may might must shall should
    which who whom whose what when where why how there here
    """.split()  # noqa: SIM905 (a word list reads best as words)
)
#: Verbs that state a relation: they end a span too, and a question that has one ("born") points at
#: the span beside it.
_RELATING = frozenset(
    "made makes make born founded based lives lived works worked flows flowed called named known located".split()  # noqa: SIM905
)
_JOINING = _FUNCTION | _RELATING
_TOKEN = re.compile(r"\d[\d,]*(?:\.\d+)?|[^\W\d_][\w'-]*|[^\w\s]")
#: The most spans offered: enough for a passage of a few sentences, few enough to choose among.
MAX_SPANS = 12
#: The longest span, in words.
MAX_SPAN_WORDS = 5


#: Questions whose answer is a number or a date: their numbers go first.
#: Questions whose answer is a name (of a person or a place): capitalised spans go first.
_ASKS_NAME = re.compile(r"^\s*(who|whom|where)\b", re.I)
_ASKS_NUMBER = re.compile(r"\b(how\s+(many|much|old|long|far)|when|what\s+year|which\s+year|population|number)\b", re.I)


def answer_spans(passage: str, question: str) -> tuple[str, ...]:
    """The spans of ``passage`` that may answer ``question``, each once, the likeliest first.

    Likeliest: a number first when the question asks for one ("how many", "when"), a name when it
    asks "who" or "where"; then the span closest to a common word of the question ("population" in
    "a population of 49,033", "employees" in "1470 employees"), as an answer is usually stated next
    to the words that ask for it. SmolLM2 picks the first of a list more often than any other, so
    the order is the part of the shortlist that matters most.
    """
    words = _TOKEN.findall(question)
    asked = {word.lower() for word in words}
    # Common words only: the name asked about stands next to every fact of its passage.
    cues = {_stem(word) for word in words if word.islower()} - {_stem(word) for word in _FUNCTION}
    tokens = _TOKEN.findall(passage)
    cue_positions = [i for i, token in enumerate(tokens) if _stem(token.lower()) in cues]
    found: dict[str, tuple[int, int]] = {}  # span -> (distance to the nearest cue, first position)
    run: list[str] = []

    def close(end: int) -> None:
        start = end - len(run)
        if run and len(run) <= MAX_SPAN_WORDS and " ".join(run) not in found:
            # Tokens between, doubled, plus one before the cue: "born in Prennquay" beats "glassblower, born".
            gaps = [2 * (cue - end) + 1 if cue >= end else 2 * (start - cue - 1) for cue in cue_positions]
            found[" ".join(run)] = (min(gaps, default=len(tokens)), start)
        run.clear()

    for position, token in enumerate(tokens):
        if token[0].isdigit():
            close(position)
            run.append(token.rstrip(","))
            close(position + 1)
        elif not token[0].isalpha() or token.lower() in _JOINING or token.lower() in asked:
            close(position)
        else:
            run.append(token)
    close(len(tokens))
    wants_number, wants_name = bool(_ASKS_NUMBER.search(question)), bool(_ASKS_NAME.search(question))

    def rank(span: str) -> tuple[bool, int, int]:
        other_kind = (wants_number and not span[0].isdigit()) or (wants_name and not span[0].isupper())
        return (other_kind, *found[span])

    return tuple(sorted(found, key=rank)[:MAX_SPANS])


def _stem(word: str) -> str:
    """A word less its plural or third-person ending: "makes" and "make", "employees" and "employee"."""
    return word[:-1] if len(word) > 3 and word.endswith("s") else word
