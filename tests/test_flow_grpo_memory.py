"""The CPU allocator setting: glibc gives a freed large block back at once only when asked to.

Each case runs in a fresh interpreter, since glibc's thresholds move with the process's history.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from agentflow_rl.flow_grpo.config import bundled_config, load_train_config
from agentflow_rl.flow_grpo.run import memory

# What both probes run first: raw malloc and free, and the process's resident size.
_PRELUDE = textwrap.dedent(
    """
    import ctypes, ctypes.util, os, sys
    from agentflow_rl.flow_grpo.run import memory

    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]

    def resident_mib():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

    def touched(size):
        block = libc.malloc(size)
        ctypes.memset(block, 1, size)
        return block
    """
)

# A 6 MB block after an 8 MB one was freed: glibc's moving threshold has risen to 8 MB by then, so
# by default the block comes from the heap and stays resident once freed; with the threshold fixed
# at 1 MB it is mapped on its own and unmapped by free.
_PROBE = _PRELUDE + textwrap.dedent(
    """
    if sys.argv[1] == "release":
        assert memory.return_freed_memory()
    libc.free(touched(8 << 20))
    before = resident_mib()
    libc.free(touched(6 << 20))
    print(resident_mib() - before)
    """
)

# 64 MB of 1 KB blocks, under any mmap threshold, freed below a block still in use: the heap cannot
# shrink past that block, so the freed pages stay resident until malloc_trim hands them back.
_HEAP_PROBE = _PRELUDE + textwrap.dedent(
    """
    assert memory.return_freed_memory()
    before = resident_mib()
    blocks = [touched(1024) for _ in range(64 * 1024)]
    pinned = touched(1024)
    for block in blocks:
        libc.free(block)
    kept = resident_mib() - before
    assert memory.trim()
    print(kept, resident_mib() - before)
    """
)

# No glibc needed: the cache capacity is set wherever the trainer runs.
_CACHE_PROBE = textwrap.dedent(
    """
    import os
    from agentflow_rl.flow_grpo.run import memory

    memory.return_freed_memory()
    print(os.environ[memory.PRIMITIVE_CACHE_VARIABLE], os.environ[memory.IDEEP_CACHE_VARIABLE])
    """
)


# The heap a bfloat16 matmul at 300 new shapes leaves in use: oneDNN's and ideep's caches keep a
# primitive per shape unless capped.
_SHAPES_PROBE = _PRELUDE + textwrap.dedent(
    """
    import torch

    class MallInfo(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in
                    "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]

    libc.mallinfo2.restype = MallInfo
    if sys.argv[1] == "release":
        assert memory.return_freed_memory()
    torch.set_num_threads(1)
    weight = torch.randn(576, 576, dtype=torch.bfloat16)
    torch.randn(8, 576, dtype=torch.bfloat16) @ weight
    libc.malloc_trim(0)
    before = libc.mallinfo2().uordblks
    for rows in range(100, 400):
        torch.randn(rows, 576, dtype=torch.bfloat16) @ weight
    libc.malloc_trim(0)
    print((libc.mallinfo2().uordblks - before) / 2**20)
    """
)


def _kept_after_free(mode: str) -> float:
    done = subprocess.run([sys.executable, "-c", _PROBE, mode], capture_output=True, text=True, check=True)
    return float(done.stdout.strip())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt: Linux only")
def test_release_gives_a_freed_block_back_and_the_default_keeps_it() -> None:
    assert _kept_after_free("release") < 1.0
    assert _kept_after_free("default") > 5.0


def _probe_output(probe: str, *args: str, **environment: str) -> list[str]:
    cache_variables = {memory.PRIMITIVE_CACHE_VARIABLE, memory.IDEEP_CACHE_VARIABLE}
    env = {k: v for k, v in os.environ.items() if k not in cache_variables} | environment
    done = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True, text=True, check=True, env=env)
    return done.stdout.split()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim: Linux only")
def test_trim_gives_back_the_free_pages_a_live_block_holds_in_the_heap() -> None:
    kept, trimmed = map(float, _probe_output(_HEAP_PROBE))
    assert kept > 50.0  # 64 MB freed, still resident
    assert trimmed < 8.0


def test_release_caps_onednn_and_ideep_caches_unless_the_environment_set_them() -> None:
    defaults = [str(memory.PRIMITIVE_CACHE_CAPACITY), str(memory.IDEEP_CACHE_CAPACITY)]
    assert _probe_output(_CACHE_PROBE) == defaults
    assert _probe_output(_CACHE_PROBE, ONEDNN_PRIMITIVE_CACHE_CAPACITY="7", LRU_CACHE_CAPACITY="9") == ["7", "9"]


def _bfloat16_matmul_goes_through_onednn() -> bool:
    import torch

    return torch.backends.mkldnn.is_available() and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallinfo2: Linux only")
def test_release_keeps_new_matmul_shapes_from_piling_up_primitives_in_the_heap() -> None:
    if not _bfloat16_matmul_goes_through_onednn():
        if os.environ.get("CI"):
            pytest.fail("CI's CPU runs bfloat16 matmuls outside oneDNN: the cache caps go unchecked")
        pytest.skip("this CPU runs bfloat16 matmuls outside oneDNN")
    (kept,) = map(float, _probe_output(_SHAPES_PROBE, "default"))
    (capped,) = map(float, _probe_output(_SHAPES_PROBE, "release"))
    assert kept > 80.0  # ~170 MB measured: two caches of up to 1024 primitives each
    assert capped < 40.0  # ~22 MB: oneDNN's 64 primitives


def test_only_the_memory_budgeted_config_trades_speed_for_a_steady_peak() -> None:
    assert load_train_config(bundled_config("smollm2.toml")).run.release_freed_memory is False
    assert load_train_config(bundled_config("tool_choice.toml")).run.release_freed_memory is True
