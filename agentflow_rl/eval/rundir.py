"""A run directory: ``run.json``, ``results.jsonl`` and the summaries, plots written from them.

``run.json`` names the settings that made the results (``settings.py``); it is written once,
atomically, before the first result, and a run asked for with other settings is refused rather
than mixed in. ``results.jsonl`` is append-only: one line per finished query, written with one
``write`` and flushed as soon as the query is scored, so a run killed at any moment has lost at most
the queries still in flight and left at most one torn last line (fsync'd every ``FSYNC_EVERY_S`` and
at the end, for power cuts). Reading dedupes on (benchmark, item id), later lines winning. It
never fails on a damaged file: a last line without its newline is a write cut short and is dropped
(and cut off before the next append, so the next record starts on a line of its own); any other
line that is not a record (a bad byte, garbage) is named in one warning and skipped, so its query
is asked again; every valid line is kept.
"""

from __future__ import annotations

import errno
import os
import time
import warnings
from collections.abc import Sequence
from io import FileIO
from pathlib import Path

from agentflow_core import UsageError
from agentflow_core.errors import StorageError, naming_storage_errors, one_line, storage_error
from agentflow_core.files import fsync_folder, write_atomic
from agentflow_core.serde import from_json, to_json
from agentflow_rl.eval.lock import RunLock
from agentflow_rl.eval.records import EvalRecord, RunInfo
from agentflow_rl.eval.settings import differences

RESULTS = "results.jsonl"
INFO = "run.json"

#: Most seconds of appended results a power cut can lose (a kill loses none that were flushed).
FSYNC_EVERY_S = 10.0


class RunDir:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._out: FileIO | None = None
        self._synced = 0.0

    @property
    def results(self) -> Path:
        return self.path / RESULTS

    def read(self) -> dict[tuple[str, str], EvalRecord]:
        """Every recorded query, once, in file order; damaged lines are skipped (see the module doc)."""
        records: dict[tuple[str, str], EvalRecord] = {}
        if not self.results.is_file():
            return records
        with self.results.open("rb") as lines:
            for number, line in enumerate(lines, start=1):
                if not line.endswith(b"\n"):
                    break  # the last write of a killed run, or one still being written: not a record yet
                if not line.strip():
                    continue
                try:
                    record = from_json(line.decode("utf-8"), EvalRecord)
                except Exception as exc:  # a bad byte, garbage, a line from another version: name it, go on
                    warnings.warn(
                        f"{self.results} line {number} is not a result ({_why(exc)}): skipped, so its query "
                        "counts as not answered",
                        stacklevel=1,  # said once per process, however often the file is read
                    )
                    continue
                records.pop(record.key, None)
                records[record.key] = record
        return records

    def read_info(self, *, strict: bool = True) -> RunInfo | None:
        """``run.json``; one that does not parse raises ``UsageError`` (``strict``) or is a warning and ``None``."""
        path = self.path / INFO
        if not path.is_file():
            return None
        try:
            return from_json(path.read_bytes().decode("utf-8"), RunInfo)
        except Exception as exc:
            problem = f"{path} is not readable ({_why(exc)})"
        if strict:
            raise UsageError(f"{problem}; pass another --run-dir or --new-run")
        warnings.warn(f"{problem}: the summary names no settings", stacklevel=2)
        return None

    def has_results(self) -> bool:
        """Whether any complete line was ever appended (a lone torn line does not count)."""
        if not self.results.is_file():
            return False
        with self.results.open("rb") as raw:
            while chunk := raw.read(1 << 16):
                if b"\n" in chunk:
                    return True
        return False

    def lock(self) -> RunLock:
        """Held for a whole run: a second ``agentflow eval`` on this directory is refused at once."""
        return RunLock(self.path)

    def start(self, info: RunInfo) -> None:
        """Create the directory and its ``run.json``, or check that the results here were made as ``info`` asks.

        ``run.json`` is rewritten only while there are no results, so it always names the settings
        that made every one of them.
        """
        self.path.mkdir(parents=True, exist_ok=True)
        if self.has_results():
            old = self.read_info()
            if old is None:
                raise UsageError(
                    f"{self.path} holds results but no {INFO}, so what made them is unknown; "
                    "pass another --run-dir or --new-run"
                )
            if old.mode is not info.mode:
                raise UsageError(
                    f"{self.path} holds a --mode {old.mode.value} run; pass another --run-dir (or --new-run) "
                    f"for --mode {info.mode.value}"
                )
            changed = differences(old, info)
            if changed:
                raise UsageError(
                    f"{self.path} was run with other settings: {'; '.join(changed)}; run it with its own "
                    "settings, or pass --new-run (or another --run-dir) to start a new run"
                )
            return
        with naming_storage_errors(self.path / INFO):
            write_atomic(self.path / INFO, to_json(info, indent=2) + "\n")

    def open(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        _cut_truncated_tail(self.results)
        new = not self.results.exists()
        self._out = FileIO(self.results, "ab")  # unbuffered: a failed write leaves nothing queued to retry
        if new:
            fsync_folder(self.path)
        self._synced = time.monotonic()

    def append(self, record: EvalRecord) -> None:
        """Write one line; once this returns the record is in the kernel and a SIGKILL cannot lose it."""
        if self._out is None:
            raise RuntimeError("RunDir.open() first")
        line = memoryview((to_json(record) + "\n").encode("utf-8"))
        try:
            while line:
                line = line[self._out.write(line) or 0 :]
        except OSError as exc:  # a full disk, a file-size limit: what was written before stays valid
            raise StorageError(
                f"cannot write {storage_error(exc, self.results)}; results so far are kept: "
                "make room and run the same command again"
            ) from None
        if time.monotonic() - self._synced > FSYNC_EVERY_S:
            self._sync()

    def _sync(self) -> None:
        if self._out is not None:
            _fsync(self._out)
            self._synced = time.monotonic()

    def close(self) -> None:
        if self._out is not None:
            out, self._out = self._out, None
            with naming_storage_errors(self.results), out:
                _fsync(out)

    def __enter__(self) -> RunDir:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def new_run_dir(path: Path, runs: Sequence[str] = (".",)) -> Path:
    """``path`` if it holds no run yet, else the first free ``path-2``, ``path-3``, ... beside it.

    ``runs`` are the folders under ``path`` a run would be in (two for ``eval trained``). The
    folder is created here, so two commands started together never pick the same one.
    """
    if not any((path / run / name).exists() for run in runs for name in (INFO, RESULTS)):
        path.mkdir(parents=True, exist_ok=True)
        return path
    for n in range(2, 10_000):
        candidate = path.with_name(f"{path.name}-{n}")
        try:
            candidate.mkdir(parents=True)
        except FileExistsError:
            continue
        return candidate
    raise UsageError(f"no free run directory beside {path}; pass another --run-dir")


def _why(exc: Exception) -> str:
    if isinstance(exc, UnicodeDecodeError):
        return f"invalid UTF-8 at byte {exc.start}"
    text = one_line(exc)
    return text if len(text) <= 120 else text[:117] + "..."


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


def _fsync(out: FileIO) -> None:
    """fsync, except where the file cannot be synced at all (a device such as ``/dev/full``): EINVAL."""
    try:
        os.fsync(out.fileno())
    except OSError as exc:
        if exc.errno != errno.EINVAL:
            raise
