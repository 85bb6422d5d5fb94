"""PEFT → GGUF LoRA conversion: llama.cpp with the converted adapter computes what peft computes.

The proof runs the embedded SmolLM2 GGUF twice: in transformers (dequantised, as Flow-GRPO trains
it) with a peft adapter, and in llama.cpp with that adapter converted. The quantised model puts a
floor under how close the two can ever be, so it is measured first (bare model in both), and the
adapter is made strong enough that its effect dwarfs that floor: a converter that got a layout,
a name or a scale wrong could not pass.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from agentflow_core.errors import UsageError
from agentflow_rl import gguf_lora
from tests.lora_support import peft_key, write_peft_adapter
from tests.test_cli import agentflow

pytest.importorskip("gguf")
pytest.importorskip("safetensors")


@pytest.fixture(scope="module")
def base() -> gguf_lora.BaseModel:
    from agentflow_core.engines.embedded import smollm2_gguf_path

    return gguf_lora.read_base(smollm2_gguf_path())


def test_reads_the_embedded_models_shape(base: gguf_lora.BaseModel) -> None:
    assert (base.architecture, base.heads, base.kv_heads) == ("llama", 9, 3)
    assert base.shapes["blk.0.attn_k.weight"] == (192, 576)  # (out, in), as numpy and peft see it


def test_writes_an_adapter_gguf_with_llama_cpps_names_and_keys(tmp_path: Path, base: gguf_lora.BaseModel) -> None:
    from gguf import GGUFReader

    folder = write_peft_adapter(tmp_path / "peft", base, layers=[28, 29], rank=4, alpha=8)
    done = gguf_lora.convert(folder, tmp_path / "planner.gguf", base)

    reader = GGUFReader(str(done.path))
    fields = {key: reader.get_field(key).contents() for key in ("general.type", "adapter.type", "adapter.lora.alpha")}
    assert fields == {"general.type": "adapter", "adapter.type": "lora", "adapter.lora.alpha": 8.0}
    assert reader.get_field("general.architecture").contents() == "llama"
    names = {t.name for t in reader.tensors}
    assert len(names) == 2 * 2 * 7 and (done.weights, done.rank) == (14, 4)
    assert {"blk.29.attn_q.weight.lora_a", "blk.29.attn_q.weight.lora_b", "blk.28.ffn_down.weight.lora_b"} <= names
    shapes = {t.name: tuple(reversed(t.shape.tolist())) for t in reader.tensors}
    assert shapes["blk.28.attn_k.weight.lora_a"] == (4, 576) and shapes["blk.28.attn_k.weight.lora_b"] == (192, 4)
    assert not list(tmp_path.glob("*.partial"))


def _refusal(tmp_path: Path, base: gguf_lora.BaseModel, **kwargs: Any) -> str:
    folder = write_peft_adapter(tmp_path / "peft", base, layers=[29], **kwargs)
    with pytest.raises(UsageError) as info:
        gguf_lora.convert(folder, tmp_path / "out.gguf", base)
    assert not (tmp_path / "out.gguf").exists()
    return str(info.value)


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"config": {"use_dora": True}}, "a DoRA adapter cannot be converted"),
        ({"config": {"bias": "lora_only"}}, "bias = 'lora_only'"),
        ({"config": {"modules_to_save": ["lm_head"]}}, "modules_to_save ['lm_head'] are full weights"),
        ({"config": {"lora_bias": True}}, "LoRA biases"),
        ({"config": {"alpha_pattern": {"q_proj": 4}}}, "alpha_pattern"),
        ({"config": {"peft_type": "IA3"}}, "a IA3 adapter; only LoRA"),
        ({"config": {"lora_alpha": 0}}, "lora_alpha must be a positive number"),
        (
            {"tensors": {"base_model.model.lm_head.weight": np.zeros((4, 4), np.float32)}},
            "tensor base_model.model.lm_head.weight is not a decoder layer's LoRA",
        ),
        (
            {"tensors": {"base_model.model.model.layers.29.mlp.experts.lora_A.weight": np.zeros((4, 4), np.float32)}},
            "adapts 'experts', not one of the known layers",
        ),
        (
            {"tensors": {peft_key(29, "q_proj", "B"): np.zeros((576 * 2, 4), np.float32)}},
            "do not fit blk.29.attn_q.weight (576, 576)",
        ),
    ],
    ids=[
        "dora",
        "bias",
        "modules_to_save",
        "lora_bias",
        "alpha_pattern",
        "not_lora",
        "zero_alpha",
        "head",
        "unknown_module",
        "wrong_model",
    ],
)
def test_refuses_what_llama_cpp_cannot_apply_in_one_line(
    tmp_path: Path, base: gguf_lora.BaseModel, kwargs: dict[str, Any], expected: str
) -> None:
    message = _refusal(tmp_path, base, **kwargs)
    assert expected in message
    assert "\n" not in message


def test_refuses_a_lone_half_and_a_layer_the_model_lacks(tmp_path: Path, base: gguf_lora.BaseModel) -> None:
    folder = write_peft_adapter(tmp_path / "peft", base, layers=[29], modules=["v_proj"])
    from safetensors.numpy import load_file, save_file

    weights = load_file(str(folder / gguf_lora.WEIGHTS_FILE))
    del weights[peft_key(29, "v_proj", "B")]
    save_file(weights, str(folder / gguf_lora.WEIGHTS_FILE))
    with pytest.raises(UsageError, match=r"model\.layers\.29\.self_attn\.v_proj has no lora_B"):
        gguf_lora.convert(folder, tmp_path / "out.gguf", base)

    weights[peft_key(29, "v_proj", "B")] = np.zeros((192, 4), np.float32)
    weights = {key.replace("layers.29", "layers.30"): value for key, value in weights.items()}
    save_file(weights, str(folder / gguf_lora.WEIGHTS_FILE))
    with pytest.raises(UsageError, match=r"model\.layers\.30\.self_attn\.v_proj: no such layer in base model"):
        gguf_lora.convert(folder, tmp_path / "out.gguf", base)


def test_refuses_a_folder_that_is_not_a_peft_adapter(tmp_path: Path, base: gguf_lora.BaseModel) -> None:
    with pytest.raises(UsageError, match=r"is not a PEFT adapter folder: it has no adapter_config.json"):
        gguf_lora.convert(tmp_path, tmp_path / "out.gguf", base)
    (tmp_path / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "lora_alpha": 8}))
    (tmp_path / "adapter_model.bin").write_bytes(b"pickle")
    with pytest.raises(UsageError, match=r"no adapter_model.safetensors \(adapter_model.bin, a pickle, is not read"):
        gguf_lora.convert(tmp_path, tmp_path / "out.gguf", base)


def test_cli_exports_a_runs_module_adapters(tmp_path: Path, base: gguf_lora.BaseModel) -> None:
    for role in ("planner", "verifier"):
        write_peft_adapter(tmp_path / "run" / "policy" / role, base, layers=[29], seed=len(role))
    result = agentflow("adapters", "export-gguf", "run/policy", "shipped", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "shipped").iterdir()) == ["planner.gguf", "verifier.gguf"]
    assert "planner.gguf: 7 adapted weights, rank 4, alpha 8" in result.stdout

    one = agentflow("adapters", "export-gguf", "run/policy/planner", "one.gguf", "--dtype", "f32", cwd=tmp_path)
    assert one.returncode == 0, one.stderr
    assert (tmp_path / "one.gguf").stat().st_size > (tmp_path / "shipped" / "planner.gguf").stat().st_size

    bad = agentflow("adapters", "export-gguf", "run", "x.gguf", cwd=tmp_path)
    assert bad.returncode == 1
    assert bad.stderr.strip().count("\n") == 0 and "neither a PEFT adapter folder" in bad.stderr


# -- the numerical proof ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hf_smollm2() -> Iterator[tuple[Any, list[int]]]:
    """SmolLM2 as Flow-GRPO trains it (the embedded GGUF, dequantised), and a chat prompt's token ids."""
    pytest.importorskip("peft")
    pytest.importorskip("llama_cpp")
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from agentflow_core.engines.embedded import smollm2_gguf_path

    gguf = smollm2_gguf_path()  # transformers dequantises it to float32, as the hf engine loads it
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = transformers.AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
    ).eval()
    chat = [{"role": "user", "content": "What is 17 * 23? Answer with the number."}]
    text = tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
    yield model, tokenizer(text).input_ids


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))


