"""Short spans of a passage that could answer a question: a shortlist for a reader too small to quote.

SmolLM2-135M, given the passage "Pim Falelo is a glassblower, born in Prennquay in 1944." and asked
the year, wrote "In 2018, Pim Falelo was born in 2018" (issue 34): it cannot copy a span out of a
paragraph. It can choose one from a short list, as it chooses the number python_coder printed. So a
search tool offers the spans of its best passage: each number, and each run of words between
function words, common verbs and punctuation, less the words the question already has (the name
asked about is never its own answer).

>>> answer_spans("Pim Falelo is a glassblower, born in Prennquay in 1944.", "In what year was Pim Falelo born?")
('glassblower', 'Prennquay', '1944')
>>> passage = "Tambmire is a town on the river Aube. It has a population of 49,033."
>>> answer_spans(passage, "Which river flows through Tambmire?")
('town', 'Aube', 'population', '49,033')
"""

from __future__ import annotations

import re

#: Words that join the facts of a sentence rather than state one: a span ends at each.
_JOINING = frozenset(
    """a an the this that these those it its it's he she they his her their them we our you your i
    and or but nor so yet as than then also too not no
    of in on at by for from to with without into onto over under about after before since until during
    between among through per via near
    is are was were be been being am has have had do does did will would can could may might must shall should
    which who whom whose what when where why how there here
    made makes make born founded based lives lived works worked flows flowed called named known located
    """.split()  # noqa: SIM905 (a word list reads best as words)
)
_TOKEN = re.compile(r"\d[\d,]*(?:\.\d+)?|[^\W\d_][\w'-]*|[^\w\s]")
#: The most spans offered: enough for a passage of a few sentences, few enough to choose among.
MAX_SPANS = 12
#: The longest span, in words.
MAX_SPAN_WORDS = 5


def answer_spans(passage: str, question: str) -> tuple[str, ...]:
    """The spans of ``passage`` that may answer ``question``, in passage order, each once."""
    asked = {word.lower() for word in _TOKEN.findall(question)}
    spans: list[str] = []
    run: list[str] = []

    def close() -> None:
        if run and len(run) <= MAX_SPAN_WORDS and " ".join(run) not in spans:
            spans.append(" ".join(run))
        run.clear()

    for token in _TOKEN.findall(passage):
        lowered = token.lower()
        if token[0].isdigit():
            close()
            run.append(token.rstrip(","))
            close()
        elif not token[0].isalpha() or lowered in _JOINING or lowered in asked:
            close()
        else:
            run.append(token)
    close()
    return tuple(spans[:MAX_SPANS])
