"""A PEFT LoRA adapter folder, rewritten as the LoRA GGUF file that llama.cpp loads beside its model.

Flow-GRPO trains each module's adapter with peft on the transformers copy of the embedded model
and saves it as a PEFT folder (``adapter_config.json`` + ``adapter_model.safetensors``); the
``llamacpp`` engine that serves the embedded model reads adapters only as GGUF. llama.cpp's own
converter is a script in its source tree, not in the ``gguf`` package or any wheel, and it needs the
base model's Hugging Face folder, which the embedded model does not have, so the conversion lives
here and reads what it needs from the base GGUF instead.

What changes between the two forms, and why:

* names: ``model.layers.N.self_attn.q_proj`` becomes ``blk.N.attn_q`` (gguf's own tensor map), with
  ``.lora_a`` / ``.lora_b`` for peft's ``lora_A`` / ``lora_B`` (same shapes: ``r x in``, ``out x r``);
* rotary layout: the HF-to-GGUF conversion of a Llama reorders the rows of the query and key
  weights of every head (HF keeps the two halves of each rotary pair apart, llama.cpp interleaves
  them). ``W + s B A`` keeps that order only if ``B``'s rows move the same way, so they do;
* scaling: llama.cpp multiplies by ``adapter.lora.alpha / r``, with ``r`` read from each tensor,
  which is peft's ``lora_alpha / r``; a rank-stabilised adapter (``alpha / sqrt(r)``) gets the
  difference folded into ``B``.

Anything llama.cpp would apply differently from peft (DoRA, LoRA biases, fully trained
``modules_to_save``, embedding or head adapters, per-module alphas) is refused with one line.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from agentflow_core.errors import UsageError

if TYPE_CHECKING:
    import numpy as np

CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"
#: The architectures whose tensor layout this converter knows.
ARCHITECTURES = ("llama",)
#: peft's names for a Llama decoder layer's linear layers.
LLAMA_LINEAR_LAYERS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
DTYPES = ("f16", "f32")

_BLOCK = re.compile(r"^blk\.(\d+)\.")
_KEY = re.compile(r"^(?:base_model\.model\.)?(model\.layers\.(\d+)\.(?:self_attn|mlp)\.(\w+))\.lora_([AB])\.weight$")
#: Config settings whose effect llama.cpp cannot reproduce, with the value that means "not used".
_UNSUPPORTED = {
    "use_dora": (False, "a DoRA adapter"),
    "lora_bias": (False, "an adapter with LoRA biases (lora_bias)"),
    "fan_in_fan_out": (False, "a fan_in_fan_out adapter (GPT-2 style Conv1D layers)"),
    "layer_replication": (None, "an adapter with layer_replication"),
}


@attrs.frozen
class BaseModel:
    """What the converter needs to know of the GGUF model an adapter will be applied to."""

    path: Path
    architecture: str
    heads: int
    kv_heads: int
    #: Every tensor's shape as numpy reads it: ``(out, in)`` for a linear layer's weight.
    shapes: Mapping[str, tuple[int, ...]]

    @property
    def blocks(self) -> int:
        """How many decoder layers (``blk.N``) the model has."""
        return 1 + max((int(m.group(1)) for m in map(_BLOCK.match, self.shapes) if m), default=-1)


@attrs.frozen
class Exported:
    """One written adapter file, described."""

    path: Path
    alpha: float
    #: The largest LoRA rank among its layers.
    rank: int
    #: How many weight matrices it adapts (each with a ``lora_a`` / ``lora_b`` pair).
    weights: int
    size_bytes: int


def read_base(path: Path) -> BaseModel:
    """The architecture, head counts and tensor shapes of a GGUF model file."""
    from gguf import GGUFReader

    try:
        reader = GGUFReader(str(path))
    except (OSError, ValueError) as exc:
        raise UsageError(f"base model {path}: not a readable GGUF file: {exc}") from None

    def field(key: str) -> Any:
        found = reader.get_field(key)
        if found is None:
            raise UsageError(f"base model {path}: no {key} in its metadata")
        return found.contents()

    arch = str(field("general.architecture"))
    if arch not in ARCHITECTURES:
        raise UsageError(f"base model {path}: architecture {arch!r}; only {', '.join(ARCHITECTURES)} is supported")
    heads = int(field(f"{arch}.attention.head_count"))
    kv_found = reader.get_field(f"{arch}.attention.head_count_kv")
    kv_heads = int(kv_found.contents()) if kv_found is not None else heads
    # GGUF lists dimensions innermost first; numpy's order is the reverse.
    shapes = {t.name: tuple(int(d) for d in reversed(t.shape.tolist())) for t in reader.tensors}
    return BaseModel(path, arch, heads, kv_heads, shapes)


def convert(folder: Path, out: Path, base: BaseModel, *, dtype: str = "f16") -> Exported:
    """Write the PEFT adapter in ``folder`` as a llama.cpp LoRA GGUF at ``out`` for ``base``."""
    if dtype not in DTYPES:
        raise UsageError(f"dtype {dtype!r}: choose one of {', '.join(DTYPES)}")
    import gguf

    config = read_peft_config(folder)
    alpha = float(config["lora_alpha"])
    pairs = _pairs(folder, _read_weights(folder))
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, base.blocks)
    tensors: dict[str, np.ndarray] = {}
    for module, (a, b) in sorted(pairs.items(), key=lambda item: _layer_order(item[0])):
        name, a, b = _to_gguf(module, a, b, base, names, use_rslora=bool(config.get("use_rslora")))
        tensors[f"{name}.lora_a"], tensors[f"{name}.lora_b"] = a, b
    _write(out, base.architecture, alpha, tensors, dtype)
    rank = max(a.shape[0] for a, _ in pairs.values())
    return Exported(out, alpha, rank, len(pairs), out.stat().st_size)


def read_peft_config(folder: Path) -> dict[str, Any]:
    """``adapter_config.json``, checked for what a llama.cpp LoRA can express."""
    path = folder / CONFIG_FILE
    if not path.is_file():
        raise UsageError(f"{folder} is not a PEFT adapter folder: it has no {CONFIG_FILE}")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path}: not readable JSON: {exc}") from None
    if not isinstance(config, dict):
        raise UsageError(f"{path}: expected a JSON object")
    kind = config.get("peft_type", "LORA")
    if kind != "LORA":
        raise UsageError(f"{path}: a {kind} adapter; only LoRA converts to GGUF")
    for key, (unused, what) in _UNSUPPORTED.items():
        if config.get(key, unused) not in (unused, False, None):
            raise UsageError(f"{path}: {what} cannot be converted: llama.cpp applies plain LoRA only")
    if config.get("bias", "none") != "none":
        raise UsageError(f"{path}: bias = {config['bias']!r}: trained biases have no place in a llama.cpp LoRA")
    if config.get("modules_to_save"):
        raise UsageError(f"{path}: modules_to_save {config['modules_to_save']} are full weights, not LoRA")
    if config.get("alpha_pattern"):
        raise UsageError(f"{path}: alpha_pattern gives layers their own alpha; a LoRA GGUF has one alpha")
    alpha = config.get("lora_alpha")
    if isinstance(alpha, bool) or not isinstance(alpha, int | float) or alpha <= 0:
        raise UsageError(f"{path}: lora_alpha must be a positive number, got {alpha!r}")
    return config


def _read_weights(folder: Path) -> dict[str, Any]:
    path = folder / WEIGHTS_FILE
    if not path.is_file():
        legacy = (folder / "adapter_model.bin").exists()
        hint = " (adapter_model.bin, a pickle, is not read: save with safetensors)" if legacy else ""
        raise UsageError(f"{folder}: no {WEIGHTS_FILE}{hint}")
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        tensors = load_file(str(path))
    except (OSError, SafetensorError) as exc:
        raise UsageError(f"{path}: not a readable safetensors file: {exc}") from None
    return {key: tensor.float().numpy() for key, tensor in tensors.items()}


def _pairs(folder: Path, weights: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """``{"model.layers.3.self_attn.q_proj": (A, B)}``; any tensor that is not a layer's LoRA is refused."""
    found: dict[str, dict[str, Any]] = {}
    for key, tensor in weights.items():
        match = _KEY.match(key)
        if match is None:
            raise UsageError(f"{folder}: tensor {key} is not a decoder layer's LoRA A or B; it cannot be converted")
        module, _, layer_kind, half = match.groups()
        if layer_kind not in LLAMA_LINEAR_LAYERS:
            known = ", ".join(LLAMA_LINEAR_LAYERS)
            raise UsageError(f"{folder}: tensor {key} adapts {layer_kind!r}, not one of the known layers ({known})")
        found.setdefault(module, {})[half] = tensor
    if not found:
        raise UsageError(f"{folder}: {WEIGHTS_FILE} holds no LoRA tensors")
    pairs = {}
    for module, halves in found.items():
        if set(halves) != {"A", "B"}:
            missing = "B" if "A" in halves else "A"
            raise UsageError(f"{folder}: {module} has no lora_{missing}; the adapter file is incomplete")
        pairs[module] = (halves["A"], halves["B"])
    return pairs


