"""The token runtime: the names a trainer may use of the in-process engines, and that they reproduce them.

The contract is numeric: a completion an engine made for the model being trained, with its
``TokenTrace``, scores to the same log-probabilities when the trainer forwards it through the
runtime's prefill, replays its grammar and masks with the runtime's unpacking.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from agentflow_core.engine import EngineConfig, GenerationRequest, JsonSchema, Message
from agentflow_core.engines import token_runtime

SENTENCES = [
    "The planner picks a tool and the executor runs it.",
    '{"verdict": "yes", "reason": "because the verifier agreed"}',
    "A small model can still write valid JSON when a grammar guides it.",
]
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"verdict": {"type": "string", "enum": ["yes", "no"]}, "reason": {"type": "string"}},
    "required": ["verdict", "reason"],
    "additionalProperties": False,
}
#: Long enough that the shared-prefix prefill splits the prompt into an opening and a remainder.
QUESTION = (
    Message("system", "Answer briefly, as JSON, and give the reason in a few words."),
    Message("user", "Is Paris the capital of France?"),
)


def test_every_declared_name_is_there_and_importing_them_loads_no_torch() -> None:
    assert all(getattr(token_runtime, name, None) is not None for name in token_runtime.__all__)
    code = (
        "import sys; import agentflow_core.engines.token_runtime\n"
        "print(sorted(m for m in ('torch', 'transformers', 'xgrammar') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == "[]"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any]:
    pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from agentflow_rl.flow_grpo.testing import save_tiny_chat_model

    folder: Path = save_tiny_chat_model(tmp_path_factory.mktemp("tiny-chat"), SENTENCES)
    model = transformers.AutoModelForCausalLM.from_pretrained(folder).eval()
    return token_runtime.contiguous_head_input(model), transformers.AutoTokenizer.from_pretrained(folder)


@pytest.mark.parametrize("temperature", [0.0, 0.9])
async def test_a_completion_the_engine_recorded_scores_the_same_through_the_runtime(
    tiny: tuple[Any, Any], temperature: float
) -> None:
    import torch

    model, tokenizer = tiny
    config = EngineConfig(model="policy:planner", temperature=temperature, options={"seed": 5})
    engine = token_runtime.engine_for_model(model, tokenizer, config, worker=token_runtime.SerialWorker())
    request = GenerationRequest(QUESTION, json_schema=JsonSchema("verdict", SCHEMA), max_tokens=32)
    trace = (await engine.generate(request)).tokens
    assert trace is not None and trace.grammar is not None and len(trace.completion_ids) > 1

    with torch.no_grad():
        logits = _trainer_logits(model, tokenizer, trace).float() / trace.temperature
    packed = token_runtime.grammar_factory(model, tokenizer).replay(trace.grammar, trace.completion_ids)
    logits = logits.masked_fill(~token_runtime.unpack(packed, logits.shape[-1]), float("-inf"))
    logprobs = torch.log_softmax(logits, dim=-1)
    rescored = [0.0 if i in trace.filled else float(logprobs[i, t]) for i, t in enumerate(trace.completion_ids)]
    assert trace.completion_logprobs == pytest.approx(rescored, abs=1e-4)
    assert tokenizer.eos_token_id in token_runtime.stop_ids(model, tokenizer)


def _trainer_logits(model: Any, tokenizer: Any, trace: Any) -> Any:
    """``[C, V]``: the prompt prefilled (its opening once), then the completion but its last token over that cache."""
    import torch

    start = token_runtime.prefill(model, [trace.prompt_ids], int(tokenizer.pad_token_id), "cpu")
    cache_name, _ = token_runtime.forward_arguments(model)
    fed = torch.tensor([list(trace.completion_ids[:-1])])
    out = model(
        input_ids=fed,
        attention_mask=torch.cat([start.mask, torch.ones_like(fed)], dim=1),
        position_ids=start.mask.sum(-1, keepdim=True) + torch.arange(fed.shape[1])[None],
        use_cache=True,
        **{cache_name: start.cache},
    )
    return torch.cat([start.logits[:, None], out.logits], dim=1)[0]