def _worst_kl(reference: np.ndarray, other: np.ndarray) -> float:
    """The largest KL(reference || other) over the prompt's positions, in nats."""
    return float((np.exp(reference) * (reference - other)).sum(-1).max())


def _torch_logprobs(model: Any, ids: list[int]) -> np.ndarray:
    import torch

    with torch.no_grad():
        return _log_softmax(model(torch.tensor([ids])).logits[0].float().numpy())


def _llama_cpp_logprobs(ids: list[int], lora: Path | None) -> np.ndarray:
    """The ecosystem's own way to run a LoRA GGUF: ``Llama(lora_path=...)``."""
    from llama_cpp import Llama

    from agentflow_core.engines.embedded import smollm2_gguf_path

    llama = Llama(
        model_path=str(smollm2_gguf_path()),
        lora_path=str(lora) if lora else None,
        logits_all=True,
        n_ctx=256,
        verbose=False,
    )
    try:
        llama.eval(ids)
        return _log_softmax(np.array(llama.scores[: len(ids)]))
    finally:
        llama.close()


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning")
@pytest.mark.filterwarnings("ignore:Could not find a config file:UserWarning")  # the base is a GGUF, not a hub folder
@pytest.mark.parametrize("rslora", [False, True], ids=["lora", "rslora"])
def test_llama_cpp_with_the_converted_adapter_matches_peft(
    tmp_path: Path,
    base: gguf_lora.BaseModel,
    hf_smollm2: tuple[Any, list[int]],
    monkeypatch: pytest.MonkeyPatch,
    rslora: bool,
) -> None:
    import peft
    import torch

    model, ids = hf_smollm2
    floor = _worst_kl(_torch_logprobs(model, ids), _llama_cpp_logprobs(ids, None))
    # Measured: 0.023 nats bare; 0.025-0.049 adapted, over five random adapters of each kind (Q4_1
    # weights, and llama.cpp rounds activations to 8 bits for them; transformers computes in float32).
    tolerance = 4 * floor

    settings = peft.LoraConfig(
        r=8, lora_alpha=16, use_rslora=rslora, target_modules=list(gguf_lora.LLAMA_LINEAR_LAYERS),
        layers_to_transform=list(range(15, 30)),
    )  # fmt: skip
    with torch.random.fork_rng():
        torch.manual_seed(0)  # peft draws A at random: the same adapter every run
        adapted = peft.get_peft_model(copy.deepcopy(model), settings)
    generator = torch.Generator().manual_seed(0)
    for name, parameter in adapted.named_parameters():
        if "lora_B" in name:  # peft starts B at zero, a no-op that would prove nothing
            parameter.data = torch.randn(parameter.shape, generator=generator) * (0.2 if not rslora else 0.1)
    adapted.save_pretrained(str(tmp_path / "peft"))
    expected = _torch_logprobs(adapted, ids)
    effect = _worst_kl(expected, _torch_logprobs(model, ids))

    converted = gguf_lora.convert(tmp_path / "peft", tmp_path / "adapter.gguf", base)
    gap = _worst_kl(expected, _llama_cpp_logprobs(ids, converted.path))

    monkeypatch.setattr(gguf_lora, "_rotary_rows", lambda b, heads: b)
    unpermuted = gguf_lora.convert(tmp_path / "peft", tmp_path / "unpermuted.gguf", base)
    wrong = _worst_kl(expected, _llama_cpp_logprobs(ids, unpermuted.path))

    assert floor < 0.1, f"the bare models already differ by {floor:.3f} nats"
    assert effect > 10 * tolerance, f"the adapter moves the model by only {effect:.3f} nats (tolerance {tolerance:.3f})"
    assert gap < tolerance, f"llama.cpp with the adapter is {gap:.3f} nats from peft (floor {floor:.3f})"
    assert wrong > 3 * tolerance, f"without the rotary row order the gap is only {wrong:.3f}: the test cannot see it"
