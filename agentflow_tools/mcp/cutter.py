"""Cutting an MCP server's messages down to size while they are read, before anything holds them whole.

A tool result is cut to ``max_result_chars`` in the end, but a server can send 50 MB first, and the
SDK would hold that line, its parsed copy and its pydantic model at once (718 MB for 50 MB, #33).
:class:`MessageCutter` sits on the byte stream instead: it passes newline-delimited JSON through,
cuts every string longer than ``max_string_bytes`` (keeping its start and appending a marker inside
the string, so the message stays valid JSON), and replaces a message that is still longer than
``max_message_bytes`` (thousands of numbers, say) by a JSON-RPC error answering the same request.
It never holds more than one cut message.

It understands only what it must: strings, escapes, nesting, and the top-level ``"id"`` of a message.

A stdio server's output reaches the SDK through this file run as a script (:func:`relay`): the SDK
starts ``python -I -S cutter.py ... -- COMMAND ARGS``, the relay starts the server with the same
stdin and stderr and passes its stdout on, cut. Run as a script, it imports nothing but the standard
library, so that it starts in milliseconds; the SDK stops it and the server together (one process group).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys

#: JSON-RPC's "internal error": the client, not the server, could not take the answer.
TOO_LARGE_CODE = -32603

_OUTSIDE = re.compile(rb'["\n{}\[\],:]')
_INSIDE = re.compile(rb'["\\\n]')
_HIGH_SURROGATE = re.compile(rb"\\u[dD][89abAB][0-9a-fA-F]{2}$")
#: Room an escape may take: two ``\uXXXX`` for a character outside the Basic Multilingual Plane.
_ESCAPE_ROOM = 12
#: Longest top-level id or key kept to recognise ``"id"`` and answer with it.
_TOKEN_BYTES = 128
#: Once a message has taken half its room, longer strings are cut to this; keys and type names fit.
_TIGHT_STRING_BYTES = 256
#: Ends a string cut while reading (it stays inside the string); ``UNREAD`` finds it and its count.
UNREAD_MARK = " … [cut while reading: {} more bytes not read]"
UNREAD = re.compile(r" … \[cut while reading: (\d+) more bytes not read\]")
#: What the relay writes on stderr, and exits with, when the server's command cannot start.
NOT_FOUND, NOT_RUNNABLE = "agentflow mcp relay: command not found: ", "agentflow mcp relay: cannot run command: "


class MessageCutter:
    """Feed it bytes as they arrive; it returns the bytes to pass on, each message cut to size."""

    def __init__(self, *, max_string_bytes: int, max_message_bytes: int) -> None:
        self.max_string_bytes = max_string_bytes
        self.max_message_bytes = max_message_bytes
        self._reset()

    def feed(self, data: bytes) -> bytes:
        out = bytearray()
        i = 0
        while i < len(data):
            i = self._string_part(data, i) if self._in_string else self._structure_part(data, i)
            if self._ended:
                out += self._finished_message()
        return bytes(out)

    def flush(self) -> bytes:
        """What is left at the end of the stream (a last message without its newline)."""
        if not self._message and not self._dropped_message:
            return b""
        self._newline = False
        return self._finished_message()

    # -- one message ---------------------------------------------------------------------------

    def _reset(self) -> None:
        self._message = bytearray()
        self._dropped_message = 0
        self._in_string = False
        self._escape = b""
        self._string_kept = 0
        self._string_dropped = 0
        self._keep_next_escape = False
        self._depth = 0
        self._token: bytearray | None = None
        self._key = b""
        self._id: bytes | None = None
        self._ended = False
        self._newline = True

    def _emit(self, data: bytes | bytearray) -> None:
        if self._dropped_message or len(self._message) + len(data) > self.max_message_bytes:
            self._dropped_message += len(data)
            return
        self._message += data

    def _finished_message(self) -> bytes:
        message = self._too_large() if self._dropped_message else bytes(self._message)
        newline = self._newline
        self._reset()
        return message + (b"\n" if newline and message else b"")

    def _too_large(self) -> bytes:
        """The error that answers a message too large to pass on; nothing when it answered no request."""
        if self._id is None:
            return b""
        size = len(self._message) + self._dropped_message
        text = f"the server's message took more than {self.max_message_bytes} bytes ({size} after cutting long texts)"
        error = json.dumps({"code": TOO_LARGE_CODE, "message": text})
        return b'{"jsonrpc":"2.0","id":' + self._id + b',"error":' + error.encode() + b"}"

    # -- outside strings -----------------------------------------------------------------------

    def _structure_part(self, data: bytes, i: int) -> int:
        found = _OUTSIDE.search(data, i)
        end = found.start() if found else len(data)
        self._emit(data[i:end])
        self._collect(data[i:end])
        if found is None:
            return end
        char = data[end : end + 1]
        if char == b"\n":
            self._ended = True
            return end + 1
        self._emit(char)
        if char == b'"':
            self._in_string = True
            self._string_kept = self._string_dropped = 0
            self._collect(char)
        elif char in b"{[":
            self._depth += 1
            if self._depth == 1:
                self._token = bytearray()
        elif char in b"}]":
            self._end_value()
            self._depth -= 1
        elif self._depth == 1 and char == b":":
            self._key, self._token = bytes(self._token or b"").strip(), bytearray()
        elif self._depth == 1 and char == b",":
            self._end_value()
        return end + 1

    def _collect(self, data: bytes) -> None:
        if self._depth == 1 and self._token is not None and len(self._token) < _TOKEN_BYTES:
            self._token += data[: _TOKEN_BYTES - len(self._token)]

    def _end_value(self) -> None:
        """A top-level member ended; remember it if it was the id, and start reading the next key."""
        if self._depth != 1:
            return
        if self._key == b'"id"' and self._token is not None:
            self._id = bytes(self._token).strip() or None
        self._key, self._token = b"", bytearray()

    # -- inside strings ------------------------------------------------------------------------

    def _string_part(self, data: bytes, i: int) -> int:
        if self._escape:
            return self._escape_part(data, i)
        found = _INSIDE.search(data, i)
        end = found.start() if found else len(data)
        self._text(data[i:end])
        if found is None:
            return end
        char = data[end : end + 1]
        if char == b"\\":
            self._escape = char
            return end + 1
        if char == b"\n":  # not JSON; end the message here and let the reader say so
            self._in_string = False
            self._ended = True
            return end + 1
        self._close_string()
        return end + 1

    def _escape_part(self, data: bytes, i: int) -> int:
        want = 6 if self._escape[1:2] == b"u" else 2
        take = data[i : i + max(1, want - len(self._escape))]
        self._escape += take
        if len(self._escape) >= 2 and self._escape[1:2] == b"u" and len(self._escape) < 6:
            return i + len(take)
        escape, self._escape = self._escape, b""
        self._whole_unit(escape)
        return i + len(take)

    def _text(self, text: bytes) -> None:
        """Plain string bytes: kept while there is room, cut at a character boundary, the rest counted."""
        if self._string_dropped:
            self._string_dropped += len(text)
            return
        room = self._string_room() - self._string_kept
        if len(text) <= room:
            self._keep(text)
            return
        cut = max(0, room)
        while cut < len(text) and 0x80 <= text[cut] < 0xC0:  # finish the UTF-8 character under way
            cut += 1
        self._keep(text[:cut])
        self._string_dropped += len(text) - cut

    def _whole_unit(self, escape: bytes) -> None:
        """An escape is kept whole or not at all; the low half of a surrogate pair follows its high half."""
        fits = not self._string_dropped and self._string_kept + _ESCAPE_ROOM <= self._string_room()
        if fits or self._keep_next_escape:
            self._keep_next_escape = bool(_HIGH_SURROGATE.search(escape)) and not self._keep_next_escape
            self._keep(escape)
        else:
            self._string_dropped += len(escape)

    def _string_room(self) -> int:
        """Room for one string: ``max_string_bytes``, less once the message has used half of its own room."""
        if len(self._message) * 2 < self.max_message_bytes:
            return self.max_string_bytes
        return min(self.max_string_bytes, _TIGHT_STRING_BYTES)

    def _keep(self, text: bytes) -> None:
        self._string_kept += len(text)
        self._emit(text)
        self._collect(text)

    def _close_string(self) -> None:
        if self._string_dropped:
            self._emit(UNREAD_MARK.format(self._string_dropped).encode())
        self._emit(b'"')
        self._collect(b'"')
        self._in_string = False
        self._keep_next_escape = False


def read_limits(max_result_chars: int) -> dict[str, int]:
    """What to keep of a server's messages for results of ``max_result_chars``: four bytes (UTF-8's most)
    for every character of one text, and room for many such texts in one message, but not hundreds of MB."""
    string = 4 * max_result_chars + 64
    return {"max_string_bytes": string, "max_message_bytes": max(4 << 20, 4 * string)}


def relay_command(command: str, args: list[str], *, max_string_bytes: int, max_message_bytes: int) -> list[str]:
    """The command line that runs ``command`` behind the relay."""
    limits = ["--max-string-bytes", str(max_string_bytes), "--max-message-bytes", str(max_message_bytes)]
    return [sys.executable, "-I", "-S", os.path.abspath(__file__), *limits, "--", command, *args]


def relay(argv: list[str]) -> int:
    """Start the server, pass its stdout on through a :class:`MessageCutter`; its exit status is ours."""
    parser = argparse.ArgumentParser(prog="cutter.py")
    parser.add_argument("--max-string-bytes", type=int, required=True)
    parser.add_argument("--max-message-bytes", type=int, required=True)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    options = parser.parse_args(argv)
    command = options.command[1:] if options.command[:1] == ["--"] else options.command
    try:
        server = subprocess.Popen(command, stdout=subprocess.PIPE)  # stdin and stderr: ours, shared
    except FileNotFoundError:
        sys.stderr.write(f"{NOT_FOUND}{command[0]}\n")
        return 127
    except OSError as exc:
        sys.stderr.write(f"{NOT_RUNNABLE}{exc.strerror or exc}\n")
        return 126
    # A SIGTERM for the relay alone (not its group) still reaches the server.
    signal.signal(signal.SIGTERM, lambda *_: server.terminate())
    cutter = MessageCutter(max_string_bytes=options.max_string_bytes, max_message_bytes=options.max_message_bytes)
    assert server.stdout is not None
    try:
        while chunk := os.read(server.stdout.fileno(), 1 << 16):
            _write_all(cutter.feed(chunk))
        _write_all(cutter.flush())
    except BrokenPipeError:  # the client went away; the server hears it from its stdin
        pass
    return server.wait()


def _write_all(data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(1, view) :]


if __name__ == "__main__":
    sys.exit(relay(sys.argv[1:]))
