"""The wire between host and runner: code out as exec arguments, one report line back.

Kept apart from the Docker code because it is plain data handling, testable without a daemon,
and what another backend (anything that can run ``python3 -c`` somewhere) would reuse.
"""

from __future__ import annotations

import base64
import functools
from pathlib import Path
from typing import Any

from agentflow_tools.sandbox.base import ExecutionResult, SandboxError

#: Code travels as base64 arguments of the exec; one argument may hold at most 128 KiB.
MAX_CODE_BYTES = 512 * 1024
_ARG_CHUNK = 96 * 1024
_MARKER = b"AGENTFLOW-RESULT "
#: UTF-8 needs at most four bytes a character: the runner keeps this many bytes per character we keep.
BYTES_PER_CHAR = 4


@functools.cache
def runner_source() -> str:
    """The in-container half (``runner.py``), sent as ``python3 -c`` source with every run."""
    return Path(__file__).with_name("runner.py").read_text(encoding="utf-8")


def encode_code(code: str) -> list[str]:
    """The code as base64 exec arguments, each under the kernel's 128 KiB limit for one argument."""
    raw = code.encode("utf-8", "surrogatepass")
    if len(raw) > MAX_CODE_BYTES:
        raise SandboxError(f"the code is {len(raw)} bytes; the sandbox takes at most {MAX_CODE_BYTES} bytes")
    text = base64.b64encode(raw).decode("ascii")
    return [text[i : i + _ARG_CHUNK] for i in range(0, len(text), _ARG_CHUNK)] or [""]


def read_bounded(stream: Any, limit: int) -> tuple[bytes, bytes, bool]:
    """Collect a demuxed exec stream, giving up past ``limit`` bytes so our memory stays bounded."""
    out, err = bytearray(), bytearray()
    try:
        for stdout, stderr in stream:
            out += stdout or b""
            err += stderr or b""
            if len(out) + len(err) > limit:
                return bytes(out), bytes(err), True
    finally:
        stream.close()
    return bytes(out), bytes(err), False


def parse_report(out: bytes, max_chars: int) -> tuple[ExecutionResult, bool] | None:
    """The runner's ``AGENTFLOW-RESULT`` line as a result and whether its cleanup was complete.

    ``None`` when there is no complete, well-formed line: the runner died before reporting.
    """
    at = out.rfind(_MARKER)
    fields = out[at + len(_MARKER) :].rstrip(b"\n").split(b" ") if at >= 0 else []
    if len(fields) != 9:
        return None
    try:
        code, timed_out, oom, clean, elapsed, out_total, err_total = (float(f) for f in fields[:7])
        stdout, out_cut = decode_output(base64.b64decode(fields[7], validate=True), int(out_total), max_chars)
        stderr, err_cut = decode_output(
            base64.b64decode(fields[8], validate=True), int(err_total), max_chars, tail=True
        )
    except ValueError:  # binascii.Error is a ValueError
        return None
    result = ExecutionResult(stdout, stderr, int(code), bool(timed_out), bool(oom), out_cut or err_cut, elapsed)
    return result, bool(clean)


def decode_output(data: bytes, total: int, max_chars: int, *, tail: bool = False) -> tuple[str, bool]:
    """Text from what the runner kept, decoded with replacement; True if anything was left out."""
    text = data.decode("utf-8", "replace")
    kept = text[-max_chars:] if tail else text[:max_chars]
    return kept, total > len(data) or len(kept) < len(text)


def report_limit(max_chars: int) -> int:
    # Two base64 captures of up to four bytes a character, and a few numbers.
    return 2 * (4 * BYTES_PER_CHAR * max_chars // 3 + 4) + 4096
