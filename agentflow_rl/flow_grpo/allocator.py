"""Keep a CPU training process's memory at what it uses, not at what glibc kept from earlier steps.

PyTorch on the CPU allocates tensors with plain ``malloc``. glibc serves large blocks with ``mmap``
and gives them back on ``free``, but it raises that threshold each time such a block is freed (up
to 32 MB), after which activations of a few MB land on the heap, where freed space is kept for
reuse and fragments; worker threads (the rollout engine's) get heaps of their own. A step's peak
resident memory then creeps up from step to step. Fixing the threshold (which also stops glibc
moving it) and capping the number of heaps keeps each step's peak where its tensors put it.

The price is time: every freed block of a MB or more is unmapped, so the next tensor of that size is
faulted in again page by page (on SmolLM2, steps about a quarter slower). Hence opt-in, for runs
with a memory budget: ``[run] release_freed_memory``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

#: ``mallopt`` parameters (glibc's malloc.h).
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8

#: Blocks from this size up are mapped and unmapped on their own.
MMAP_THRESHOLD = 1 << 20


def return_freed_memory() -> bool:
    """Tune glibc's allocator for this process; False where there is no glibc (macOS, musl)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_ARENA_MAX, 2))
