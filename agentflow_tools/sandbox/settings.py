"""What a Docker sandbox is made of: its settings and the exact options of each container.

What a container isolates: no network, a read-only root filesystem, no capabilities,
``no-new-privileges``, Docker's seccomp profile, its own PID and IPC namespaces, memory (without
swap), CPU, PID, file-size and open-file limits, and an environment that holds nothing of ours.
Code runs as uid 65534, like the runner that supervises it; the container's idle process runs as
65533, out of the code's reach.
"""

from __future__ import annotations

import os
from typing import Any

import attrs

WORKDIR = "/sandbox"
RUN_USER = "65534:65534"
IDLE_USER = "65533:65533"
#: Every container we start carries these labels, so ``agentflow sandbox prune`` can find leftovers.
LABEL, OWNER_LABEL = "agentflow.sandbox", "agentflow.sandbox.owner"
#: Most files and directories a run may create in ``/tmp`` or the work dir: bounds the wipe after it.
MAX_INODES = 16384


@attrs.frozen
class DockerSettings:
    """Every knob of a ``DockerSandbox``; ``[tools.python_coder]`` takes the same keys."""

    #: Any image with ``python3`` (3.8+) and ``sleep`` on PATH; never pulled or built. Unset: the local
    #: image ``agentflow-sandbox:local`` (or ``$AGENTFLOW_SANDBOX_TAG``), built from this machine's Python
    #: the first time it is needed (``agentflow sandbox build`` builds it now).
    image: str | None = None
    #: Wall-clock limit of one run (``run(timeout_s=...)`` overrides it), enforced in the container
    #: and again by a host watchdog.
    timeout_s: float = attrs.field(default=10.0, validator=attrs.validators.gt(0))
    #: Memory of one container, in MiB, with no swap on top; a run that needs more is killed.
    memory_mb: int = attrs.field(default=256, validator=attrs.validators.ge(32))
    #: CPUs one container may use; a fraction caps it at that share of one CPU.
    cpus: float = attrs.field(default=1.0, validator=attrs.validators.gt(0))
    #: Processes and threads in one container, the runner's three included.
    pids: int = attrs.field(default=64, validator=attrs.validators.ge(8))
    #: Containers kept warm; also the most runs at once.
    pool_size: int = attrs.field(default=2, validator=attrs.validators.ge(1))
    #: Kept of stdout (its start) and of stderr (its end); the rest is dropped and flagged.
    max_output_chars: int = attrs.field(default=8000, validator=attrs.validators.ge(100))
    #: Size of ``/tmp`` (in memory) and of the shared memory, in MiB each.
    tmp_mb: int = attrs.field(default=16, validator=attrs.validators.ge(1))
    #: Size of the working directory ``/sandbox`` (in memory), in MiB.
    workdir_mb: int = attrs.field(default=32, validator=attrs.validators.ge(1))
    #: Largest file the code may write, in MiB (RLIMIT_FSIZE).
    max_file_mb: int = attrs.field(default=16, validator=attrs.validators.ge(1))
    #: Most files the code may hold open at once (RLIMIT_NOFILE).
    max_open_files: int = attrs.field(default=256, validator=attrs.validators.ge(16))


def container_options(settings: DockerSettings, image: str) -> dict[str, Any]:
    """Everything ``containers.create`` gets; the container idles until its runner is started in it."""
    from docker.types import Ulimit

    memory = f"{settings.memory_mb}m"
    file_size = settings.max_file_mb * 1024 * 1024
    tmpfs_flags = f"nosuid,nodev,noexec,nr_inodes={MAX_INODES}"
    return {
        "image": image,
        "command": ["sleep", "infinity"],
        "init": True,  # an init as PID 1 reaps the orphans a run leaves behind
        "user": IDLE_USER,
        "working_dir": WORKDIR,
        "hostname": "sandbox",
        "environment": {},
        "network_mode": "none",
        "read_only": True,
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"],
        "mem_limit": memory,
        "memswap_limit": memory,  # equal: no swap
        "nano_cpus": int(settings.cpus * 1e9),
        "pids_limit": settings.pids,
        "shm_size": f"{settings.tmp_mb}m",
        "tmpfs": {
            "/tmp": f"size={settings.tmp_mb}m,mode=1777,{tmpfs_flags}",
            WORKDIR: f"size={settings.workdir_mb}m,uid=65534,gid=65534,mode=0700,{tmpfs_flags}",
        },
        "ulimits": [
            Ulimit(name="fsize", soft=file_size, hard=file_size),
            Ulimit(name="nofile", soft=settings.max_open_files, hard=settings.max_open_files),
            Ulimit(name="core", soft=0, hard=0),
        ],
        "labels": {LABEL: "1", OWNER_LABEL: str(os.getpid())},
    }
