from __future__ import annotations

import pytest

from agentflow_core.structured import object_schema, parse_object

SCHEMA = object_schema(
    {
        "context": {"type": "string"},
        "sub_goal": {"type": "string"},
        "tool": {"type": "string", "enum": ["base_generator", "python_coder"]},
    }
)


def test_valid_json_parses_without_error() -> None:
    parsed = parse_object('{"context": "c", "sub_goal": "g", "tool": "python_coder"}', SCHEMA)
    assert parsed.values == {"context": "c", "sub_goal": "g", "tool": "python_coder"}
    assert parsed.error is None


@pytest.mark.parametrize(
    "text",
    [
        'Sure!\n```json\n{"context": "c", "sub_goal": "g", "tool": "python_coder"}\n```\nHope it helps.',
        'Here you go: {"context": "c", "sub_goal": "g", "tool": "python_coder"} -- done',
        '{"context": "c", "sub_goal": "g", "tool": "Python_Coder"}',
    ],
)
def test_json_wrapped_in_prose_or_fences_is_found(text: str) -> None:
    parsed = parse_object(text, SCHEMA)
    assert parsed.values == {"context": "c", "sub_goal": "g", "tool": "python_coder"}
    assert parsed.error is None


def test_labelled_lines_are_read_and_reported() -> None:
    text = "**Context:** we know nothing\nSub-goal: compute 17*23\nand print it\nTool: I will use python_coder"
    parsed = parse_object(text, SCHEMA)
    assert parsed.values == {
        "context": "we know nothing",
        "sub_goal": "compute 17*23\nand print it",
        "tool": "python_coder",
    }
    assert parsed.error is not None and "not JSON" in parsed.error


def test_garbage_reports_missing_fields() -> None:
    parsed = parse_object("I don't know what to do. {not json", SCHEMA)
    assert parsed.values == {}
    assert parsed.error is not None and "missing context, sub_goal, tool" in parsed.error


def test_enum_outside_choices_is_rejected_when_ambiguous() -> None:
    parsed = parse_object('{"context": "", "sub_goal": "g", "tool": "base_generator or python_coder"}', SCHEMA)
    assert "tool" not in parsed.values
    assert parsed.error is not None and "is not one of" in parsed.error


def test_non_string_values_are_stringified() -> None:
    parsed = parse_object('{"context": 3, "sub_goal": ["a", "b"], "tool": "base_generator"}', SCHEMA)
    assert parsed.values["context"] == "3"
    assert parsed.values["sub_goal"] == '["a", "b"]'


def test_object_fields_are_kept_as_mappings() -> None:
    schema = object_schema({"explanation": {"type": "string"}, "arguments": {"type": "object"}})
    parsed = parse_object('{"explanation": "e", "arguments": {"query": "q"}}', schema)
    assert parsed.values["arguments"] == {"query": "q"}
    bad = parse_object('{"explanation": "e", "arguments": "nope"}', schema)
    assert "arguments" not in bad.values and bad.error is not None
