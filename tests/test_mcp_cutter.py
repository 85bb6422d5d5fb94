"""The cutter that bounds an MCP server's messages while they are read, fed as a pipe feeds it:
in chunks of any size, split anywhere (inside a UTF-8 character, an escape, a surrogate pair)."""

from __future__ import annotations

import json

import pytest

from agentflow_tools.mcp.cutter import TOO_LARGE_CODE, UNREAD, MessageCutter

SMILE = "\U0001f600"


def cut(messages: list[bytes], chunk: int, *, string: int = 100, message: int = 1 << 20) -> list[bytes]:
    cutter = MessageCutter(max_string_bytes=string, max_message_bytes=message)
    data = b"".join(m + b"\n" for m in messages)
    out = b"".join(cutter.feed(data[i : i + chunk]) for i in range(0, len(data), chunk)) + cutter.flush()
    return out.split(b"\n")[:-1]


def result(text: str, *, ascii_only: bool, id_last: bool = False) -> bytes:
    body = {"result": {"content": [{"type": "text", "text": text}]}}
    members = {**body, "jsonrpc": "2.0", "id": "r-7"} if id_last else {"jsonrpc": "2.0", "id": "r-7", **body}
    return json.dumps(members, ensure_ascii=ascii_only).encode()


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 64, 1 << 20])
@pytest.mark.parametrize("ascii_only", [True, False])
def test_messages_within_the_limits_pass_unchanged(chunk: int, ascii_only: bool) -> None:
    messages = [result(f'héllo "q" {SMILE} \\ é', ascii_only=ascii_only), b'{"jsonrpc":"2.0","method":"ping"}']
    assert cut(messages, chunk, string=1000) == messages


@pytest.mark.parametrize("chunk", [1, 3, 7, 64, 1 << 20])
@pytest.mark.parametrize("ascii_only", [True, False])
def test_a_long_string_is_cut_in_place_and_the_message_stays_valid(chunk: int, ascii_only: bool) -> None:
    text = f'ab\u00e9{SMILE}"\\' * 2000
    [line] = cut([result(text, ascii_only=ascii_only, id_last=True)], chunk)
    message = json.loads(line.decode("utf-8"))  # whole characters, whole escapes, valid JSON
    kept = message["result"]["content"][0]["text"]
    assert message["id"] == "r-7"
    assert text.startswith(kept.split(" … [cut while reading")[0])
    assert len(kept.encode()) < 200
    [unread] = UNREAD.findall(kept)  # what was dropped is counted: all but the ~100 bytes kept
    assert len(json.dumps(text, ensure_ascii=ascii_only)) - 120 < int(unread) < len(json.dumps(text))
    kept.encode("utf-8")  # no lone surrogate from a cut between the halves of a pair


@pytest.mark.parametrize("id_last", [False, True])
def test_a_message_too_large_even_when_cut_answers_its_request_with_an_error(id_last: bool) -> None:
    numbers = {"structuredContent": {"n": list(range(100_000))}}
    members = (
        {"result": numbers, "jsonrpc": "2.0", "id": 42} if id_last else {"jsonrpc": "2.0", "id": 42, "result": numbers}
    )
    small = result("fine", ascii_only=True)
    error, after = cut([json.dumps(members).encode(), small], 4096, string=1000, message=10_000)
    answer = json.loads(error)
    assert answer["id"] == 42 and answer["error"]["code"] == TOO_LARGE_CODE
    assert "more than 10000 bytes" in answer["error"]["message"]
    assert after == small  # the next message is read as usual


def test_a_notification_too_large_is_dropped_without_an_answer() -> None:
    huge = json.dumps({"jsonrpc": "2.0", "method": "notifications/message", "params": {"n": list(range(100_000))}})
    small = result("fine", ascii_only=True)
    assert cut([huge.encode(), small], 4096, string=1000, message=10_000) == [small]


def test_past_half_its_room_a_message_cuts_its_strings_short_but_keeps_its_keys() -> None:
    blocks = [{"type": "text", "text": "z" * 5000} for _ in range(40)]
    line = json.dumps({"jsonrpc": "2.0", "id": 1, "result": {"content": blocks}}).encode()
    [out] = cut([line], 65536, string=5000, message=50_000)
    content = json.loads(out)["result"]["content"]
    assert len(content) == 40 and all(block["type"] == "text" for block in content)
    assert content[0]["text"] == "z" * 5000 and len(content[-1]["text"]) < 400


def test_fifty_megabytes_pass_in_bounded_memory_and_seconds() -> None:
    line = result("x" * 50_000_000, ascii_only=True)
    cutter = MessageCutter(max_string_bytes=80_064, max_message_bytes=4 << 20)
    out = b"".join(cutter.feed(line[i : i + 65536]) for i in range(0, len(line), 65536)) + cutter.feed(b"\n")
    assert len(out) < 81_000
    assert json.loads(out)["result"]["content"][0]["text"].endswith("[cut while reading: 49919936 more bytes not read]")
