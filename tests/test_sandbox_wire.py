"""The sandbox's pieces that need no Docker daemon: the wire format, Docker's framing, the stream, settings."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from agentflow_core import ConfigError, structure_settings
from agentflow_tools.python_coder import Settings
from agentflow_tools.sandbox import DockerSandbox, ExecutionResult, Sandbox, SandboxError
from agentflow_tools.sandbox.protocol import (
    MAX_CODE_BYTES,
    FrameReader,
    ProtocolError,
    decode_output,
    encode_request,
    parse_header,
    result_from,
)
from agentflow_tools.sandbox.runner import Capture, Inbox, parse_exit
from agentflow_tools.sandbox.stream import RunnerStream, StreamClosed


def frame(kind: int, payload: bytes) -> bytes:
    return bytes([kind, 0, 0, 0]) + len(payload).to_bytes(4, "big") + payload


def test_a_request_carries_the_limits_and_the_code() -> None:
    assert encode_request("print('é')", 2.5, 100) == b"RUN 2.5 400 11\nprint('\xc3\xa9')"
    with pytest.raises(SandboxError, match="at most"):
        encode_request("#" * (MAX_CODE_BYTES + 1), 1, 100)


def test_the_report_header_is_parsed_strictly() -> None:
    header = parse_header(b"RESULT 0 0 0 1 0.0123 3 0 3 0", 100)
    assert (header.exit_code, header.healthy, header.body_size) == (0, True, 3)
    assert result_from(header, b"42\n", 100) == ExecutionResult("42\n", "", 0, elapsed_s=0.0123)
    for bad in (
        b"RESULT 0 0 0 1 0.1 3 0 3",  # a field short
        b"RESULT 0 0 0 1 fast 3 0 3 0",  # not a number
        b"RESULT 0 0 0 1 0.1 3 0 9 0",  # keeps more than was written
        b"RESULT 0 0 0 1 0.1 9000 0 9000 0",  # more than the limit allows
        b"READY 1",
    ):
        with pytest.raises(ProtocolError):
            parse_header(bad, 100)


def test_output_is_decoded_with_replacement_and_cut_in_characters() -> None:
    assert decode_output("é\xff".encode("latin-1"), 2, 10) == ("\ufffd\ufffd", False)
    assert decode_output(b"abcdef", 6, 4) == ("abcd", True)
    assert decode_output(b"abcdef", 6, 4, tail=True) == ("cdef", True)
    assert decode_output(b"abc", 10, 4) == ("abc", True)  # the runner dropped bytes


def test_docker_frames_are_reassembled_however_they_are_cut() -> None:
    stream = frame(1, b"RESULT 0 0 0 1 0.0 2") + frame(2, b"warning\n") + frame(1, b" 0 2 0\nok")
    reader = FrameReader()
    for i in range(len(stream)):  # one byte at a time: the worst cut
        reader.feed(stream[i : i + 1])
    assert reader.take_line(256) == b"RESULT 0 0 0 1 0.0 2 0 2 0"
    assert reader.take(2) == b"ok" and reader.take(1) is None
    assert bytes(reader.stderr) == b"warning\n"


def test_docker_framing_errors_and_long_lines_are_protocol_errors() -> None:
    with pytest.raises(ProtocolError, match="frame"):
        FrameReader().feed(b"\x07\x00\x00\x00\x00\x00\x00\x01x")
    reader = FrameReader()
    reader.feed(frame(1, b"x" * 300))
    with pytest.raises(ProtocolError, match="longer than 256"):
        reader.take_line(256)


def test_the_runners_stderr_keeps_only_its_end() -> None:
    reader = FrameReader(stderr_limit=10)
    reader.feed(frame(2, b"0123456789abcdef"))
    assert bytes(reader.stderr) == b"6789abcdef"


def test_the_stream_reads_to_a_deadline_and_notices_the_end() -> None:
    ours, theirs = socket.socketpair()
    stream = RunnerStream(ours)
    assert stream.idle_and_open()
    theirs.sendall(frame(1, b"READY 1\n"))
    assert stream.read_line(256, time.monotonic() + 5) == b"READY 1"
    with pytest.raises(TimeoutError):
        stream.read_line(256, time.monotonic() + 0.05)
    theirs.sendall(frame(1, b"unasked"))
    assert not stream.idle_and_open()  # a runner may not speak between runs
    theirs.close()
    with pytest.raises(StreamClosed):
        stream.read_exact(100, time.monotonic() + 5)
    stream.close()


def test_a_long_request_goes_out_after_the_idle_check() -> None:
    """The idle check leaves the socket non-blocking; a request larger than the socket buffer still goes."""
    ours, theirs = socket.socketpair()
    stream = RunnerStream(ours)
    assert stream.idle_and_open()
    received = bytearray()

    def drain() -> None:
        while len(received) < 2_000_000 and (chunk := theirs.recv(65536)):
            received.extend(chunk)

    reader = threading.Thread(target=drain)
    reader.start()
    stream.send(b"x" * 2_000_000, time.monotonic() + 30)
    reader.join(timeout=30)
    assert len(received) == 2_000_000
    stream.close()
    theirs.close()


def test_closing_the_stream_wakes_a_blocked_reader() -> None:
    ours, theirs = socket.socketpair()
    stream = RunnerStream(ours)
    failures: list[BaseException] = []

    def read() -> None:
        try:
            stream.read_line(256, time.monotonic() + 60)
        except BaseException as exc:
            failures.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    stream.close()
    reader.join(timeout=30)
    assert not reader.is_alive() and isinstance(failures[0], StreamClosed)
    theirs.close()


def test_capture_keeps_head_or_tail_and_counts_everything() -> None:
    head, tail = Capture(40, "head"), Capture(40, "tail")
    for capture in (head, tail):
        for i in range(100):
            capture.add(f"line {i}\n".encode())
    assert head.kept() == b"line 0\nline 1\nline 2\nline 3\nline 4\nline "
    assert tail.kept().endswith(b"line 98\nline 99\n") and len(tail.kept()) == 40
    assert head.total == tail.total == 790


def test_the_runners_inbox_splits_lines_and_payloads() -> None:
    read, write = socket.socketpair()
    inbox = Inbox(read.fileno())
    write.sendall(b"HELLO 1\nRUN 1 400 5\nprintC\n")
    assert inbox.line() == b"HELLO 1" and inbox.line() == b"RUN 1 400 5"
    assert inbox.exact(5) == b"print" and inbox.pending() and inbox.line() == b"C"
    write.sendall(b"x" * 300)
    assert inbox.line() is None  # no line is that long
    assert parse_exit(b"E-9\n") == -9 and parse_exit(b"E9") is None and parse_exit(b"") is None
    read.close()
    write.close()


def test_settings_are_checked_when_the_config_is_read() -> None:
    with pytest.raises(ConfigError, match=r"^tools\.python_coder: pool_size: expected an integer$"):
        structure_settings(Settings, {"pool_size": "two"}, where="tools.python_coder")
    with pytest.raises(ConfigError, match="memory_mb"):
        structure_settings(Settings, {"memory_mb": 8}, where="tools.python_coder")
    with pytest.raises(ConfigError, match="colour"):
        structure_settings(Settings, {"colour": "red"}, where="tools.python_coder")
    settings = structure_settings(Settings, {"image": "x", "timeout_s": 3}, where="t")
    assert settings.timeout_s == 3.0 and structure_settings(Settings, {}, where="t").image is None


def test_execution_result_describes_its_ending() -> None:
    assert ExecutionResult("", "", 1).describe() == "exit code 1"
    assert ExecutionResult("", "", -9, timed_out=True, truncated=True).describe() == "timed out, output truncated"
    assert ExecutionResult("", "", -9, oom=True).describe() == "out of memory"
    assert ExecutionResult("", "", -15).describe() == "killed by signal 15"
    assert isinstance(DockerSandbox(), Sandbox)
