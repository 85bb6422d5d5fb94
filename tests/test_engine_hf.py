"""HFEngine on a tiny random Llama (fast, exact checks) and once on the real embedded SmolLM2."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

from agentflow_core.engine import EngineConfig, GenerationRequest, JsonSchema, Message  # noqa: E402
from agentflow_core.engines.hf_engine import HFEngine  # noqa: E402
from agentflow_core.errors import ConfigError, EngineUnavailable  # noqa: E402

SENTENCES = [
    "The planner picks a tool and the executor runs it.",
    '{"answer": "yes", "reason": "because the verifier agreed"}',
    "A small model can still write valid JSON when a grammar guides it.",
    "Paris is the capital of France; Berlin is the capital of Germany.",
]
VERDICT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "verdict": {"type": "string", "enum": ["yes", "no", "unsure"]},
        "reason": {"type": "string"},
    },
    "required": ["verdict", "reason"],
    "additionalProperties": False,
}
#: A planner's tool choice: names with different first letters, as the synthetic task's are.
TOOL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"tool": {"type": "string", "enum": ["lookup", "double", "square", "add"]}},
    "required": ["tool"],
    "additionalProperties": False,
}
QUESTION = (Message("system", "Answer briefly."), Message("user", "Is Paris the capital of France?"))


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random 2-layer Llama with a byte-level BPE, so every string (JSON included) has a spelling."""
    from agentflow_rl.flow_grpo.testing import save_tiny_chat_model

    return save_tiny_chat_model(tmp_path_factory.mktemp("tiny-llama"), SENTENCES)


@pytest.fixture
def tiny_engine(tiny_model_dir: Path) -> HFEngine:
    return HFEngine(EngineConfig(model=f"hf:{tiny_model_dir}", options={"device": "cpu"}))


def _forward_logprobs(engine: HFEngine, prompt_ids: tuple[int, ...], completion_ids: tuple[int, ...]) -> list[float]:
    """The completion's log-probabilities from one fresh forward pass over prompt + completion."""
    model = engine._model
    ids = torch.tensor([list(prompt_ids) + list(completion_ids)])
    with torch.no_grad():
        logprobs = torch.log_softmax(model(input_ids=ids).logits[0].float(), dim=-1)
    start = len(prompt_ids)
    return [float(logprobs[start + i - 1, token]) for i, token in enumerate(completion_ids)]


async def test_generation_fills_a_trace_that_matches_a_forward_pass(tiny_engine: HFEngine) -> None:
    completion = await tiny_engine.generate(GenerationRequest(QUESTION, max_tokens=24))
    trace = completion.tokens
    assert trace is not None and trace.completion_ids
    assert len(trace.completion_logprobs) == len(trace.completion_ids)
    assert completion.usage.prompt_tokens == len(trace.prompt_ids)
    assert completion.usage.completion_tokens == len(trace.completion_ids)
    assert completion.finish_reason in {"stop", "length"}
    expected = _forward_logprobs(tiny_engine, trace.prompt_ids, trace.completion_ids)
    assert trace.completion_logprobs == pytest.approx(expected, abs=1e-4)
    # The loaded model's head copies the rows ``logits_to_keep`` leaves (see ``contiguous_head_input``).
    assert tiny_engine._model.get_output_embeddings().agentflow_contiguous_input


async def test_sampled_logprobs_are_the_tempered_policy(tiny_engine: HFEngine) -> None:
    request = GenerationRequest(QUESTION, max_tokens=16, temperature=0.7)
    trace = (await tiny_engine.generate(request)).tokens
    assert trace is not None
    model = tiny_engine._model
    ids = torch.tensor([list(trace.prompt_ids) + list(trace.completion_ids)])
    with torch.no_grad():
        logprobs = torch.log_softmax(model(input_ids=ids).logits[0].float() / 0.7, dim=-1)
    start = len(trace.prompt_ids)
    expected = [float(logprobs[start + i - 1, t]) for i, t in enumerate(trace.completion_ids)]
    assert trace.completion_logprobs == pytest.approx(expected, abs=1e-4)


