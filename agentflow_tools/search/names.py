"""The names a question asks about: what a search tool must hold a passage on to claim the question.

A name is a capitalised word that does not open a sentence ("Dov Kesante" in "How old would Dov
Kesante be in 2030?"), or a word written with capitals inside it ("McAllister", "iPhone"). The first
word of a sentence is capitalised whatever it is, so it names nothing; "I" never does.

>>> names_in("How old would Dov Kesante be in 2030?")
('Dov', 'Kesante')
>>> names_in("An inch is 2.54 centimetres. How many centimetres are 184 inches?")
()
>>> names_in("who wrote Dune?")
('Dune',)
"""

from __future__ import annotations

import re

_WORD = re.compile(r"[^\W\d_][\w'-]*")
_SENTENCE_END = re.compile(r"[.!?:]\s*$")


def names_in(text: str) -> tuple[str, ...]:
    """The names ``text`` mentions, each once, in order."""
    found: list[str] = []
    for match in _WORD.finditer(text):
        word = match.group()
        before = text[: match.start()]
        opens_sentence = not before.strip() or bool(_SENTENCE_END.search(before))
        capitalised = word[0].isupper() and not opens_sentence and word != "I"
        if (capitalised or any(ch.isupper() for ch in word[1:])) and word not in found:
            found.append(word)
    return tuple(found)


def names_all_in(names: tuple[str, ...], text: str) -> bool:
    """Whether ``text`` has each name as a word of its own, as written."""
    return all(re.search(rf"(?<!\w){re.escape(name)}(?!\w)", text) for name in names)
