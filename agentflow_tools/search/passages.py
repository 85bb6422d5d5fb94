"""Cut a document into passages small enough to rank and to quote to a model.

Passages follow the document's own paragraphs where they can, because a paragraph is usually
one topic; short paragraphs (headings, list items) are packed together with their neighbours
up to ``max_words``, and a paragraph longer than that is cut between sentences. A section
title in MediaWiki's plain-text form (``== Diet ==``) always starts a new passage, so that it
heads the text it names rather than trailing the section before.
"""

from __future__ import annotations

import re

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
#: MediaWiki plain-text extracts mark section titles as ``== Title ==``.
_WIKI_HEADING = re.compile(r"^(=+)\s*(.*?)\s*\1$")


def split_passages(text: str, *, max_words: int = 120) -> list[str]:
    """Passages of at most ``max_words`` words, in document order."""
    passages: list[str] = []
    for section in _sections(text):
        passages += _pack(_pieces(section, max_words), max_words, "\n")
    return passages


def _sections(text: str) -> list[str]:
    """``text`` cut before each wiki section title; sections with nothing but a title are dropped."""
    sections: list[tuple[str, list[str]]] = [("", [])]
    for line in text.splitlines():
        heading = _WIKI_HEADING.match(line.strip())
        if heading:
            sections.append((heading.group(2), []))
        else:
            sections[-1][1].append(line)
    return ["\n".join([title, *body]) for title, body in sections if any(line.strip() for line in body)]


def _pack(pieces: list[str], max_words: int, joiner: str) -> list[str]:
    """Join consecutive pieces while the result stays within ``max_words``."""
    packed: list[str] = []
    current: list[str] = []
    size = 0
    for piece in pieces:
        words = len(piece.split())
        if current and size + words > max_words:
            packed.append(joiner.join(current))
            current, size = [], 0
        current.append(piece)
        size += words
    if current:
        packed.append(joiner.join(current))
    return packed


def _pieces(text: str, max_words: int) -> list[str]:
    """Paragraphs (one per line), each cut into sentence groups of at most ``max_words`` words."""
    pieces: list[str] = []
    for line in text.splitlines():
        paragraph = " ".join(line.split())
        if not paragraph:
            continue
        if len(paragraph.split()) <= max_words:
            pieces.append(paragraph)
        else:
            pieces.extend(_cut_long(paragraph, max_words))
    return pieces


def _cut_long(paragraph: str, max_words: int) -> list[str]:
    parts = [part for sentence in _SENTENCE_END.split(paragraph) for part in _word_slices(sentence, max_words)]
    return _pack(parts, max_words, " ")


def _word_slices(sentence: str, max_words: int) -> list[str]:
    """A sentence longer than ``max_words`` (a table row, a run-on list) in word slices."""
    words = sentence.split()
    return [" ".join(words[i : i + max_words]) for i in range(0, len(words), max_words)]


def clip(text: str, max_chars: int) -> str:
    """``text`` shortened to ``max_chars`` at a word boundary, marked with an ellipsis when cut."""
    if len(text) <= max_chars:
        return text
    head = text[:max_chars]
    words = head.rsplit(maxsplit=1)
    return (words[0] if len(words) == 2 else head).rstrip() + " …"
