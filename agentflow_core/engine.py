"""The one interface between the agent and a language model.

An engine takes chat messages and returns text; when a JSON schema is given, it returns text
that *should* parse as an instance of that schema (the caller still parses tolerantly, because
not every server honours ``response_format``). Engines are made by factories registered through
the ``register_engines`` hook and addressed as ``provider:model`` strings.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, Protocol, runtime_checkable

import attrs

Role = Literal["system", "user", "assistant"]


@attrs.frozen
class Message:
    role: Role
    content: str


@attrs.frozen
class JsonSchema:
    """A named JSON schema, sent as OpenAI's ``response_format`` of type ``json_schema``."""

    name: str
    schema: Mapping[str, Any]


@attrs.frozen
class GenerationRequest:
    messages: tuple[Message, ...]
    #: Ask for JSON matching this schema; ``None`` asks for free text.
    json_schema: JsonSchema | None = None
    #: Per-call caps; ``None`` leaves the engine's configured default.
    max_tokens: int | None = None
    temperature: float | None = None

    def sampling(self, config: EngineConfig) -> tuple[float | None, int | None]:
        """``(temperature, max_tokens)``: this request's where it sets them, else the engine config's;
        ``None`` where neither does, so that a server applies its own default."""
        temperature = self.temperature if self.temperature is not None else config.temperature
        return temperature, self.max_tokens if self.max_tokens is not None else config.max_tokens


@attrs.frozen
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
        )


@attrs.frozen
class GrammarTrace:
    """The grammar a completion was sampled under: enough to rebuild each position's allowed tokens."""

    #: The matcher library that built the masks (``xgrammar`` or ``llguidance``).
    backend: str
    #: The JSON schema as compiled (after any budget fitting), as compact JSON text in its own key order.
    schema: str


@attrs.frozen
class TokenTrace:
    """Token ids and sampling log-probabilities of one call; what Flow-GRPO learns from.

    ``completion_logprobs`` are those of the distribution each token was actually drawn from: the
    model's logits divided by ``temperature`` and, when ``grammar`` is set, restricted to the tokens
    the grammar allowed at that position and renormalised. Only in-process engines that own the
    tokenizer can fill this in.
    """

    prompt_ids: tuple[int, ...]
    completion_ids: tuple[int, ...]
    completion_logprobs: tuple[float, ...]
    #: The temperature the log-probabilities are tempered with (1.0 for greedy decoding).
    temperature: float = 1.0
    grammar: GrammarTrace | None = None
    #: Positions of completion tokens the engine wrote without sampling them, because the grammar
    #: allowed only one text there (jump-forward decoding: the JSON around the values). Their
    #: log-probability is recorded as 0; the policy chose nothing there, so a trainer leaves them
    #: out of the loss even where the vocabulary could have spelt that text in other tokens.
    filled: tuple[int, ...] = ()
    #: Which version of the trained weights sampled it, where the engine serves versions (a Flow-GRPO
    #: rollout fleet: the training step whose adapter its server held from request to reply); ``None``
    #: where the engine samples with whatever weights it holds at the time.
    policy_version: int | None = None


@attrs.frozen
class Completion:
    text: str
    usage: Usage = attrs.field(factory=Usage)
    latency_s: float = 0.0
    #: Why generation ended, as the backend said it ("stop", "length", ...).
    finish_reason: str | None = None
    tokens: TokenTrace | None = None


@attrs.frozen
class EngineConfig:
    """How to reach one model: a table, or only its ``model`` as a string (``planner = "openai:gpt-4o-mini"``).

    Also built from CLI flags (``--engine``, ``--planner-engine``, ...), which win over the file.
    """

    #: ``provider:model``, e.g. ``openai:gpt-4o-mini`` or ``llamacpp:/models/x.gguf`` (``agentflow engines``
    #: lists the providers).
    model: str
    #: The server of an OpenAI-compatible API (``http://127.0.0.1:8000/v1`` for a vLLM server); unset: the
    #: provider's own.
    base_url: str | None = None
    #: Several servers of the same model instead of one ``base_url``: each request goes to the least
    #: busy, and one that fails is set aside for a while (:mod:`agentflow_core.engines.endpoints`).
    #: Read by the ``openai`` and ``litellm`` engines; give either this or ``base_url``.
    base_urls: tuple[str, ...] = ()
    #: Name of the environment variable that holds the API key (never the key itself).
    api_key_env: str | None = None
    #: Sampling temperature, 0 to 5 (0 is greedy; OpenAI's own servers take at most 2, training explores
    #: above it); unset leaves the server's default.
    temperature: float | None = attrs.field(
        default=None, validator=attrs.validators.optional([attrs.validators.ge(0), attrs.validators.le(5)])
    )
    #: Cap on the tokens of a completion, for calls that set no cap of their own (the modules and the built-in
    #: tools set theirs); unset: the engine's or server's default.
    max_tokens: int | None = attrs.field(default=None, validator=attrs.validators.optional(attrs.validators.ge(1)))
    #: Seconds one attempt may take (a solve's ``max_time_s`` bounds all attempts together).
    timeout_s: float = attrs.field(default=120.0, validator=attrs.validators.gt(0))
    #: Attempts for transient failures (429, 5xx, timeouts, dropped connections).
    max_attempts: int = attrs.field(default=4, validator=attrs.validators.ge(1))
    #: Provider-specific extras, passed to the engine factory untouched.
    options: Mapping[str, Any] = attrs.field(factory=dict)

    @property
    def provider(self) -> str:
        return split_model(self.model)[0]

    @property
    def model_name(self) -> str:
        return split_model(self.model)[1]


def split_model(model: str) -> tuple[str, str]:
    """``"openai:gpt-4o"`` -> ``("openai", "gpt-4o")``; the model part may contain colons."""
    provider, sep, name = model.partition(":")
    if not sep or not provider or not name:
        raise ValueError(f"engine {model!r} is not of the form provider:model (e.g. openai:gpt-4o-mini)")
    return provider, name


@runtime_checkable
class Engine(Protocol):
    """A live connection to one model. Cheap to call concurrently; closed with ``aclose``."""

    #: ``provider:model``, used in records and error messages.
    name: str

    async def generate(self, request: GenerationRequest) -> Completion: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class ModuleAwareEngine(Engine, Protocol):
    """An engine that can serve each module with weights of its own, such as a LoRA adapter per module.

    The solver asks it for each module's engine (``for_module``), unless ``[engines] adapters`` is
    false; tools and anything else use the engine itself. The engine returned should share the
    loaded model: it is a view, not a second copy, and the solver closes only the engine itself.
    """

    def for_module(self, role: str) -> Engine: ...


class EngineFactory(Protocol):
    """Builds an engine from its config. Must be cheap: connect or load lazily."""

    def __call__(self, config: EngineConfig) -> Engine: ...
