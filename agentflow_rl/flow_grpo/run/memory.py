"""Machine tuning for a CPU training process: its memory stays at what a step uses, not at what glibc kept.

PyTorch on the CPU allocates tensors with plain ``malloc``. glibc serves large blocks with ``mmap``
and gives them back on ``free``, but raises that threshold each time such a block is freed, after
which activations of a few MB land on the heap, where freed space is kept for reuse and fragments;
worker threads get heaps of their own. A step's peak then creeps up from step to step. Fixing the
threshold (which also stops glibc moving it) and capping the number of heaps keeps each peak where
its tensors put it, and ``trim`` hands the heaps' free pages back after each rollout batch and
micro-batch.

Two caches keyed by tensor shape hold memory too, and a rollout or an update meets new shapes at
every prompt length: oneDNN's primitive cache and, above it, ideep's per-thread one. Both are
capped through their environment variables, at sizes that cost no measurable time.

The price is time: every freed block of a MB or more is unmapped, so the next tensor of that size
is faulted in again page by page. Hence opt-in, for runs with a memory budget: ``[run]
release_freed_memory``. The measurements behind each setting are in ``docs/flow-grpo.md`` ("The CPU
allocator" and the memory sections that follow it).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import sys
from typing import Any

#: ``mallopt`` parameters (glibc's malloc.h).
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8

#: Blocks from this size up are mapped and unmapped on their own.
MMAP_THRESHOLD = 1 << 20

#: oneDNN's primitive cache capacity (its environment variable, read at the first primitive made).
PRIMITIVE_CACHE_VARIABLE = "ONEDNN_PRIMITIVE_CACHE_CAPACITY"
PRIMITIVE_CACHE_CAPACITY = 64
#: ideep's per-thread cache of primitives (its environment variable, read when a thread first uses it).
IDEEP_CACHE_VARIABLE = "LRU_CACHE_CAPACITY"
IDEEP_CACHE_CAPACITY = 1


def return_freed_memory() -> bool:
    """Tune glibc's allocator and oneDNN's and ideep's caches for this process; False where there is
    no glibc (macOS, musl). The cache settings take effect only if no oneDNN primitive was made
    before, so call this before the first forward pass; a capacity set in the environment is kept."""
    os.environ.setdefault(PRIMITIVE_CACHE_VARIABLE, str(PRIMITIVE_CACHE_CAPACITY))
    os.environ.setdefault(IDEEP_CACHE_VARIABLE, str(IDEEP_CACHE_CAPACITY))
    libc = _glibc()
    if libc is None:
        return False
    mallopt = libc.mallopt
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_ARENA_MAX, 2))


def trim() -> bool:
    """Hand the heaps' free pages back to the system (after a step's tensors were freed)."""
    libc = _glibc()
    if libc is None:
        return False
    libc.malloc_trim.argtypes, libc.malloc_trim.restype = [ctypes.c_size_t], ctypes.c_int
    libc.malloc_trim(0)
    return True


@functools.cache
def _glibc() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None  # glibc's, not POSIX
