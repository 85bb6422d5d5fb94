"""LoRA adapters (peft): one per trained module, on one frozen base model.

The base weights never change, so the reference policy of the KL term is the same model with its
adapters switched off (``disable_adapter``): no second copy is held. Every adapter starts as a
no-op (peft initialises LoRA's B matrix to zero), so at step 0 each trained module *is* the base.

peft keeps one "active" adapter per model; a module's forward pass (rollout or update) activates
its own first. ``set_adapter`` also freezes the adapters it does not activate; :func:`activate`
makes them trainable again so that the optimizer and DDP always see the same parameter set.

A module started from a saved adapter (``policy.lora.init``) gets a second, frozen adapter holding
those starting weights, ``<module>_reference``: its KL reference, a few MB instead of a model copy.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from agentflow_core import ConfigError
from agentflow_rl.flow_grpo.config import LoraConfig

#: The file a checkpoint keeps the adapters in (every adapter, LoRA tensors only).
CHECKPOINT_FILE = "adapters.safetensors"
#: Suffix of the frozen adapter that holds a started module's first weights (its KL reference).
REFERENCE_SUFFIX = "_reference"


def with_adapters(model: Any, roles: Sequence[str], settings: LoraConfig) -> Any:
    """``model`` wrapped by peft with one adapter per role, all trainable; the base frozen."""
    try:
        import peft
    except ImportError:
        raise ConfigError("policy.lora needs peft: pip install 'agentflow[rl]'") from None
    targets: Any = list(settings.target_modules)
    if targets == ["all-linear"]:
        targets = "all-linear"
    config = peft.LoraConfig(
        r=settings.r,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=targets,
        layers_to_transform=_last_layers(model, settings.last_layers),
        bias="none",
        task_type="CAUSAL_LM",
    )
    try:
        with warnings.catch_warnings():  # peft reads transformers' deprecated name; not the user's concern
            warnings.filterwarnings("ignore", "`is_gradient_checkpointing` is deprecated", FutureWarning)
            wrapped = peft.get_peft_model(model, config, adapter_name=roles[0])
    except ValueError as exc:  # peft's message when no module matches target_modules
        raise ConfigError(f"policy.lora.target_modules: {str(exc).splitlines()[0]}") from None
    for role in roles[1:]:
        wrapped.add_adapter(role, config)
    for role, folder in settings.init.items():
        _load_start(wrapped, role, Path(folder), config)
        wrapped.add_adapter(role + REFERENCE_SUFFIX, config)
        copy = peft.get_peft_model_state_dict(wrapped, adapter_name=role)
        peft.set_peft_model_state_dict(wrapped, copy, adapter_name=role + REFERENCE_SUFFIX)
    activate(wrapped, roles[0])
    return wrapped


def _load_start(model: Any, role: str, folder: Path, config: Any) -> None:
    """Put the adapter saved in ``folder`` into ``role``'s, which must have the same shape."""
    import peft

    where = f"policy.lora.init.{role}"
    config_file = folder / "adapter_config.json"
    if not config_file.is_file():
        raise ConfigError(f"{where}: {folder} is not a PEFT adapter folder (it has no adapter_config.json)")
    try:
        saved = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{where}: {config_file} is not readable JSON: {exc}") from None
    _check_same_shape(where, saved, config)
    try:
        weights = peft.utils.load_peft_weights(str(folder), device="cpu")
        result = peft.set_peft_model_state_dict(model, weights, adapter_name=role)
    except (OSError, ValueError, RuntimeError) as exc:
        raise ConfigError(f"{where}: cannot load the adapter in {folder}: {_reason(exc)}") from None
    missing = [k for k in result.missing_keys if "lora_" in k and f".{role}." in k]
    unexpected = [k for k in result.unexpected_keys if "lora_" in k]
    if missing or unexpected or not weights:
        raise ConfigError(
            f"{where}: the adapter in {folder} does not fit this model "
            f"(missing {missing[:2]}, unexpected {unexpected[:2]}): was it trained on another base model?"
        )