@pytest.mark.parametrize("backend", ["xgrammar", "llguidance"])
async def test_json_schema_is_honoured_by_a_random_model(tiny_model_dir: Path, backend: str) -> None:
    engine = HFEngine(EngineConfig(model=f"hf:{tiny_model_dir}", options={"grammar_backend": backend}))
    for temperature in (0.0, 1.0):
        request = GenerationRequest(
            QUESTION, json_schema=JsonSchema("verdict", VERDICT_SCHEMA), max_tokens=48, temperature=temperature
        )
        completion = await engine.generate(request)
        jsonschema.validate(json.loads(completion.text), VERDICT_SCHEMA)
        assert completion.finish_reason == "stop"
        assert completion.usage.completion_tokens <= 48


async def test_seeded_sampling_is_reproducible(tiny_model_dir: Path) -> None:
    def engine() -> HFEngine:
        return HFEngine(EngineConfig(model=f"hf:{tiny_model_dir}", temperature=1.0, options={"seed": 7}))

    request = GenerationRequest(QUESTION, max_tokens=16)
    first, second = engine(), engine()
    runs_a = [(await first.generate(request)).tokens for _ in range(2)]
    runs_b = [(await second.generate(request)).tokens for _ in range(2)]
    assert runs_a == runs_b
    assert runs_a[0] != runs_a[1], "one seeded engine should still vary between calls"


async def test_concurrent_calls_share_one_model(tiny_engine: HFEngine) -> None:
    results = await asyncio.gather(*(tiny_engine.generate(GenerationRequest(QUESTION, max_tokens=8)) for _ in range(3)))
    assert len({r.tokens for r in results}) == 1


def _varied_requests() -> list[GenerationRequest]:
    """Different prompt lengths, budgets and grammars: what a GRPO batch of planner turns looks like."""
    questions = ["Is Paris the capital of France?", "Why?", "Does the verifier agree that a small model writes JSON?"]
    budgets = (6, 20, 12)
    requests = [GenerationRequest((Message("user", q),), max_tokens=n) for q, n in zip(questions, budgets, strict=True)]
    schema = JsonSchema("verdict", VERDICT_SCHEMA)
    requests += [GenerationRequest((Message("user", q),), json_schema=schema, max_tokens=40) for q in questions[:2]]
    return requests


async def test_a_batch_decodes_as_each_request_would_alone(tiny_model_dir: Path) -> None:
    alone = HFEngine(EngineConfig(model=f"hf:{tiny_model_dir}"))
    batched = HFEngine(EngineConfig(model=f"hf:{tiny_model_dir}", options={"max_batch": 8}))
    requests = _varied_requests()

    singles = [await alone.generate(r) for r in requests]
    together = await asyncio.gather(*(batched.generate(r) for r in requests))

    for one, many in zip(singles, together, strict=True):
        assert one.tokens is not None and many.tokens is not None
        assert many.tokens.prompt_ids == one.tokens.prompt_ids
        assert many.tokens.completion_ids == one.tokens.completion_ids
        assert many.tokens.completion_logprobs == pytest.approx(one.tokens.completion_logprobs, abs=1e-4)
        assert (many.text, many.finish_reason) == (one.text, one.finish_reason)
    for structured in together[3:]:
        jsonschema.validate(json.loads(structured.text), VERDICT_SCHEMA)


def _sampling_logprobs(engine: HFEngine, trace: Any) -> list[float]:
    """A fresh forward pass, tempered as recorded and, under a grammar, masked to its replayed allowed sets;
    0 where the engine wrote the token without sampling it (jump-forward)."""
    from agentflow_core.engines.grammar import unpack
    from agentflow_core.engines.hf_engine import grammar_factory

    ids = torch.tensor([list(trace.prompt_ids) + list(trace.completion_ids)])
    start = len(trace.prompt_ids)
    with torch.no_grad():
        logits = engine._model(input_ids=ids).logits[0, start - 1 : -1].float() / trace.temperature
    if trace.grammar is not None:
        packed = grammar_factory(engine._model, engine._tokenizer).replay(trace.grammar, trace.completion_ids)
        logits = logits.masked_fill(~unpack(packed, logits.shape[-1]), float("-inf"))
    logprobs = torch.log_softmax(logits, dim=-1)
    return [0.0 if i in trace.filled else float(logprobs[i, t]) for i, t in enumerate(trace.completion_ids)]


