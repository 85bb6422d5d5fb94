"""The interface between the trainer and whatever generates its rollouts."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

import attrs

from agentflow_core import AgentFlowError, Completion, Engine, EngineConfig, GenerationRequest
from agentflow_core.records import ModuleRole

if TYPE_CHECKING:
    from agentflow_rl.flow_grpo.config import PolicyConfig, RolloutConfig
    from agentflow_rl.flow_grpo.model.sharded import RolloutCopy
    from agentflow_rl.flow_grpo.model.trained import TrainedModules


class RolloutBackendError(AgentFlowError):
    """The backend can no longer generate (its worker died or stopped answering): the step fails."""


@attrs.frozen
class BackendContext:
    """What a backend factory receives: the run's ``[policy]`` and ``[rollout]`` settings and the live models."""

    #: How to build the policy again (a backend in another process loads its own copy).
    policy: PolicyConfig
    rollout: RolloutConfig
    #: The models being trained (adapters, or a model per module) and the frozen base.
    modules: TrainedModules
    tokenizer: Any
    #: The synthetic task's words, when the policy is the tiny one (rebuilt elsewhere from them).
    vocabulary: tuple[str, ...] | None = None
    #: Unsharded twins of FSDP-sharded modules, by role.
    copies: dict[ModuleRole, RolloutCopy] = attrs.field(factory=dict)
    #: The run's ``run.output_dir``, where a backend keeps what it writes (server logs, published weights).
    output_dir: str = "."


class RolloutBackend(Protocol):
    """Generates for the engines ``policy:<role>`` (and ``policy:base``) with the trained weights."""

    def engine(self, config: EngineConfig) -> Engine:
        """An engine for ``config.model`` = ``policy:<role>`` or ``policy:base``; its completions
        carry a ``TokenTrace`` (token ids, the sampling distribution's log-probabilities, grammar)."""

    def sync(self, step: int) -> None:
        """Make the next rollouts use the weights the trainer holds after ``step`` optimizer steps.

        Every process calls it before each rollout batch and evaluation (it may be collective).
        """

    def check(self) -> None:
        """Raise :class:`RolloutBackendError` when the backend cannot generate any more."""

    def expected_version(self) -> int | None:
        """The ``TokenTrace.policy_version`` every completion since the last ``sync`` must carry, or
        ``None`` when this backend's completions carry none (they come from the weights as they are)."""

    def close(self) -> None: ...


class ForwardingEngine:
    """An engine that hands every request to the backend that made it (``generate(config, request)``)."""

    def __init__(
        self, generate: Callable[[EngineConfig, GenerationRequest], Awaitable[Completion]], config: EngineConfig
    ) -> None:
        self._generate, self.config, self.name = generate, config, config.model

    async def generate(self, request: GenerationRequest) -> Completion:
        return await self._generate(self.config, request)

    async def aclose(self) -> None:
        pass
