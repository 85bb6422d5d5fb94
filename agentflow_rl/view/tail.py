"""Reading the lines appended to a JSONL file since the last look, while another process writes it.

``agentflow eval`` and the trainer append one line per record and flush; a reader can catch a
line half written. Only complete lines (ending in a newline) are handed out; the rest waits for
the next call. A file that shrank or was replaced is read again from the start.
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

#: Bytes read at a time, so a first look at a big results file does not hold it all twice.
BLOCK = 8 << 20


class JsonlTail:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self._inode: int | None = None

    def read_new(self) -> tuple[bool, list[tuple[int, bytes]]]:
        """``(reset, lines)``: whether earlier lines are void, and each new line with its byte offset."""
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            reset = self.offset > 0
            self.offset, self._inode = 0, None
            return reset, []
        reset = stat.st_size < self.offset or (self._inode is not None and stat.st_ino != self._inode)
        if reset:
            self.offset = 0
        self._inode = stat.st_ino
        lines: list[tuple[int, bytes]] = []
        if stat.st_size > self.offset:
            with self.path.open("rb") as raw:
                raw.seek(self.offset)
                self._read(raw, stat.st_size, lines)
        return reset, lines

    def _read(self, raw: BinaryIO, size: int, lines: list[tuple[int, bytes]]) -> None:
        pending = b""
        start = self.offset
        while start + len(pending) < size:
            block = raw.read(min(BLOCK, size - start - len(pending)))
            if not block:
                break
            data = pending + block
            end = data.rfind(b"\n")
            if end < 0:
                pending = data
                continue
            position = start
            for line in data[:end].split(b"\n"):
                lines.append((position, line))
                position += len(line) + 1
            start = position
            pending = data[end + 1 :]
        self.offset = start


def read_line(path: Path, offset: int) -> bytes:
    """The line that starts at ``offset``, without its newline."""
    with path.open("rb") as raw:
        raw.seek(offset)
        return raw.readline().rstrip(b"\n")


def seen_upto(version: str, epoch: int) -> int | None:
    """How many records a client with ``version`` (``"<epoch>-<count>"``) has; ``None``: start again."""
    got_epoch, _, count = version.partition("-")
    return int(count) if got_epoch == str(epoch) and count.isdigit() else None
