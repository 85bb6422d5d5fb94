"""The host's half of the wire to the in-container runner: requests out, reports back, Docker's framing.

Plain data handling, kept apart from the Docker calls so that it is testable without a daemon and
reusable by another backend (anything that can keep a ``python3`` process's stdin and stdout
open). The runner's half and the exact byte format are in ``runner.py``'s docstring.
"""

from __future__ import annotations

import functools
from pathlib import Path

import attrs

from agentflow_tools.sandbox.base import ExecutionResult, SandboxError

#: The longest program a run takes (UTF-8 bytes).
MAX_CODE_BYTES = 512 * 1024
#: UTF-8 needs at most four bytes a character: the runner keeps this many bytes per character we keep.
BYTES_PER_CHAR = 4
HELLO = b"HELLO 1\n"
READY = b"READY 1"
CANCEL = b"C\n"
#: The longest report header we read before calling the runner broken.
MAX_HEADER = 256
#: Interpreter flags of the runner: isolated (no env, no user site, no script dir on sys.path),
#: no bytecode written, unbuffered output (nothing lost to a kill), UTF-8 whatever the locale.
RUNNER_FLAGS = ("-I", "-B", "-u", "-X", "utf8")


class ProtocolError(Exception):
    """The runner sent something that is not a report: it is broken or was subverted."""


@functools.cache
def runner_source() -> str:
    """The in-container half (``runner.py``), started once per container as ``python3 -c`` source."""
    return Path(__file__).with_name("runner.py").read_text(encoding="utf-8")


def runner_command() -> list[str]:
    return ["python3", *RUNNER_FLAGS, "-c", runner_source()]


def encode_request(code: str, timeout_s: float, max_chars: int) -> bytes:
    """One ``RUN`` request; the runner keeps ``max_chars`` characters' worth of each output."""
    raw = code.encode("utf-8", "surrogatepass")
    if len(raw) > MAX_CODE_BYTES:
        raise SandboxError(f"the code is {len(raw)} bytes; the sandbox takes at most {MAX_CODE_BYTES} bytes")
    return b"RUN %.6g %d %d\n" % (timeout_s, max_chars * BYTES_PER_CHAR, len(raw)) + raw


@attrs.frozen
class ReportHeader:
    exit_code: int
    timed_out: bool
    oom: bool
    #: The runner killed and wiped everything the run left and its zygote is as it was.
    healthy: bool
    elapsed_s: float
    stdout_total: int
    stderr_total: int
    stdout_kept: int
    stderr_kept: int

    @property
    def body_size(self) -> int:
        return self.stdout_kept + self.stderr_kept


def parse_header(line: bytes, max_chars: int) -> ReportHeader:
    """The ``RESULT`` line, checked strictly: anything else means the runner cannot be trusted."""
    fields = line.split(b" ")
    if len(fields) != 10 or fields[0] != b"RESULT":
        raise ProtocolError(f"not a report: {line[:80]!r}")
    try:
        code, timed_out, oom, healthy = (int(f) for f in fields[1:5])
        elapsed = float(fields[5])
        totals = [int(f) for f in fields[6:10]]
    except ValueError:
        raise ProtocolError(f"malformed report: {line[:80]!r}") from None
    limit = max_chars * BYTES_PER_CHAR
    if min(totals) < 0 or totals[2] > min(limit, totals[0]) or totals[3] > min(limit + 4096, totals[1]):
        raise ProtocolError(f"inconsistent report sizes: {line[:80]!r}")
    return ReportHeader(code, timed_out == 1, oom == 1, healthy == 1, elapsed, *totals)


def result_from(header: ReportHeader, body: bytes, max_chars: int) -> ExecutionResult:
    stdout, out_cut = decode_output(body[: header.stdout_kept], header.stdout_total, max_chars)
    stderr, err_cut = decode_output(body[header.stdout_kept :], header.stderr_total, max_chars, tail=True)
    return ExecutionResult(
        stdout, stderr, header.exit_code, header.timed_out, header.oom, out_cut or err_cut, header.elapsed_s
    )


def decode_output(data: bytes, total: int, max_chars: int, *, tail: bool = False) -> tuple[str, bool]:
    """Text from what the runner kept, decoded with replacement; True if anything was left out."""
    text = data.decode("utf-8", "replace")
    kept = text[-max_chars:] if tail else text[:max_chars]
    return kept, total > len(data) or len(kept) < len(text)


class FrameReader:
    """Splits Docker's multiplexed exec stream into stdout and stderr.

    Each frame is an 8-byte header (stream: 1 stdout, 2 stderr; three zero bytes; the payload's
    length, big-endian) and the payload. Frames cut writes anywhere, so stdout is a byte buffer
    that the caller consumes; stderr (only ever the runner's own traceback) keeps its last bytes.
    """

    def __init__(self, stderr_limit: int = 4096) -> None:
        self.stdout = bytearray()
        self.stderr = bytearray()
        self._pending = bytearray()
        self._stderr_limit = stderr_limit

    def feed(self, data: bytes) -> None:
        self._pending += data
        while len(self._pending) >= 8:
            kind, size = self._pending[0], int.from_bytes(self._pending[4:8], "big")
            if kind not in (1, 2) or any(self._pending[1:4]):
                raise ProtocolError(f"not a Docker stream frame: {bytes(self._pending[:8])!r}")
            if len(self._pending) < 8 + size:
                return
            payload = self._pending[8 : 8 + size]
            del self._pending[: 8 + size]
            if kind == 1:
                self.stdout += payload
            else:
                self.stderr += payload
                del self.stderr[: -self._stderr_limit]

    def take_line(self, limit: int) -> bytes | None:
        """The next stdout line without its newline; None until it is complete."""
        at = self.stdout.find(b"\n", 0, limit + 1)
        if at < 0:
            if len(self.stdout) > limit:
                raise ProtocolError(f"a line longer than {limit} bytes: {bytes(self.stdout[:80])!r}")
            return None
        line = bytes(self.stdout[:at])
        del self.stdout[: at + 1]
        return line

    def take(self, size: int) -> bytes | None:
        if len(self.stdout) < size:
            return None
        data = bytes(self.stdout[:size])
        del self.stdout[:size]
        return data
