"""A run directory: ``run.json``, ``results.jsonl`` and the summaries, plots written from them.

``results.jsonl`` is append-only: one line per finished query, written and flushed as soon as the
query is scored, so a run killed at any moment (SIGINT, SIGKILL, a power cut aside) has lost at
most the queries still in flight. Reading dedupes on (benchmark, item id), later lines winning,
and skips a truncated last line; before appending again the truncated tail is cut off so the
next record starts on a line of its own.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import IO

from agentflow_core import UsageError
from agentflow_core.errors import naming_storage_errors
from agentflow_core.serde import from_json, to_json
from agentflow_rl.eval.records import EvalRecord, RunInfo

RESULTS = "results.jsonl"
INFO = "run.json"


class RunDir:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._out: IO[str] | None = None

    @property
    def results(self) -> Path:
        return self.path / RESULTS

    def read(self) -> dict[tuple[str, str], EvalRecord]:
        """Every recorded query, once, in file order; lines that do not parse are skipped."""
        records: dict[tuple[str, str], EvalRecord] = {}
        if not self.results.is_file():
            return records
        bad = 0
        with self.results.open(encoding="utf-8") as lines:
            for line in lines:
                if not line.strip():
                    continue
                try:
                    record = from_json(line, EvalRecord)
                except Exception:  # a line cut short by a kill, or written by another version
                    bad += 1
                    continue
                records.pop(record.key, None)
                records[record.key] = record
        if bad > 1:  # one truncated last line is expected after a kill; more is worth a word
            warnings.warn(f"{self.results}: skipped {bad} lines that do not parse", stacklevel=2)
        return records

    def read_info(self) -> RunInfo | None:
        path = self.path / INFO
        if not path.is_file():
            return None
        return from_json(path.read_text(encoding="utf-8"), RunInfo)

    def start(self, info: RunInfo) -> None:
        """Create the directory, or check that an existing one holds the same kind of run."""
        self.path.mkdir(parents=True, exist_ok=True)
        old = self.read_info()
        if old is not None and old.mode is not info.mode:
            raise UsageError(
                f"{self.path} holds a --mode {old.mode.value} run; pass another --run-dir for --mode {info.mode.value}"
            )
        with naming_storage_errors(self.path / INFO):
            (self.path / INFO).write_text(to_json(info, indent=2) + "\n", encoding="utf-8")

    def open(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        _cut_truncated_tail(self.results)
        self._out = self.results.open("a", encoding="utf-8")

    def append(self, record: EvalRecord) -> None:
        if self._out is None:
            raise RuntimeError("RunDir.open() first")
        with naming_storage_errors(self.results):  # a full disk names the file, not "a bug"
            self._out.write(to_json(record) + "\n")
            self._out.flush()  # in the kernel now: a SIGKILL of this process cannot lose it

    def close(self) -> None:
        if self._out is not None:
            out, self._out = self._out, None
            with naming_storage_errors(self.results):  # closing flushes what a full disk refused
                out.close()

    def __enter__(self) -> RunDir:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _cut_truncated_tail(path: Path, block: int = 1 << 16) -> None:
    """Drop a last line without its newline (a write cut short), so appends start on a fresh line.

    Reads backwards from the end, a block at a time: results files with trajectories grow large.
    """
    if not path.is_file():
        return
    with path.open("rb+") as raw:
        end = raw.seek(0, os.SEEK_END)
        position = end
        while position > 0:
            size = min(block, position)
            position -= size
            raw.seek(position)
            chunk = raw.read(size)
            if position + size == end and chunk.endswith(b"\n"):
                return
            newline = chunk.rfind(b"\n")
            if newline != -1:
                raw.truncate(position + newline + 1)
                return
        raw.truncate(0)