async def test_a_batch_samples_the_tempered_policy_per_row(tiny_model_dir: Path) -> None:
    engine = HFEngine(EngineConfig(model=f"hf:{tiny_model_dir}", temperature=0.7, options={"max_batch": 8}))
    completions = await asyncio.gather(*(engine.generate(r) for r in _varied_requests()))
    assert any(c.tokens is not None and c.tokens.grammar is not None for c in completions)
    for completion in completions:
        trace = completion.tokens
        assert trace is not None and trace.temperature == 0.7
        assert trace.completion_logprobs == pytest.approx(_sampling_logprobs(engine, trace), abs=1e-4)


@pytest.mark.parametrize("backend", ["xgrammar", "llguidance"])
@pytest.mark.parametrize("temperature", [0.0, 0.9])
async def test_logprobs_under_a_grammar_are_those_of_the_masked_distribution(
    tiny_model_dir: Path, backend: str, temperature: float
) -> None:
    """What the engine records is what a trainer rebuilds by replaying the recorded grammar."""
    options = {"grammar_backend": backend, "seed": 3}
    engine = HFEngine(EngineConfig(model=f"hf:{tiny_model_dir}", temperature=temperature, options=options))
    request = GenerationRequest(QUESTION, json_schema=JsonSchema("verdict", VERDICT_SCHEMA), max_tokens=48)
    trace = (await engine.generate(request)).tokens
    assert trace is not None and trace.grammar is not None and trace.grammar.backend == backend
    assert trace.temperature == (temperature or 1.0)
    recorded = trace.completion_logprobs
    assert recorded == pytest.approx(_sampling_logprobs(engine, trace), abs=1e-4)
    assert all(value <= 1e-6 for value in recorded)
    assert any(value == 0.0 for value in recorded)  # JSON punctuation the grammar forced: probability 1


async def test_one_bad_request_in_a_batch_fails_alone(tiny_model_dir: Path) -> None:
    engine = HFEngine(EngineConfig(model=f"hf:{tiny_model_dir}", options={"max_batch": 4}))
    impossible = JsonSchema("bad", {"type": "object", "properties": {"x": {"type": "nonsense"}}})
    good, bad = GenerationRequest(QUESTION, max_tokens=6), GenerationRequest(QUESTION, json_schema=impossible)

    results = await asyncio.gather(engine.generate(good), engine.generate(bad), return_exceptions=True)

    assert not isinstance(results[0], BaseException) and results[0].tokens is not None
    assert isinstance(results[1], Exception)


def test_max_batch_must_be_a_positive_whole_number(tiny_model_dir: Path) -> None:
    with pytest.raises(ConfigError, match="option max_batch must be a whole number >= 1"):
        HFEngine(EngineConfig(model=f"hf:{tiny_model_dir}", options={"max_batch": 0}))
    with pytest.raises(ConfigError, match="option share_prompts must be true or false, got 'no'"):
        HFEngine(EngineConfig(model=f"hf:{tiny_model_dir}", options={"share_prompts": "no"}))


async def test_wraps_objects_already_in_memory(tiny_model_dir: Path) -> None:
    model = transformers.AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    tokenizer = transformers.AutoTokenizer.from_pretrained(tiny_model_dir)
    engine = HFEngine.from_pretrained_objects(model, tokenizer, name="hf:policy")
    completion = await engine.generate(GenerationRequest(QUESTION, max_tokens=8))
    assert engine.name == "hf:policy"
    assert completion.tokens is not None and completion.tokens.completion_ids


async def test_missing_gguf_is_unavailable(tmp_path: Path) -> None:
    engine = HFEngine(EngineConfig(model=f"hf:{tmp_path / 'absent.gguf'}"))
    with pytest.raises(EngineUnavailable) as info:
        await engine.generate(GenerationRequest(QUESTION))
    assert "\n" not in str(info.value)


