"""Saying why a training file could not be written, when the machine is to blame.

Python's own writes fail with an ``OSError`` that says what happened; the libraries that write
checkpoints do not. safetensors wraps the error in its own text (``... (os error 28)``) and
``torch.save`` reports a full disk as ``unexpected pos 576 vs 534``. So after a failed write this
module asks the machine instead: a filesystem with no room left means ``No space left on device``,
a file that reached the process's size limit (``ulimit -f``) means ``File too large``. What it
cannot explain is left as it was raised: a bug is not a full disk.

>>> import errno
>>> cause(OSError(errno.ENOSPC, "No space left on device"), Path("/"))
'No space left on device'
>>> cause(RuntimeError("Error while serializing: I/O error: File too large (os error 27)"), Path("/"))
'File too large'
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import resource
from collections.abc import Iterator
from pathlib import Path

from agentflow_core.errors import STORAGE_ERRNOS, StorageError

#: What to do after a failed write of a run's logs: the checkpoint before it is untouched.
RESUME_WITH_ROOM = "the same command resumes from the last checkpoint once there is room"

#: Free space below which a filesystem counts as full after a write into it failed.
FULL_BYTES = 1 << 20

_OS_ERROR = re.compile(r"os error (\d+)")


@contextlib.contextmanager
def writing(target: Path, then: str) -> Iterator[None]:
    """Inside: a write into ``target`` (a file, or a folder being filled) that failed for want of room
    or rights becomes one ``StorageError``: ``cannot write FILE: WHY; THEN``. Anything else passes."""
    try:
        yield
    except StorageError:
        raise
    except Exception as exc:
        why = cause(exc, target)
        if why is None:
            raise
        raise StorageError(f"cannot write {_culprit(exc, target)}: {why}; {then}") from None


def cause(exc: BaseException, target: Path) -> str | None:
    """Why writing ``target`` failed, when the machine is to blame; ``None`` when it is not."""
    for link in _chain(exc):
        if isinstance(link, OSError) and link.errno is not None:
            return link.strerror if link.errno in STORAGE_ERRNOS else None
        found = _OS_ERROR.search(str(link))
        if found and int(found.group(1)) in STORAGE_ERRNOS:
            return os.strerror(int(found.group(1)))
    return _full(target) or _too_large(target)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    link: BaseException | None = exc
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        yield link
        link = link.__cause__ or link.__context__


def _full(target: Path) -> str | None:
    folder = target if target.is_dir() else target.parent
    try:
        stat = os.statvfs(folder)
    except OSError:
        return None
    return os.strerror(errno.ENOSPC) if stat.f_bavail * stat.f_frsize < FULL_BYTES else None


def _too_large(target: Path) -> str | None:
    limit, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
    if limit == resource.RLIM_INFINITY:
        return None
    if any(size >= limit for _, size in _files(target)):
        return f"{os.strerror(errno.EFBIG)} (the process's file-size limit, ulimit -f, is {limit} bytes)"
    return None


def _culprit(exc: BaseException, target: Path) -> str:
    """The file the failed write was writing: the one the error names, else the newest in ``target``."""
    for link in _chain(exc):
        if isinstance(link, OSError) and link.filename:
            return os.fsdecode(link.filename)
    files = sorted(_files(target, by_time=True), key=lambda found: found[1])
    return str(files[-1][0]) if files else str(target)


def _files(target: Path, *, by_time: bool = False) -> list[tuple[Path, int]]:
    """Each file of ``target`` with its size (or its modification time)."""
    paths = [target] if target.is_file() else [p for p in target.rglob("*") if p.is_file()] if target.is_dir() else []
    found = []
    for path in paths:
        with contextlib.suppress(OSError):
            stat = path.stat()
            found.append((path, stat.st_mtime_ns if by_time else stat.st_size))
    return found
