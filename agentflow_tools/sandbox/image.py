"""``agentflow sandbox build``: a local sandbox image made from this machine's Python, no download.

Why not a Dockerfile: building ``FROM python:3.11-slim`` needs a registry, and the machines this
project runs on (CI included) often reach none. Instead we write a root filesystem tarball holding
the host interpreter, its standard library (no site-packages, no tests, no tkinter), ``sh`` and
``sleep``, and every shared library ``ldd`` says they need, then ``docker import`` it. The image
has nothing else: no package manager, no compilers, no pip. For numpy and friends use a richer
image (``docker pull python:3.11-slim`` plus a Dockerfile) and set ``[tools.python_coder] image``.

Libraries keep their host paths (the interpreter's RUNPATH and the dynamic loader find them
there without an ``ld.so.cache``); the interpreter itself moves to ``/usr/local`` so tracebacks
read as they would in the official image.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from agentflow_core.errors import one_line
from agentflow_tools.sandbox.base import SandboxError

logger = logging.getLogger(__name__)

DEFAULT_TAG = "agentflow-sandbox:local"
#: Names the local image instead of ``DEFAULT_TAG``.
TAG_VARIABLE = "AGENTFLOW_SANDBOX_TAG"

#: Standard-library parts a sandboxed script has no use for, and the bulk of the stdlib's size.
_SKIP_DIRS = frozenset(
    {"site-packages", "dist-packages", "test", "tests", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3"}
)
#: Extension modules that pull in X11, curses or test-only code.
_SKIP_EXTENSIONS = re.compile(r"^(_tkinter|_test|_xxtest|xxlimited|_ctypes_test|readline|_curses|nis|ossaudiodev)")
_LDD_PATH = re.compile(r"(/\S+) \(0x[0-9a-f]+\)")

#: Runs use 65534 (nobody); the container's idle process 65533, so a run cannot signal it.
_PASSWD = ("root:x:0:0::/root:/bin/sh", "idle:x:65533:65533::/:/bin/sh", "nobody:x:65534:65534::/sandbox:/bin/sh")
_GROUP = ("root:x:0:", "idle:x:65533:", "nogroup:x:65534:")
#: Image settings ``docker import`` applies; the environment is a fixed PATH, nothing of ours.
_CHANGES = ["ENV PATH=/usr/local/bin:/usr/bin:/bin", 'CMD ["sleep", "infinity"]', "WORKDIR /sandbox"]


def build_image(client: Any, tag: str) -> str:
    """Write the root filesystem of this interpreter and import it as ``tag``; returns the image id."""
    previous = _image_id(client, tag)
    with tempfile.TemporaryDirectory(prefix="agentflow-rootfs-") as tmp:
        tarball = Path(tmp) / "rootfs.tar"
        with tarfile.open(tarball, "w") as tar:
            RootfsWriter(tar).write_python(Path(os.path.realpath(sys.executable)))
        repository, _, version = tag.rpartition(":") if ":" in tag.split("/")[-1] else (tag, "", "latest")
        client.api.import_image_from_file(str(tarball), repository=repository, tag=version, changes=_CHANGES)
    built = _image_id(client, tag)
    if previous and previous != built:
        with contextlib.suppress(Exception):  # still used by a container: it stays, untagged
            client.images.remove(previous)
    return str(built)


def local_tag() -> str:
    """The name of the image agentflow builds itself: ``AGENTFLOW_SANDBOX_TAG``, else ``agentflow-sandbox:local``.

    A variable, not a config key: it names agentflow's own image (tests use their own so that none
    removes the one others run in), while ``[tools.python_coder] image`` names one of yours.
    """
    return os.environ.get(TAG_VARIABLE, "").strip() or DEFAULT_TAG


def resolve_image(client: Any, configured: str | None) -> str:
    """The image to run: the configured one, else the local image, built here the first time it is needed.

    Never pulls: registries are often out of reach, and a pull in the middle of a solve is a surprise.
    A configured image is never built either: it is the user's, and a missing one is one line naming
    the fix. The local image is made from this machine's Python in a few seconds, so a fresh clone's
    first solve has its sandbox without a setup step (issue 34); the one line logged says so.
    """
    wanted = configured or local_tag()
    try:
        found = _image_id(client, wanted)
    except Exception as exc:  # the daemon answered, but not about images
        raise SandboxError(f"cannot look up the Docker image {wanted!r}: {exc}") from None
    if found is not None:
        return wanted
    if configured is None:
        return _build_missing(client, wanted)
    local = local_tag()
    if configured == local:
        raise SandboxError(f"Docker image {configured!r} is missing: run `agentflow sandbox build`")
    raise SandboxError(
        f"Docker image {configured!r} is missing: `docker pull {configured}` (or build it), or run "
        f'`agentflow sandbox build` and set [tools.python_coder] image = "{local}" (or leave it unset)'
    )


def _build_missing(client: Any, tag: str) -> str:
    logger.warning(
        "building the sandbox image %s from this machine's Python (once, a few seconds, no download): "
        "python_coder runs its programs in it",
        tag,
    )
    try:
        build_image(client, tag)
    except Exception as exc:
        raise SandboxError(
            f"no sandbox image, and building {tag} from this machine's Python failed ({one_line(exc)}); "
            "fix that and run `agentflow sandbox build`, or set [tools.python_coder] image to an image with python3"
        ) from None
    return tag


def _image_id(client: Any, tag: str) -> str | None:
    import docker.errors

    try:
        return str(client.images.get(tag).id)
    except docker.errors.ImageNotFound:
        return None


class RootfsWriter:
    """Adds host files to a tarball at chosen paths, every member owned by root, no setuid bits."""

    def __init__(self, tar: tarfile.TarFile) -> None:
        self._tar = tar
        self._added: set[str] = set()

    def write_python(self, executable: Path) -> None:
        version = f"python{sys.version_info.major}.{sys.version_info.minor}"
        for name in ("tmp", "sandbox"):
            self._dir(f"/{name}", 0o1777)
        for name in ("dev", "proc", "sys", "etc", "usr/local/bin"):
            self._dir(f"/{name}", 0o755)
        self._text("/etc/passwd", "\n".join(_PASSWD) + "\n")
        self._text("/etc/group", "\n".join(_GROUP) + "\n")
        self._file(executable, f"/usr/local/bin/{version}")
        for alias in ("python3", "python"):
            self._symlink(f"/usr/local/bin/{alias}", version)
        stdlib = Path(sysconfig.get_path("stdlib"))
        self._tree(stdlib, f"/usr/local/lib/{version}")
        dynload = _dynload_dir(stdlib)
        if dynload.parent != stdlib:
            self._tree(dynload, f"/usr/local/lib/{version}/lib-dynload")
        # /bin/sh for subprocess's shell=True, sleep for the container's idle process.
        tools = [Path(p) for p in ("/bin/sh", shutil.which("sleep")) if p and os.path.exists(p)]
        for tool in tools:
            self.mirror(tool)
        for library in shared_libraries([executable, *tools, *_extensions(dynload)]):
            self.mirror(library)

    def mirror(self, path: Path) -> None:
        """Add ``path`` at the same place, re-creating the host's symlinks on the way (``/lib -> usr/lib``)."""
        current = Path("/")
        for part in path.parts[1:]:
            current = current / part
            if current.is_symlink():
                target = os.readlink(current)
                self._symlink(str(current), target)
                self.mirror(Path(os.path.normpath(current.parent / target)) / path.relative_to(current))
                return
        self._file(path, str(path))

    def _tree(self, source: Path, target: str) -> None:
        for root, dirs, files in os.walk(source):
            dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS and not d.startswith("config-"))
            relative = os.path.relpath(root, source)
            where = target if relative == "." else f"{target}/{relative}"
            self._dir(where, 0o755)
            for name in sorted(files):
                if name.endswith(".so") and _SKIP_EXTENSIONS.match(name):
                    continue
                self._file(Path(root) / name, f"{where}/{name}")

    def _file(self, source: Path, target: str) -> None:
        if self._claim(target):
            self._parents(target)
            info = self._tar.gettarinfo(str(source), arcname=target.lstrip("/"))
            if info.issym():  # a link inside a copied tree (python3 -> python3.11): keep it a link
                self._tar.addfile(_owned_by_root(info))
                return
            with open(source, "rb") as handle:
                self._tar.addfile(_owned_by_root(info), handle)

    def _symlink(self, target: str, points_to: str) -> None:
        if self._claim(target):
            self._parents(target)
            info = tarfile.TarInfo(target.lstrip("/"))
            info.type, info.linkname = tarfile.SYMTYPE, points_to
            self._tar.addfile(_owned_by_root(info))

    def _dir(self, target: str, mode: int) -> None:
        if self._claim(target):
            self._parents(target)
            info = tarfile.TarInfo(target.lstrip("/") or ".")
            info.type, info.mode = tarfile.DIRTYPE, mode
            self._tar.addfile(_owned_by_root(info))

    def _text(self, target: str, text: str) -> None:
        if self._claim(target):
            self._parents(target)
            data = text.encode()
            info = tarfile.TarInfo(target.lstrip("/"))
            info.size, info.mode = len(data), 0o644
            self._tar.addfile(_owned_by_root(info), io.BytesIO(data))

    def _parents(self, target: str) -> None:
        parent = os.path.dirname(target)
        if parent not in ("/", "") and parent not in self._added:
            self._dir(parent, 0o755)

    def _claim(self, target: str) -> bool:
        if target in self._added:
            return False
        self._added.add(target)
        return True


