"""Rollout backends: where the trained modules generate their rollouts.

The trainer talks to a backend through :class:`~agentflow_rl.flow_grpo.model.backends.base.RolloutBackend`
(make engines that generate with the trained weights and return token ids and log-probabilities;
take the new weights before the next rollout batch; say when it cannot go on). Backends are
registered through the ``register_rollout_backends`` hook and chosen by ``[rollout] backend``:
``hf`` (``inprocess``) generates in the training process, ``hf_worker`` (``worker``, with
``worker_main`` the process it starts) in a separate process synced after each optimizer step,
``vllm`` (``fleet``) on vLLM servers that load each step's weights (the pieces are in ``flow_grpo/fleet/``).
"""
