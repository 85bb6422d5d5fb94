"""PEFT adapter folders written from numbers, for tests that need an adapter but not a training run.

The folders look exactly like ``save_pretrained`` writes them (``adapter_config.json`` and
``adapter_model.safetensors`` with peft's tensor names), sized for the base GGUF they are meant for,
so they convert and load like trained ones without loading transformers.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from agentflow_rl.gguf_lora import LLAMA_LINEAR_LAYERS, BaseModel

_PARENT = {"q_proj": "self_attn", "k_proj": "self_attn", "v_proj": "self_attn", "o_proj": "self_attn"}
_GGUF = {
    "q_proj": "attn_q",
    "k_proj": "attn_k",
    "v_proj": "attn_v",
    "o_proj": "attn_output",
    "gate_proj": "ffn_gate",
    "up_proj": "ffn_up",
    "down_proj": "ffn_down",
}


def peft_key(layer: int, module: str, half: str) -> str:
    """peft's saved name of one LoRA matrix, ``half`` being ``A`` or ``B``."""
    return f"base_model.model.model.layers.{layer}.{_PARENT.get(module, 'mlp')}.{module}.lora_{half}.weight"


def write_peft_adapter(
    folder: Path,
    base: BaseModel,
    *,
    layers: Iterable[int],
    modules: Iterable[str] = LLAMA_LINEAR_LAYERS,
    rank: int = 4,
    alpha: float = 8.0,
    scale: float = 0.05,
    seed: int = 0,
    config: Mapping[str, Any] | None = None,
    tensors: Mapping[str, np.ndarray] | None = None,
) -> Path:
    """A random LoRA (non-zero A and B, so it changes the model) for ``base``'s linear layers.

    ``config`` adds or replaces keys of ``adapter_config.json``; ``tensors`` adds or replaces tensors.
    """
    from safetensors.numpy import save_file

    rng = np.random.default_rng(seed)
    layers, modules = list(layers), list(modules)
    weights: dict[str, np.ndarray] = {}
    for layer in layers:
        for module in modules:
            out, into = base.shapes[f"blk.{layer}.{_GGUF[module]}.weight"]
            weights[peft_key(layer, module, "A")] = rng.normal(0, 0.1, (rank, into)).astype(np.float32)
            weights[peft_key(layer, module, "B")] = rng.normal(0, scale, (out, rank)).astype(np.float32)
    weights.update(tensors or {})
    settings: dict[str, Any] = {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "r": rank,
        "lora_alpha": alpha,
        "target_modules": modules,
        "layers_to_transform": layers,
        "bias": "none",
        "use_dora": False,
        "use_rslora": False,
        "modules_to_save": None,
        "rank_pattern": {},
        "alpha_pattern": {},
    }
    settings.update(config or {})
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "adapter_config.json").write_text(json.dumps(settings), encoding="utf-8")
    save_file(weights, str(folder / "adapter_model.safetensors"))
    return folder
