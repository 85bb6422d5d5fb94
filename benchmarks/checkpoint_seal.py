"""What making a training checkpoint durable and verifiable costs, by its size.

Writes a stand-in checkpoint (one weights file and an optimizer file twice its size, random bytes)
and times what ``agentflow_rl.flow_grpo.run.manifest`` adds to a save and a resume:

* ``seal``: fsync every file and folder and write the manifest, with and without SHA-256 checksums
  (``run.checkpoint_checksums``); the write itself is timed apart, for scale;
* ``damage``: the check a resume makes before loading (sizes, then checksums).

The files were just written, so they are read back from the page cache: that is the save's case.
A resume after a reboot reads them from the disk instead, at the disk's speed.

    python benchmarks/checkpoint_seal.py                 # a 1 GiB checkpoint in a temporary folder
    python benchmarks/checkpoint_seal.py --mib 4096 --dir /data/scratch
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from agentflow_rl.flow_grpo.run.manifest import COMPLETE, damage, seal

BLOCK = 1 << 24


def write_stand_in(folder: Path, mib: int) -> tuple[float, float]:
    """A checkpoint of ``mib`` MiB: a third weights, two thirds optimizer state (one random block repeated)."""
    block = os.urandom(BLOCK)

    def write() -> None:
        for name, share in (("model.safetensors", 1), ("optimizer.bin", 2)):
            left = mib * (1 << 20) * share // 3
            with (folder / name).open("wb") as out:
                while left > 0:
                    out.write(block[: min(BLOCK, left)])
                    left -= BLOCK

    return timed(write)


def timed(action: Callable[[], object]) -> tuple[float, float]:
    """Wall and CPU seconds of ``action`` (the CPU figure is the one a busy machine does not inflate)."""
    wall, cpu = time.perf_counter(), time.process_time()
    action()
    return time.perf_counter() - wall, time.process_time() - cpu


def report(label: str, mib: int, took: tuple[float, float]) -> None:
    wall, cpu = took
    print(f"{label + ':':24} {wall:7.2f} s wall ({mib / wall:6,.0f} MiB/s), {cpu:6.2f} s CPU ({mib / cpu:6,.0f} MiB/s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mib", type=int, default=1024, help="size of the stand-in checkpoint")
    parser.add_argument("--dir", default=None, help="where to write it (default: a temporary folder)")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="checkpoint-seal-", dir=args.dir))
    try:
        folder = root / "checkpoints" / "step-0000001"
        folder.mkdir(parents=True)
        print(f"{args.mib} MiB in {folder}")
        report("write (page cache)", args.mib, write_stand_in(folder, args.mib))
        for checksums in (False, True):
            (folder / COMPLETE).unlink(missing_ok=True)
            took = timed(lambda checksums=checksums: seal(folder, 1, {}, checksums=checksums))
            report("seal, fsync + SHA-256" if checksums else "seal, fsync only", args.mib, took)
        report("damage (resume check)", args.mib, timed(lambda: damage(folder)))
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
