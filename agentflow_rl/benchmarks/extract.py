"""Finding the answer inside a model's reply.

Replies range from a bare ``42`` to a page of reasoning. In order of trust: a last line that starts
with ``Answer:`` (how AgentFlow's generator ends every reply: its reasoning, then the short answer on
a line of its own), the last ``<answer>…</answer>`` (the format the paper's prompts ask for), the last
``\\boxed{…}`` (math models), a labelled ``the final answer is …`` phrase, and finally the last
non-empty line. Without an explicit answer, ``candidates`` adds the first line and first sentence, for
replies that *start* with the answer; scorers that compare exactly (EM, option letters) try each
candidate.
"""

from __future__ import annotations

import re

_ANSWER_LINE = re.compile(r"^[ \t*_#>]*(?:final\s+)?answer[ \t*_]*:[ \t*_]*(.*?)[ \t]*$", re.I | re.M)
_TAGGED = re.compile(r"<answer>(.*?)(?:</answer>|$)", re.S | re.I)
_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")
_LABELLED = re.compile(
    r"\b(?:final answer|answer)(?: to (?:this|the) question)?\s*(?:is|:)\s*[:\-]?\s*(.+?)\s*$", re.I | re.M
)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_YES_NO = re.compile(r"^\W*(yes|no)\b\s*[,.!;:]", re.I)


def answer_line(text: str) -> str | None:
    """The short answer of a reply that ends with an ``Answer: …`` line (``**Final answer:** …`` too).

    Only the last non-empty line counts: a reply that says ``Answer:`` earlier and goes on did not end
    with its answer, and "The answer is ..." in prose is :func:`labelled`'s job.
    """
    found = _ANSWER_LINE.fullmatch(last_line(text))
    if found is None:
        return None
    return _strip_decoration(found.group(1)) or None


def explicit_answer(text: str) -> str | None:
    """The answer a reply commits to: its ``Answer:`` line, else its last ``<answer>`` tag or ``\\boxed{}``.

    An ``Answer:`` line may itself hold a tag, a box or a phrase (``Answer: \\boxed{42}``, ``Answer: The
    answer is 42``); then that is the answer.
    """
    line = answer_line(text)
    if line is not None:
        return tagged(line) or boxed(line) or labelled(line) or line
    return tagged(text) or boxed(text)


def tagged(text: str) -> str | None:
    """The content of the last ``<answer>`` tag (an unclosed last tag runs to the end)."""
    found = _TAGGED.findall(text)
    return found[-1].strip() if found else None


def boxed(text: str) -> str | None:
    """The content of the last ``\\boxed{…}``, braces balanced."""
    starts = [m.end() for m in _BOXED.finditer(text)]
    for start in reversed(starts):
        depth = 1
        for pos in range(start, len(text)):
            depth += {"{": 1, "}": -1}.get(text[pos], 0)
            if depth == 0:
                return text[start:pos].strip()
    return None


def labelled(text: str) -> str | None:
    """``The answer is: X`` -> ``X``, also when small models nest it (``The answer is: "The answer is: X"``)."""
    found = None
    for _ in range(5):
        matches = _LABELLED.findall(_strip_decoration(found) if found else text)
        if not matches:
            break
        found = matches[-1]
    return _strip_decoration(found) if found else None


def last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def first_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0] if lines else ""


def first_sentence(text: str) -> str:
    return _SENTENCE_END.split(first_line(text), maxsplit=1)[0].strip()


def extract_answer(text: str) -> str:
    """The single most trustworthy answer span of ``text`` (see the module docstring)."""
    for finder in (explicit_answer, labelled):
        found = finder(text)
        if found:
            return found
    return last_line(text)


def candidates(text: str) -> list[str]:
    """Answer spans to try, most trusted first, without duplicates or empties.

    An explicit answer (``Answer:`` line, ``<answer>``, ``\\boxed{}``) is the only candidate: a reply
    that commits to an answer is held to it.
    """
    explicit = explicit_answer(text)
    if explicit:
        return list(dict.fromkeys(s for s in (explicit, _strip_decoration(explicit)) if s))
    spans = [extract_answer(text), first_sentence(text), first_line(text)]
    spans += [_strip_decoration(s) for s in spans]
    # "No, the two rivers are in different countries." answers a yes/no question with its first word.
    spans += [found.group(1) for s in spans if (found := _YES_NO.match(s))]
    return list(dict.fromkeys(s for s in spans if s))


def _strip_decoration(span: str) -> str:
    """Markdown emphasis, a trailing full stop and wrapping quotes around an answer."""
    span = span.strip().strip("*_`").strip()
    if len(span) > 1 and span[0] == span[-1] and span[0] in "\"'":
        span = span[1:-1]
    return span.rstrip(".").strip()
