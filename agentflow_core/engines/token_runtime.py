"""What a trainer may use of the in-process engines: the one module of ``agentflow_core.engines`` it imports.

A policy-gradient trainer recomputes, with gradients, the log-probabilities an engine recorded while
sampling (``TokenTrace``). To get the same numbers it must do what the engine did: forward prompts
the same way (what rows share prefilled once, with the same cache and keep-the-last-logits
arguments, the same hook on the output head), replay the recorded grammar with the engine's
tokenizer and stop tokens, and unpack its allowed sets. It also generates through an engine that
holds the very model being trained, or asks servers for tokens (a rollout fleet: the HTTP client,
the pool that spreads requests over servers, the grammar text a server constrains to, so the
trainer replays the same one, and the engine's own chat rendering and schema fitting, so a served
prompt and grammar are what the in-process engine would have used). These names are that
contract; the modules behind them (``prefix``, ``grammar``, ``hf_engine``, ``embedded``) may
change, this list only deliberately.
Importing it loads neither torch nor transformers.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from agentflow_core.engine import Engine, EngineConfig
from agentflow_core.engines.chat_http import ChatHTTP
from agentflow_core.engines.embedded import SerialWorker, fit_schema_to_budget, is_embedded_alias, smollm2_gguf_path
from agentflow_core.engines.endpoints import EndpointPool, server_trouble
from agentflow_core.engines.grammar import GrammarFactory, json_schema_ebnf, unpack
from agentflow_core.engines.hf_engine import HFEngine, chat_prompt_ids, grammar_factory, stop_ids
from agentflow_core.engines.prefix import Prefilled, contiguous_head_input, forward_arguments, inner_model, prefill
from agentflow_core.engines.retry import CallFailure

__all__ = [
    "CallFailure",
    "ChatHTTP",
    "EndpointPool",
    "GrammarFactory",
    "Prefilled",
    "SerialWorker",
    "chat_prompt_ids",
    "contiguous_head_input",
    "engine_for_model",
    "fit_schema_to_budget",
    "forward_arguments",
    "grammar_factory",
    "inner_model",
    "is_embedded_alias",
    "json_schema_ebnf",
    "prefill",
    "server_trouble",
    "smollm2_gguf_path",
    "stop_ids",
    "unpack",
]


def engine_for_model(
    model: Any,
    tokenizer: Any,
    config: EngineConfig,
    *,
    worker: SerialWorker,
    scope: Callable[[], AbstractContextManager[Any]] = nullcontext,
) -> Engine:
    """An engine named ``config.model`` that generates with ``model``, already in memory, and records its tokens.

    The caller keeps the model: the engine neither moves it nor switches train/eval mode, and only
    runs it under ``torch.no_grad``. Engines sharing one model share one ``worker``, so one decodes
    at a time; each enters its ``scope`` (activating its LoRA adapter, say) around every decode.
    """
    return HFEngine.from_pretrained_objects(
        model, tokenizer, name=config.model, config=config, worker=worker, scope=scope
    )
