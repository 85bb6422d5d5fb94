"""The models behind the trained modules, and how rollouts, updates and the KL reach them.

Two layouts, chosen by ``[policy] lora``:

* **adapters**: one base model, frozen, with a LoRA adapter per trained module. A module's rollout
  and its update activate its adapter; the reference is the base with adapters off, and untrained
  modules that run on the policy's engines (``policy:base``) use the base the same way.
* **full weights**: one full copy of the model per trained module, and, when the KL or an untrained
  module needs it, one frozen copy of the base.

Everything here runs in the training process; a worker or vLLM rollout backend would receive the
weights this object holds after each optimizer step.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from typing import Any

from agentflow_core.records import ModuleRole
from agentflow_rl.flow_grpo.config import LoraConfig
from agentflow_rl.flow_grpo.model import lora

#: The engine name (``policy:base``) for modules that run on the untrained base model.
BASE = "base"


class TrainedModules:
    """Cheap to make from a loaded base; ``prepare`` hands its models to accelerate."""

    def __init__(
        self,
        base: Any,
        roles: Sequence[ModuleRole],
        *,
        lora_settings: LoraConfig | None = None,
        keep_base: bool = True,
    ) -> None:
        self.roles = tuple(roles)
        self.adapters = lora_settings is not None
        self.reference: Any = None
        if lora_settings is not None:
            self._models = {role: 0 for role in roles}
            self.models: list[Any] = [lora.with_adapters(base, roles, lora_settings)]
        else:
            import copy

            if keep_base:  # the KL's reference and the untrained modules' engine, frozen
                self.reference = frozen_copy(base)
            self._models = {role: i for i, role in enumerate(roles)}
            self.models = [base, *(copy.deepcopy(base) for _ in roles[1:])]
        self._unwrapped: list[Any] = list(self.models)

    def prepare(self, accelerator: Any, optimizer: Any) -> Any:
        """``accelerator.prepare`` every model with the optimizer; returns the prepared optimizer."""
        *models, optimizer = accelerator.prepare(*self.models, optimizer)
        self.models = models
        self._unwrapped = [accelerator.unwrap_model(m) for m in models]
        if self.reference is not None:
            self.reference = self.reference.to(accelerator.device)
        return optimizer

    def parameters(self) -> list[Any]:
        """The trainable parameters of every trained module (adapters only, or the full copies)."""
        return [p for model in self.models for p in model.parameters() if p.requires_grad]

    def prepared(self, role: ModuleRole) -> Any:
        return self.models[self._models[role]]

    def unwrapped(self, role: ModuleRole) -> Any:
        return self._unwrapped[self._models[role]]

    def train_mode(self, training: bool) -> None:
        for model in self.models:
            model.train(training)

    @contextmanager
    def training(self, role: ModuleRole) -> Iterator[Any]:
        """The (prepared) model to run ``role``'s update forward passes through."""
        if self.adapters:
            lora.activate(self.unwrapped(role), role)
        yield self.prepared(role)

    @contextmanager
    def reference_model(self, role: ModuleRole) -> Iterator[Any]:
        """The frozen reference for ``role``'s KL term (no gradients are taken through it)."""
        if self.adapters:
            with lora.reference(self.unwrapped(role), role) as frozen:
                yield frozen
        else:
            yield self.reference

    @property
    def has_reference(self) -> bool:
        return self.adapters or self.reference is not None

    def generator(self, name: str) -> tuple[Any, Any]:
        """``(model, activate)`` for the engine ``policy:<name>``: a trained role, or ``base``.

        ``activate`` is a context manager factory the engine enters around every decode, in its
        worker thread, so that one shared model serves several adapters one batch at a time.
        """
        if name == BASE:
            if self.adapters:
                model = self._unwrapped[0]
                return model, lambda: lora.base_only(model)
            if self.reference is None:
                raise ValueError("no base model was kept for policy:base")
            return self.reference, nullcontext
        if name not in self._models:
            raise KeyError(name)
        model = self.unwrapped(name)
        if self.adapters:
            return model, lambda: _activated(model, name)
        return model, nullcontext


def frozen_copy(model: Any) -> Any:
    """A copy that does not train (the reference, a rollout twin): same weights, no gradients, eval mode."""
    import copy

    reference = copy.deepcopy(model).eval()
    for parameter in reference.parameters():
        parameter.requires_grad_(False)
    return reference


@contextmanager
def _activated(model: Any, role: str) -> Iterator[Any]:
    lora.activate(model, role)
    yield model
