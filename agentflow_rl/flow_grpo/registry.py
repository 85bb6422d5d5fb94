"""What training plugins provide, by name: rewards and rollout backends, with the plugin each came from.

The same rules as the core's registry: a name is registered once unless a plugin says
``replace=True``, a clash names both plugins, and an unknown name lists the installed ones.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, TypeVar

import attrs

from agentflow_core.errors import ConfigError, PluginError
from agentflow_core.plugins import collect
from agentflow_core.registrar import Registrar
from agentflow_core.registry import lookup

if TYPE_CHECKING:
    import pluggy

    from agentflow_rl.flow_grpo.model.backends.base import BackendContext, RolloutBackend
    from agentflow_rl.flow_grpo.rewards import RewardFn

#: Makes a run's rollout backend once the trained modules exist.
BackendFactory = Callable[["BackendContext"], "RolloutBackend"]
T = TypeVar("T")


@attrs.frozen
class RegisteredReward:
    name: str
    fn: RewardFn
    description: str
    source: str
    replaces: str | None = None


@attrs.frozen
class RegisteredRolloutBackend:
    name: str
    factory: BackendFactory
    description: str
    source: str
    replaces: str | None = None


class RewardRegistrar(Registrar[RegisteredReward]):
    """The ``register`` passed to ``register_rewards``: ``register(name, fn, description="...", replace=False)``."""

    what = "reward"

    def __call__(self, name: str, fn: RewardFn, *, description: str = "", replace: bool = False) -> None:
        if not name or not isinstance(name, str) or not callable(fn):
            raise PluginError("a reward was registered without a name or a callable")
        self._add(name, RegisteredReward(name, fn, description, self.source), replace=replace)


class RolloutBackendRegistrar(Registrar[RegisteredRolloutBackend]):
    """The ``register`` passed to ``register_rollout_backends``: ``register(name, factory, description="...")``."""

    what = "rollout backend"

    def __call__(self, name: str, factory: BackendFactory, *, description: str = "", replace: bool = False) -> None:
        if not name or not isinstance(name, str) or not callable(factory):
            raise PluginError("a rollout backend was registered without a name or a callable factory")
        self._add(name, RegisteredRolloutBackend(name, factory, description, self.source), replace=replace)


@attrs.frozen
class TrainingRegistry:
    rewards: Mapping[str, RegisteredReward]
    rollout_backends: Mapping[str, RegisteredRolloutBackend]

    @classmethod
    def collect(cls, pm: pluggy.PluginManager) -> TrainingRegistry:
        """Ask every plugin of ``pm`` for its rewards and rollout backends."""
        return cls(
            rewards=collect(pm, "register_rewards", RewardRegistrar()),
            rollout_backends=collect(pm, "register_rollout_backends", RolloutBackendRegistrar()),
        )

    def reward(self, name: str) -> RegisteredReward:
        """The reward ``[task] reward`` names; an unknown name is a config error listing the installed ones."""
        return _configured("task.reward", self.rewards, name, "reward")

    def rollout_backend(self, name: str) -> RegisteredRolloutBackend:
        """The backend ``[rollout] backend`` names; an unknown name is a config error listing the installed ones."""
        return _configured("rollout.backend", self.rollout_backends, name, "rollout backend")


def _configured(key: str, items: Mapping[str, T], name: str, what: str) -> T:
    try:
        return lookup(items, name, f"unknown {what} {name!r}; installed")
    except PluginError as exc:
        raise ConfigError(f"{key}: {exc}") from None
