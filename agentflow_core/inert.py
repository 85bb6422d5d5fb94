"""Text made inert for a terminal or a log: what a model, a tool, a web page or an MCP server wrote
cannot clear the screen, move the cursor, retitle the window, plant a hyperlink, overwrite a line
or reorder what the reader sees.

Two kinds of character are written as their escape (``\\x1b``, ``\\x9b``, ``\\r``, ``\\u202e``), so
the text still reads and the reader sees that something was there:

- every control character a terminal acts on instead of showing: C0 (ESC, BEL, backspace,
  carriage return ...), DEL and C1 (CSI 0x9b, OSC 0x9d, NEL ...); newlines and tabs too, unless the
  text is meant to have lines;
- the invisible characters that reorder or hide text: bidi marks, embeddings, overrides and
  isolates, zero-width spaces, word joiners, invisible operators, line and paragraph separators,
  Hangul fillers, interlinear annotations and Unicode tags (which can smuggle a hidden message to
  a model). Lone surrogates are escaped too: no terminal encoding can write them.

The zero-width joiner and non-joiner stay: emoji and several scripts need them, and they move
nothing. Backslashes are left alone, so ``\\x1b`` in the output is either an escaped ESC or those
four characters; neither does anything.

Escaping is for display only. Trajectories and results files keep the exact text, and JSON on a
terminal (``--json``) escapes the same characters the JSON way (``inert_json``), which any parser
reads back as the original.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

_CONTROLS = "\x00-\x08\x0b-\x1f\x7f-\x9f"
_INVISIBLE = (
    "\u061c\u115f\u1160\u180e\u200b\u200e\u200f\u2028-\u202e\u2060-\u206f\u3164\ufeff\uffa0\ufff9-\ufffb"
    "\U000e0000-\U000e007f"
)
_SURROGATES = "\ud800-\udfff"
_IN_TEXT = re.compile(f"[{_CONTROLS}{_INVISIBLE}{_SURROGATES}]")
_IN_LINE = re.compile(f"[\t\n{_CONTROLS}{_INVISIBLE}{_SURROGATES}]")
#: JSON already writes C0 as ``\\u00XX``; what is left is DEL, C1 and the invisible characters.
_IN_JSON = re.compile(f"[\x7f-\x9f{_INVISIBLE}{_SURROGATES}]")
_SHORT = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def inert(text: str, *, keep_lines: bool = False) -> str:
    """``text`` with every character a terminal would act on, or that hides or reorders text, escaped.

    ``keep_lines``: newlines and tabs pass (a Windows ``\\r\\n`` becomes ``\\n``), for an answer or a
    report meant to have lines; otherwise the result is one line, as a name or an error should be.
    """
    if keep_lines:
        return _IN_TEXT.sub(_escape, text.replace("\r\n", "\n"))
    return _IN_LINE.sub(_escape, text)


def inert_json(text: str) -> str:
    """JSON ``text`` (as ``json.dumps(..., ensure_ascii=False)`` writes it) with the characters that
    ``inert`` escapes written as ``\\uXXXX``: the same JSON value, safe to show."""
    return _IN_JSON.sub(_json_escape, text)


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char in _SHORT:
        return _SHORT[char]
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def _json_escape(match: re.Match[str]) -> str:
    # json.dumps with ensure_ascii writes the character as \uXXXX, a surrogate pair above the BMP.
    return json.dumps(match.group(), ensure_ascii=True)[1:-1]


class InertLogFormatter(logging.Formatter):
    """Formats a record as usual, made inert: a log line may quote a request or a server.

    The message stays one line, so that it cannot forge records of its own; a traceback keeps its
    lines.
    """

    def formatMessage(self, record: logging.LogRecord) -> str:
        return inert(super().formatMessage(record))

    def formatException(self, ei: Any) -> str:
        return inert(super().formatException(ei), keep_lines=True)

    def formatStack(self, stack_info: str) -> str:
        return inert(super().formatStack(stack_info), keep_lines=True)
