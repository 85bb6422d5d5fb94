"""In-process vLLM (``vllm.LLM``) for GPU machines: fast batched rollouts without running a server.

``vllm`` is imported on the first ``generate`` so that a CPU-only install can still list, configure
and construct this engine. ``EngineConfig.options`` are passed to ``vllm.LLM`` as keyword arguments
(``tensor_parallel_size``, ``gpu_memory_utilization``, ``max_model_len``, ``dtype``, ``seed``,
``logprobs_mode``...), so any knob vLLM has is reachable from ``agentflow.toml``.

Log-probabilities: vLLM reports its own; recent versions default to the *raw* model
log-probabilities (before temperature and before the structured-output mask), which differs from
:class:`~agentflow_core.engines.hf_engine.HFEngine` (log-softmax at the sampling temperature) when
``temperature != 1``. Set the option ``logprobs_mode = "processed_logprobs"`` where vLLM supports it
to get the tempered ones.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from agentflow_core.engine import Completion, EngineConfig, GenerationRequest, TokenTrace, Usage
from agentflow_core.engines.embedded import SerialWorker, fit_schema_to_budget
from agentflow_core.errors import EngineError, EngineUnavailable

DEFAULT_MAX_TOKENS = 512
DEFAULT_TEMPERATURE = 0.0
_INSTALL_HINT = "pip install 'agentflow[vllm]' on a machine with a GPU"


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
        self._worker = SerialWorker()

    async def generate(self, request: GenerationRequest) -> Completion:
        started = time.perf_counter()
        output = await self._worker.run(self._generate_sync, request)
        return _to_completion(output, time.perf_counter() - started)

    async def aclose(self) -> None:
        await self._worker.run(self._release)

    def _generate_sync(self, request: GenerationRequest) -> Any:
        vllm = _import_vllm(self.name)
        llm = self._ensure_loaded(vllm)
        messages = [{"role": m.role, "content": m.content} for m in request.messages]
        try:
            outputs = llm.chat(messages, sampling_params=self._sampling_params(vllm, request), use_tqdm=False)
        except ValueError as exc:  # vLLM's way of rejecting a request (too long, bad schema...)
            raise EngineError(f"{self.name}: {exc}") from exc
        return outputs[0]

    def _sampling_params(self, vllm: Any, request: GenerationRequest) -> Any:
        max_tokens = _first_set(request.max_tokens, self.config.max_tokens, DEFAULT_MAX_TOKENS)
        arguments: dict[str, Any] = {
            "temperature": float(_first_set(request.temperature, self.config.temperature, DEFAULT_TEMPERATURE)),
            "max_tokens": max_tokens,
            # 0 asks for the sampled token's log-probability only, not for any alternatives.
            "logprobs": 0,
        }
        if request.json_schema is not None:
            arguments.update(_structured_json(fit_schema_to_budget(request.json_schema.schema, max_tokens)))
        return vllm.SamplingParams(**arguments)

    def _ensure_loaded(self, vllm: Any) -> Any:
        if self._llm is None:
            try:
                self._llm = vllm.LLM(model=self.config.model_name, **dict(self.config.options))
            except (OSError, ValueError, RuntimeError) as exc:
                raise EngineUnavailable(f"{self.name}: cannot start vLLM: {_first_line(exc)}") from exc
        return self._llm

    def _release(self) -> None:
        self._llm = None


def _structured_json(schema: Mapping[str, Any]) -> dict[str, Any]:
    """The ``SamplingParams`` field that constrains output to ``schema``, in this vLLM's spelling.

    Newer vLLM spells it ``StructuredOutputsParams`` (field ``structured_outputs``); older releases
    only have ``GuidedDecodingParams`` (field ``guided_decoding``), which 0.12 removed.
    """
    from vllm import sampling_params

    if hasattr(sampling_params, "StructuredOutputsParams"):
        return {"structured_outputs": sampling_params.StructuredOutputsParams(json=dict(schema))}
    if hasattr(sampling_params, "GuidedDecodingParams"):
        return {"guided_decoding": sampling_params.GuidedDecodingParams(json=dict(schema))}
    raise EngineUnavailable("this vllm has no structured output support: pip install -U 'agentflow[vllm]'")


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
