"""``inert``: hostile text shown as its escapes, ordinary text left alone, JSON kept exact."""

from __future__ import annotations

import json
import logging
import sys

import pytest

from agentflow_core.inert import InertLogFormatter, inert, inert_json
from tests.hostile import ESCAPED, PAYLOAD, raw_characters


def test_every_trick_is_escaped_and_still_reads() -> None:
    line = inert(PAYLOAD)
    assert raw_characters(line) == []
    assert "\n" not in line
    for piece in ESCAPED:
        assert piece in line
    assert line.startswith("clear\\x1b[2J\\x1b[H|title")
    assert "|zw\\u200bsp|ls\\u2028sep" in line


@pytest.mark.parametrize(
    "text",
    [
        "plain ASCII, with punctuation: (a) [b] {c} ~ \\ / 100%",
        "Ünïcödé, 中文　全角スペース, עברית, العربية, हिन्दी, emoji 👨\u200d👩\u200d👧 and 🇯🇵",
        "a path C:\\Users\\me and a regex \\d+\\s*",
    ],
)
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert inert(text) == text
    assert inert(text, keep_lines=True) == text


def test_lines_are_kept_only_when_asked() -> None:
    text = "first line\n\tindented\r\nwindows line\rnot a line"
    assert inert(text) == "first line\\n\\tindented\\r\\nwindows line\\rnot a line"
    assert inert(text, keep_lines=True) == "first line\n\tindented\nwindows line\\rnot a line"


def test_escaping_twice_changes_nothing() -> None:
    once = inert(PAYLOAD, keep_lines=True)
    assert inert(once, keep_lines=True) == once
    assert inert(inert(PAYLOAD)) == inert(PAYLOAD)


def test_a_lone_surrogate_becomes_its_escape_and_can_be_written_as_utf8() -> None:
    shown = inert("broken \ud83d pair")
    assert shown == "broken \\ud83d pair"
    shown.encode("utf-8")


def test_json_stays_the_same_value() -> None:
    value = {"text": PAYLOAD, "lone": "\udc80", "nested": [PAYLOAD, {"k\u202e": "v\x85"}]}
    text = json.dumps(value, ensure_ascii=False, indent=2)
    shown = inert_json(text)
    assert raw_characters(shown) == []
    assert json.loads(shown) == value
    assert "\\u009b2J" in shown and "\\u202e" in shown and "\\udb40\\udc41" in shown
    assert inert_json(json.dumps({"a": "中文 ü"}, ensure_ascii=False)) == '{"a": "中文 ü"}'


def test_a_log_record_is_formatted_then_made_inert() -> None:
    try:
        raise ValueError(PAYLOAD)
    except ValueError:
        info = sys.exc_info()
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "got %s\nfake: record", (PAYLOAD,), info)
    shown = InertLogFormatter("%(levelname)s %(message)s").format(record)
    assert raw_characters(shown) == []
    assert shown.startswith("ERROR got clear\\x1b[2J")
    assert "ls\\u2028sep\\nfake: record\nTraceback" in shown  # the message cannot forge a record
    assert "Traceback (most recent call last):\n" in shown  # a traceback keeps its lines
    assert "ValueError: clear\\x1b[2J" in shown
