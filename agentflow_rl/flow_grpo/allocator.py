"""Keep a CPU training process's memory at what it uses, not at what glibc kept from earlier steps.

PyTorch on the CPU allocates tensors with plain ``malloc``. glibc serves large blocks with ``mmap``
and gives them back on ``free``, but it raises that threshold each time such a block is freed (up
to 32 MB), after which activations of a few MB land on the heap, where freed space is kept for
reuse and fragments; worker threads (the rollout engine's) get heaps of their own. A step's peak
resident memory then creeps up from step to step. Fixing the threshold (which also stops glibc
moving it) and capping the number of heaps keeps each step's peak where its tensors put it.

Two more things hold memory from step to step. Freed blocks under the threshold stay in the heaps
until ``malloc_trim`` hands their whole free pages back, which the trainer calls after every
rollout batch and every micro-batch of the update. And oneDNN, PyTorch's CPU matmul backend, keeps
up to 1024 compiled primitives, one per layer shape seen, and a rollout or update sees new shapes
at every prompt length: on SmolLM2 in bfloat16 that cache alone grew a LoRA update by ~150 MB over
20 micro-batches of different lengths. Capped at 64 (the shapes of the last few micro-batches), it
grew by ~90 MB, as with no cache at all, for an update ~6% slower; with no cache it was 1.75x slower.
Above that cache sits a second one: ideep, the wrapper PyTorch calls oneDNN through, keeps up to
1024 matmul primitives per thread, keyed by shape as well, each with its descriptor and kernel,
whether or not oneDNN's cache still holds them (~0.27 MB each: 300 bfloat16 matmul shapes grew the
heap by 174 MB with both caches at their defaults, 101 MB with oneDNN's at 64, 22 MB with ideep's
at 1 as well). Its capacity is ``LRU_CACHE_CAPACITY``; at 1 a call with another shape than the
last rebuilds the descriptor, and 30 LoRA forward and backward passes over 15 lengths took the
same time (702 against 703 s) for 56 MB less.

The price is time: every freed block of a MB or more is unmapped, so the next tensor of that size is
faulted in again page by page (on SmolLM2, steps about a quarter slower). Hence opt-in, for runs
with a memory budget: ``[run] release_freed_memory``.
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