async def test_missing_torch_names_the_extra(tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # makes ``import torch`` fail
    engine = HFEngine(EngineConfig(model=f"hf:{tiny_model_dir}"))
    with pytest.raises(EngineUnavailable, match=r"agentflow\[hf\]"):
        await engine.generate(GenerationRequest(QUESTION))


@pytest.mark.slow
async def test_embedded_smollm2_through_transformers() -> None:
    # No skip: the 'hf' and 'local' extras are installed for the suite, so a load failure is a bug.
    engine = HFEngine(EngineConfig(model="hf:smollm2"))
    answer = await engine.generate(
        GenerationRequest((Message("user", "What is the capital of France?"),), max_tokens=24)
    )
    assert answer.text.strip() and answer.tokens is not None
    request = GenerationRequest(
        (Message("system", "Reply in JSON."), Message("user", "Is Paris the capital of France?")),
        json_schema=JsonSchema("verdict", VERDICT_SCHEMA),
        max_tokens=64,
    )
    verdict = await engine.generate(request)
    jsonschema.validate(json.loads(verdict.text), VERDICT_SCHEMA)
    # A tool choice with a real BPE vocabulary: the model picks the name; the JSON around it, the
    # closing ``"}`` included (a token like ``"},`` starts with it, but only a stop may follow), is written.
    choice = GenerationRequest(QUESTION, json_schema=JsonSchema("next", TOOL_SCHEMA), max_tokens=24, temperature=1.0)
    for _ in range(3):
        completion = await engine.generate(choice)
        trace = completion.tokens
        assert trace is not None and json.loads(completion.text)["tool"] in TOOL_SCHEMA["properties"]["tool"]["enum"]
        sampled = [i for i in range(len(trace.completion_ids)) if i not in trace.filled]
        name = json.loads(completion.text)["tool"]
        # Sampled: perhaps the quote before the name, then the name in as many pieces as the draw spelt
        # it ("double" or "d" + "ouble": at temperature 1 any spelling the grammar allows can come).
        assert sampled and sampled == list(range(sampled[0], sampled[-1] + 1)), (completion.text, trace)
        assert len(sampled) <= len(name) + 1, (completion.text, trace)
        assert trace.filled[-1] == len(trace.completion_ids) - 1
    await engine.aclose()


def _grouped_requests(temperature: float) -> list[GenerationRequest]:
    """A GRPO-shaped batch: one long system message for all, each question asked several times."""
    system = Message("system", "You plan tool calls for a careful agent. " * 4)
    questions = ["Is Paris the capital of France?", "Why?", "Does the verifier agree?"]
    schema = JsonSchema("verdict", VERDICT_SCHEMA)
    return [
        GenerationRequest((system, Message("user", q)), max_tokens=12, temperature=temperature, json_schema=s)
        for q in questions
        for s in (None, schema)
        for _ in range(3)
    ]


async def test_prompts_that_share_a_prefix_decode_as_each_would_alone(tiny_model_dir: Path) -> None:
    from agentflow_core.engines.prefix import plan_prefix

    alone = HFEngine(EngineConfig(model=f"hf:{tiny_model_dir}"))
    batched = HFEngine(EngineConfig(model=f"hf:{tiny_model_dir}", options={"max_batch": 32}))
    unshared = HFEngine(EngineConfig(model=f"hf:{tiny_model_dir}", options={"max_batch": 32, "share_prompts": False}))
    requests = _grouped_requests(0.0)
    singles = [await alone.generate(r) for r in requests]
    together = await asyncio.gather(*(batched.generate(r) for r in requests))

    plan = plan_prefix([one.tokens.prompt_ids for one in singles if one.tokens is not None])
    assert len(plan.common) > 20 and len(plan.remainders) == 3  # the batch really shared something
    for one, many, full in zip(singles, together, await asyncio.gather(*map(unshared.generate, requests)), strict=True):
        assert one.tokens is not None and many.tokens is not None and full.tokens is not None
        assert many.tokens.completion_ids == one.tokens.completion_ids == full.tokens.completion_ids
        assert many.tokens.completion_logprobs == pytest.approx(one.tokens.completion_logprobs, abs=1e-4)
        assert full.tokens.completion_logprobs == pytest.approx(one.tokens.completion_logprobs, abs=1e-4)


async def test_sampling_from_a_shared_prefix_records_each_rows_own_policy(tiny_model_dir: Path) -> None:
    engine = HFEngine(EngineConfig(model=f"hf:{tiny_model_dir}", options={"max_batch": 32, "seed": 5}))
    completions = await asyncio.gather(*(engine.generate(r) for r in _grouped_requests(1.0)))
    traces = [c.tokens for c in completions if c.tokens is not None]
    assert len({t.completion_ids for t in traces}) > 3, "rows of one prompt must sample independently"
    for trace in traces:
        assert trace.completion_logprobs == pytest.approx(_sampling_logprobs(engine, trace), abs=1e-4)


def test_a_constrained_draw_follows_the_masked_distribution() -> None:
    """Sampling only among the allowed tokens must still draw each with its renormalised probability."""
    from agentflow_core.engines.grammar import packed_width
    from agentflow_core.engines.hf_engine import _pick, _Sampling

    allowed = [3, 17, 42, 99]

    class Fixed:
        def fill(self, packed: Any) -> None:
            for token in allowed:
                packed[token // 32] |= 1 << (token % 32)

    logits = torch.randn(100, generator=torch.Generator().manual_seed(1)) * 2
    expected = torch.softmax(logits[allowed] / 0.8, dim=-1)
    sampling = _Sampling(0.8, torch.Generator().manual_seed(2))
    assert packed_width(100) == 4
    counts = dict.fromkeys(allowed, 0)
    for _ in range(4000):
        token, logprob = _pick(logits.clone(), sampling, Fixed())  # type: ignore[arg-type]
        counts[token] += 1  # a token outside the set is a KeyError
        assert logprob == pytest.approx(float(expected[allowed.index(token)].log()), abs=1e-5)
    for token, probability in zip(allowed, expected.tolist(), strict=True):
        assert counts[token] / 4000 == pytest.approx(probability, abs=0.03)


def _count_forwards(engine: HFEngine) -> list[int]:
    calls: list[int] = []
    engine._model.register_forward_pre_hook(lambda _module, _args: calls.append(1))
    return calls


@pytest.mark.parametrize("backend", ["xgrammar", "llguidance"])
async def test_jump_forward_writes_what_the_grammar_forces_without_sampling(tiny_model_dir: Path, backend: str) -> None:
    """A choice among tool names costs one or two sampled tokens; the JSON around it is written."""
    schema = JsonSchema("next", TOOL_SCHEMA)
    engine = HFEngine(
        EngineConfig(model=f"hf:{tiny_model_dir}", temperature=1.0, options={"grammar_backend": backend, "seed": 1})
    )
    await engine.generate(GenerationRequest(QUESTION, max_tokens=4))  # load the model
    calls = _count_forwards(engine)
    for _ in range(4):
        calls.clear()
        completion = await engine.generate(GenerationRequest(QUESTION, json_schema=schema, max_tokens=32))
        trace = completion.tokens
        assert trace is not None and completion.finish_reason == "stop"
        assert json.loads(completion.text)["tool"] in TOOL_SCHEMA["properties"]["tool"]["enum"]
        sampled = [i for i in range(len(trace.completion_ids)) if i not in trace.filled]
        assert 1 <= len(sampled) <= 2, (completion.text, trace)
        assert all(trace.completion_logprobs[i] == 0.0 for i in trace.filled)
        assert trace.completion_logprobs == pytest.approx(_sampling_logprobs(engine, trace), abs=1e-4)
        assert len(calls) <= 2 + len(sampled)  # the prefill (up to two passes) and one pass per sampled token

    plain = HFEngine(
        EngineConfig(model=f"hf:{tiny_model_dir}", temperature=1.0, options={"jump_forward": False, "seed": 1})
    )
    completion = await plain.generate(GenerationRequest(QUESTION, json_schema=schema, max_tokens=32))
    assert completion.tokens is not None and completion.tokens.filled == ()
    assert len(completion.tokens.completion_ids) > 2


async def test_a_reply_the_grammar_fixes_entirely_runs_no_forward_pass(tiny_model_dir: Path) -> None:
    engine = HFEngine(EngineConfig(model=f"hf:{tiny_model_dir}", temperature=1.0))
    await engine.generate(GenerationRequest(QUESTION, max_tokens=4))
    calls = _count_forwards(engine)
    only = {**TOOL_SCHEMA, "properties": {"tool": {"type": "string", "enum": ["lookup"]}}}
    completion = await engine.generate(GenerationRequest(QUESTION, json_schema=JsonSchema("one", only), max_tokens=32))
    assert completion.text == '{"tool": "lookup"}' and completion.finish_reason == "stop"
    assert completion.tokens is not None
    assert completion.tokens.filled == tuple(range(len(completion.tokens.completion_ids)))
    assert calls == []


def test_jump_forward_must_be_true_or_false(tiny_model_dir: Path) -> None:
    with pytest.raises(ConfigError, match="option jump_forward must be true or false"):
        HFEngine(EngineConfig(model=f"hf:{tiny_model_dir}", options={"jump_forward": "yes"}))
