"""An evaluation run directory as the viewer serves it, kept up to date while ``agentflow eval`` writes.

``results.jsonl`` is read once, then only what was appended since (``JsonlTail``). Each line goes
through the core's converter; a line that does not parse is counted and shown, never a crash.
Later lines for the same (benchmark, item id) replace earlier ones in place, as ``RunDir.read``
has it. In memory each record is kept lean (see ``rows.lean``) with its byte offset; opening a
query reads its line again in full.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from agentflow_core.serde import from_dict, from_json, to_dict
from agentflow_rl.eval.records import EvalRecord, RunInfo
from agentflow_rl.eval.rundir import INFO, RESULTS, RunDir
from agentflow_rl.eval.summary import RunSummary, summarize
from agentflow_rl.view.rows import lean, row_of
from agentflow_rl.view.tail import JsonlTail, read_line, seen_upto

#: Lines parsed between two looks the page may take at the rows.
BATCH = 500


class EvalRun:
    kind = "eval"

    def __init__(self, path: Path) -> None:
        self.path = path
        self.name = path.resolve().name
        self._tail = JsonlTail(path / RESULTS)
        #: Held while lines are read and parsed: one reader at a time.
        self._reading = threading.Lock()
        #: Held while the lists below change or are read: briefly, between batches of lines.
        self._lock = threading.Lock()
        self._epoch = 1
        self._seq = 0
        self._skipped = 0
        self._rows: list[dict[str, Any]] = []
        self._records: list[EvalRecord] = []
        self._offsets: list[int] = []
        self._where: dict[tuple[str, str], int] = {}
        self._summary: tuple[int, dict[str, Any]] | None = None

    @staticmethod
    def claims(path: Path) -> bool:
        return path.is_dir() and ((path / RESULTS).is_file() or (path / INFO).is_file())

    @property
    def version(self) -> str:
        return f"{self._epoch}-{self._seq}"

    def refresh(self, *, wait: bool = True) -> bool:
        """Take in the complete lines appended since the last call; ``False`` if another reader is at it.

        Lines are parsed outside the data lock and taken in batches, so that while a big file is
        read for the first time the page already gets, and shows, what has been read so far.
        """
        if not self._reading.acquire(blocking=wait):
            return False
        try:
            reset, lines = self._tail.read_new()
            if reset:
                with self._lock:
                    self._forget()
            for start in range(0, len(lines), BATCH):
                parsed = [(offset, _parse(line)) for offset, line in lines[start : start + BATCH] if line.strip()]
                with self._lock:
                    for offset, record in parsed:
                        self._take(offset, record)
        finally:
            self._reading.release()
        return True

    def _forget(self) -> None:
        self._epoch += 1
        self._seq = self._skipped = 0
        self._rows, self._records, self._offsets, self._where = [], [], [], {}
        self._summary = None

    def _take(self, offset: int, record: EvalRecord | None) -> None:
        if record is None:
            self._skipped += 1
            return
        self._seq += 1
        index = self._where.setdefault(record.key, len(self._rows))
        row = row_of(record, index, self._seq)
        if index == len(self._rows):
            self._rows.append(row)
            self._records.append(record)
            self._offsets.append(offset)
        else:
            self._rows[index], self._records[index], self._offsets[index] = row, record, offset

    def rows_since(self, version: str) -> dict[str, Any]:
        """Rows changed since ``version`` (all of them when it is of another epoch), and the new version.

        Does not wait for a read in progress: the rows read so far come back, marked ``reading``.
        """
        reading = not self.refresh(wait=False)
        with self._lock:
            seen = seen_upto(version, self._epoch)
            changed = self._rows if not seen else [row for row in self._rows if row["seq"] > seen]
            return {
                "version": self.version,
                "reset": seen is None,
                "rows": list(changed),
                "skipped": self._skipped,
                "reading": reading,
            }

    def summary(self) -> dict[str, Any]:
        reading = not self.refresh(wait=False)
        with self._lock:
            if self._summary is None or self._summary[0] != self._seq:
                summary = summarize(self._records, self.info())
                self._summary = (self._seq, summary_payload(summary, self._skipped))
            return {
                "name": self.name,
                "path": str(self.path),
                "version": self.version,
                **self._summary[1],
                "reading": reading,
            }

    def info(self) -> RunInfo | None:
        try:
            return RunDir(self.path).read_info()
        except Exception:  # a run.json of another version: the rows still show
            return None

    def record(self, index: int) -> dict[str, Any]:
        """One query in full, read again from its line."""
        self.refresh(wait=False)
        with self._lock:
            if not 0 <= index < len(self._offsets):
                raise KeyError(index)
            offset = self._offsets[index]
        return to_dict(from_json(read_line(self._tail.path, offset).decode("utf-8"), EvalRecord))

    def records(self) -> list[EvalRecord]:
        """Every record as of now, waiting for a read in progress to finish."""
        self.refresh()
        with self._lock:
            return list(self._records)


def _parse(line: bytes) -> EvalRecord | None:
    try:
        return from_dict(lean(json.loads(line)), EvalRecord)
    except Exception:  # a record of another version, or a hand-edited line
        return None


def summary_payload(summary: RunSummary, skipped: int) -> dict[str, Any]:
    """``summary.json``'s content plus the derived figures its properties compute."""
    data = to_dict(summary)
    for bench, stored in zip(summary.benchmarks, data["benchmarks"], strict=True):
        stored["tool_calls"] = bench.tool_calls
        stored["tool_error_rate"] = bench.tool_error_rate
    data["macro_accuracy"] = summary.macro_accuracy
    data["skipped_lines"] = skipped
    return data