def _reason(exc: Exception) -> str:
    """The line that says what is wrong: torch's load error opens with a header line, then the sizes."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()] or [type(exc).__name__]
    return next((line for line in lines if "size mismatch" in line), lines[0])


def _check_same_shape(where: str, saved: Mapping[str, Any], ours: Any) -> None:
    """The saved adapter's shape against this run's peft config: both adapters are the same tensors."""
    if saved.get("peft_type", "LORA") != "LORA":
        raise ConfigError(f"{where}: a {saved.get('peft_type')} adapter, not LoRA")

    def targets(value: Any) -> Any:
        return value if isinstance(value, str) else sorted(value or [])

    def layers(value: Any) -> Any:
        return [value] if isinstance(value, int) else value

    fields = [
        ("r", saved.get("r"), ours.r),
        ("lora_alpha", float(saved.get("lora_alpha") or 0), float(ours.lora_alpha)),
        ("target_modules", targets(saved.get("target_modules")), targets(ours.target_modules)),
        ("layers_to_transform", layers(saved.get("layers_to_transform")), layers(ours.layers_to_transform)),
    ]
    differences = [f"{name} {theirs!r} (this run: {mine!r})" for name, theirs, mine in fields if theirs != mine]
    if differences:
        raise ConfigError(f"{where}: the saved adapter has {'; '.join(differences)}: set policy.lora to match it")


def _last_layers(model: Any, count: int | None) -> list[int] | None:
    """Indices of the last ``count`` decoder layers, or ``None`` for all of them."""
    if count is None:
        return None
    depth = getattr(getattr(model, "config", None), "num_hidden_layers", None)
    if not isinstance(depth, int):
        raise ConfigError("policy.lora.last_layers: the model's config does not say how many layers it has")
    if count > depth:
        raise ConfigError(f"policy.lora.last_layers = {count}, but the model has only {depth} layers")
    return list(range(depth - count, depth))


def is_adapted(model: Any) -> bool:
    return hasattr(model, "peft_config") and hasattr(model, "disable_adapter")


def activate(model: Any, role: str) -> None:
    """Make ``role``'s adapter the one forward passes use, keeping every trained adapter trainable."""
    model.set_adapter(role)
    _fix_trainable(model)


def _fix_trainable(model: Any) -> None:
    for name, parameter in model.named_parameters():
        if "lora_" in name:
            parameter.requires_grad_(f"{REFERENCE_SUFFIX}." not in name)


def has_reference(model: Any, role: str) -> bool:
    """Whether ``role`` started from a saved adapter, which is then its KL reference."""
    return role + REFERENCE_SUFFIX in model.peft_config


@contextmanager
def reference(model: Any, role: str) -> Iterator[Any]:
    """``role``'s KL reference: its starting adapter when it has one, else the base, adapters off."""
    if not has_reference(model, role):
        with base_only(model) as base:
            yield base
        return
    model.set_adapter(role + REFERENCE_SUFFIX)
    _fix_trainable(model)
    try:
        yield model
    finally:
        activate(model, role)


@contextmanager
def base_only(model: Any) -> Iterator[Any]:
    """The base model, adapters off: the reference policy, and the engine of untrained modules."""
    with model.disable_adapter():
        yield model


def adapter_tensors(model: Any) -> dict[str, Any]:
    """Every adapter's LoRA tensors, by their full parameter names (what a checkpoint holds)."""
    return {name: tensor for name, tensor in model.state_dict().items() if "lora_" in name}


def save_checkpoint_adapters(model: Any, folder: str | Path) -> None:
    from safetensors.torch import save_file

    tensors = {name: t.detach().contiguous().cpu() for name, t in adapter_tensors(model).items()}
    save_file(tensors, str(Path(folder) / CHECKPOINT_FILE))


def load_checkpoint_adapters(model: Any, folder: str | Path) -> None:
    """Load a checkpoint's adapters; the set of tensors must match this run's adapters exactly."""
    from safetensors.torch import load_file

    path = Path(folder) / CHECKPOINT_FILE
    if not path.is_file():
        raise ConfigError(f"checkpoint {folder} holds no {CHECKPOINT_FILE}: it was not written by a LoRA run")
    saved = load_file(str(path))
    expected = set(adapter_tensors(model))
    if set(saved) != expected:
        missing, extra = sorted(expected - set(saved)), sorted(set(saved) - expected)
        raise ConfigError(
            f"checkpoint {folder} has other adapters than this run (missing {missing[:2]}, unexpected {extra[:2]}): "
            "train.modules or policy.lora changed since it was written"
        )
    model.load_state_dict(saved, strict=False)


def export_adapters(model: Any, tokenizer: Any, roles: Sequence[str], folder: Path) -> dict[str, Path]:
    """A standard PEFT adapter folder per role (``adapter_config.json`` + ``adapter_model.safetensors``).

    Loadable by ``PeftModel.from_pretrained``, by the ``hf`` engine's ``adapter`` option and by
    ``vllm serve --enable-lora --lora-modules NAME=FOLDER``. The tokenizer is saved beside it.
    """
    folders = {}
    for role in roles:
        target = folder / role
        model.save_pretrained(str(target.parent / f".{role}-tmp"), selected_adapters=[role])
        written = target.parent / f".{role}-tmp" / role
        target.mkdir(parents=True, exist_ok=True)
        for item in written.iterdir():
            item.replace(target / item.name)
        _remove_tree(target.parent / f".{role}-tmp")
        tokenizer.save_pretrained(str(target))
        folders[role] = target
    return folders


def export_merged(model: Any, tokenizer: Any, roles: Sequence[str], folder: Path) -> dict[str, Path]:
    """A plain transformers folder per role, its adapter merged into a copy of the base weights."""
    import copy

    folders = {}
    for role in roles:
        twin = copy.deepcopy(model)
        merged = twin.merge_and_unload(adapter_names=[role])
        target = folder / role
        merged.save_pretrained(str(target), safe_serialization=True)
        tokenizer.save_pretrained(str(target))
        folders[role] = target
        del twin, merged
    return folders


def _remove_tree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)