def _owned_by_root(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    info.mode &= 0o1777  # no setuid or setgid bit reaches the image; mtimes stay, or every .pyc is stale
    return info


def _dynload_dir(stdlib: Path) -> Path:
    """The base interpreter's extension modules. Inside a venv ``platstdlib`` is the venv's own
    lib folder, which has none, so the build-time location and the stdlib's neighbour come first."""
    candidates = [
        sysconfig.get_config_var("DESTSHARED"),
        stdlib / "lib-dynload",
        Path(sysconfig.get_path("platstdlib")) / "lib-dynload",
    ]
    for candidate in candidates:
        if candidate and Path(candidate).is_dir():
            return Path(candidate)
    return stdlib / "lib-dynload"


def _extensions(dynload: Path) -> Iterator[Path]:
    if dynload.is_dir():
        yield from (p for p in sorted(dynload.glob("*.so")) if not _SKIP_EXTENSIONS.match(p.name))


def shared_libraries(binaries: Iterable[Path]) -> list[Path]:
    """Every library (and the dynamic loader) that ``ldd`` resolves for ``binaries``, in host paths."""
    if shutil.which("ldd") is None:
        raise SandboxError("`ldd` is not on PATH; it is needed to build the sandbox image (install libc-bin)")
    found: set[Path] = set()
    for binary in binaries:
        result = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, check=False)
        if result.returncode != 0:  # a static binary: nothing to add
            continue
        found.update(Path(m.group(1)) for m in _LDD_PATH.finditer(result.stdout))
    return sorted(found)