def _layer_order(module: str) -> tuple[int, str]:
    match = re.search(r"layers\.(\d+)\.", module)
    return (int(match.group(1)) if match else -1, module)


def _to_gguf(
    module: str, a: np.ndarray, b: np.ndarray, base: BaseModel, names: Any, *, use_rslora: bool
) -> tuple[str, Any, Any]:
    """The GGUF name of ``module``'s weight and its A and B as llama.cpp applies them to ``base``."""
    import gguf

    mapped = names.get_type_and_name(module)
    if mapped is None:
        raise UsageError(f"{module}: no such layer in base model {base.path} ({base.blocks} layers)")
    kind, name = mapped[0], f"{mapped[1]}.weight"
    weight = base.shapes.get(name)
    rank = a.shape[0]
    if weight is None or a.ndim != 2 or b.ndim != 2 or (b.shape[0], a.shape[1]) != weight or b.shape[1] != rank:
        raise UsageError(
            f"{module}: LoRA A {tuple(a.shape)} and B {tuple(b.shape)} do not fit {name} {weight} "
            f"of base model {base.path}: was the adapter trained on another model?"
        )
    if kind == gguf.MODEL_TENSOR.ATTN_Q:
        b = _rotary_rows(b, base.heads)
    elif kind == gguf.MODEL_TENSOR.ATTN_K:
        b = _rotary_rows(b, base.kv_heads)
    if use_rslora:  # peft scales by alpha / sqrt(r), llama.cpp by alpha / r
        b = b * math.sqrt(rank)
    return name, a, b


def _rotary_rows(b: np.ndarray, heads: int) -> np.ndarray:
    """``b``'s rows in llama.cpp's order: within each head, rotary pair halves interleaved.

    HF's Llama keeps a head's rows as ``[x_0 .. x_{d/2-1}, y_0 .. y_{d/2-1}]`` (rotate-half form);
    the GGUF weight holds them as ``[x_0, y_0, x_1, y_1, ...]``.
    """
    rows, rank = b.shape
    half = rows // heads // 2
    return b.reshape(heads, 2, half, rank).transpose(0, 2, 1, 3).reshape(rows, rank)


def _write(out: Path, arch: str, alpha: float, tensors: Mapping[str, np.ndarray], dtype: str) -> None:
    import gguf
    import numpy as np

    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    writer = gguf.GGUFWriter(str(partial), arch)
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, alpha)
    numpy_dtype = np.float16 if dtype == "f16" else np.float32
    for name, tensor in tensors.items():
        writer.add_tensor(name, np.ascontiguousarray(tensor, dtype=numpy_dtype))
    try:
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
    finally:
        writer.close()
    partial.replace(out)  # a half-written file never sits where an engine would load it
