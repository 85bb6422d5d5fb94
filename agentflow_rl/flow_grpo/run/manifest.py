"""A checkpoint's ``COMPLETE`` marker: what the checkpoint holds, written last, durably and atomically.

The marker is a manifest: the step, the settings the checkpoint can only be resumed with
(``identity``), and every file with its size and, unless ``run.checkpoint_checksums`` is off,
its SHA-256. ``seal`` writes it once every file is on disk: each file is read back (hashed on the
way) and fsync'd, then its folders, then the marker is written beside (fsync'd) and renamed into
place. A kill or a power cut at any moment leaves a folder without the marker, which nothing
loads, or a sealed one.

``damage`` checks a sealed checkpoint against its manifest before anything loads it: a file that
is missing, shorter or longer than written, or whose bytes changed (a disk that lost the writes
before a power cut, a copy cut short, bit rot) makes it damaged, with the reason in a few words.
Sizes cost nothing; checksums cost one read of the checkpoint per save and per resume, about 0.7 s
of CPU per GiB (``benchmarks/checkpoint_seal.py``), which is why very large runs may turn them off.
A marker written before manifests existed holds only the step: such a checkpoint is trusted as it is.
"""

from __future__ import annotations

import errno
import hashlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import BinaryIO

import attrs

from agentflow_core.errors import naming_storage_errors, one_line
from agentflow_core.files import fsync_folder, write_atomic
from agentflow_core.serde import from_json, to_json

COMPLETE = "COMPLETE"

#: Bytes read at a time when hashing.
CHUNK = 1 << 20


@attrs.frozen
class FileEntry:
    size: int
    #: Hex SHA-256 of the file; ``None`` when the run did not compute checksums.
    sha256: str | None = None


@attrs.frozen
class Manifest:
    step: int
    #: Every file of the checkpoint, by path relative to its folder.
    files: dict[str, FileEntry]
    #: The identity settings the checkpoint was made with (``identity.identity``).
    settings: dict[str, str] = attrs.field(factory=dict)


def seal(folder: Path, step: int, settings: Mapping[str, str], *, checksums: bool) -> Manifest:
    """Make ``folder``'s files durable, then mark it complete with its manifest (the last write)."""
    files = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        files[path.relative_to(folder).as_posix()] = _settle(path, checksums=checksums)
    for sub in sorted((p for p in folder.rglob("*") if p.is_dir()), reverse=True):
        fsync_folder(sub)
    for parent in (folder, folder.parent, folder.parent.parent):  # the new folder's own name, and `checkpoints`'
        fsync_folder(parent)
    manifest = Manifest(step, files, dict(settings))
    with naming_storage_errors(folder / COMPLETE):
        write_atomic(folder / COMPLETE, to_json(manifest, indent=1) + "\n")
    return manifest


def read_manifest(folder: Path) -> Manifest | None:
    """The manifest of a sealed folder; ``None`` for a marker older than manifests (only a step).

    Raises ``ValueError`` when the marker is neither.
    """
    text = (folder / COMPLETE).read_text(encoding="utf-8", errors="replace")
    if text.strip().isdigit():
        return None
    try:
        return from_json(text, Manifest)
    except Exception as exc:  # JSON or cattrs: either way not a manifest
        raise ValueError(f"its {COMPLETE} marker is not a manifest ({one_line(exc)[:80]})") from None


def damage(folder: Path) -> str | None:
    """Why the sealed checkpoint in ``folder`` cannot be used, in a few words; ``None`` when it is whole."""
    try:
        manifest = read_manifest(folder)
    except ValueError as exc:
        return str(exc)
    except OSError as exc:
        return f"its {COMPLETE} marker cannot be read: {exc.strerror or one_line(exc)}"
    if manifest is None:
        return None
    entries = sorted(manifest.files.items())
    for name, entry in entries:  # every size before any checksum: the cheap check first
        try:
            size = (folder / name).stat().st_size
        except OSError as exc:
            return f"{name}: {exc.strerror or one_line(exc)}"
        if size != entry.size:
            return f"{name} has {size} bytes, {entry.size} were written"
    for name, entry in entries:
        if entry.sha256 is not None:
            try:
                with (folder / name).open("rb") as raw:
                    digest = _sha256(raw)
            except OSError as exc:
                return f"{name}: {exc.strerror or one_line(exc)}"
            if digest != entry.sha256:
                return f"{name} is not what was written (its SHA-256 differs)"
    return None


def _settle(path: Path, *, checksums: bool) -> FileEntry:
    """Read ``path`` back (hashing it) and fsync it: its bytes are on the disk when this returns."""
    with naming_storage_errors(path), path.open("rb") as raw:
        digest = _sha256(raw) if checksums else None
        try:
            os.fsync(raw.fileno())
        except OSError as exc:
            if exc.errno != errno.EINVAL:  # EINVAL: a file that cannot be synced at all
                raise
        return FileEntry(os.fstat(raw.fileno()).st_size, digest)


def _sha256(raw: BinaryIO) -> str:
    digest = hashlib.sha256()
    for chunk in iter(lambda: raw.read(CHUNK), b""):
        digest.update(chunk)
    return digest.hexdigest()
