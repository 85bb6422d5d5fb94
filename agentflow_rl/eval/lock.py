"""One ``agentflow eval`` per run directory at a time.

Two processes appending to one ``results.jsonl`` would each ask every query. The lock is an
advisory ``flock`` on ``RUN_DIR/eval.lock``: the kernel drops it when its holder exits in any way,
``kill -9`` included, so there is never a stale lock to clean up; the file itself stays, holding the
last holder's pid for the refusal message. The descriptor is not inherited by child processes (an
MCP server, a sandbox), so a child outliving its eval cannot keep the directory locked. ``flock``
is POSIX only (elsewhere there is no lock) and may not hold across machines on a network file system.
"""

from __future__ import annotations

import os
from pathlib import Path

from agentflow_core import UsageError

LOCK = "eval.lock"


class RunLock:
    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock at once, or raise ``UsageError`` naming the process that holds it."""
        try:
            import fcntl  # POSIX only
        except ImportError:  # Windows: no lock (docs/reliability.md says so)
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.run_dir / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            os.close(fd)
            who = f" (pid {holder})" if holder.isdigit() else ""
            raise UsageError(
                f"{self.run_dir} is in use by another agentflow eval{who}; wait for it to end or pass another --run-dir"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the only descriptor drops the flock
            self._fd = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
