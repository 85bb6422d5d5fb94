"""The Flow-GRPO loop on accelerate: rollout → reward → advantage → update, with evals and checkpoints.

One process on a CPU, or one per GPU under ``accelerate launch`` (DDP; see ``configs/accelerate``).
Each step hands every process its share of the questions; a process samples G trajectories per
question through the real solver with the trained modules on the policy, scores them, normalises
rewards within each group, and accumulates the loss of every turn of every trained module; DDP
averages the gradients. A step is one rollout batch and its ``updates_per_batch`` optimizer steps.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs

from agentflow_core import ConfigError, Solver
from agentflow_core.plugins import build_registry
from agentflow_core.records import MODULE_ROLES, ModuleRole
from agentflow_core.registry import Registry
from agentflow_rl.flow_grpo.advantages import advantages, failed_groups
from agentflow_rl.flow_grpo.collation import TurnSample, build_samples
from agentflow_rl.flow_grpo.config import OptimConfig, TaskKind, TrainConfig
from agentflow_rl.flow_grpo.masking import GrammarReplay
from agentflow_rl.flow_grpo.model import lora
from agentflow_rl.flow_grpo.model.backends.base import BackendContext, RolloutBackend
from agentflow_rl.flow_grpo.model.policy import load_policy
from agentflow_rl.flow_grpo.model.sharded import RolloutCopy, shards_parameters
from agentflow_rl.flow_grpo.model.trained import TrainedModules
from agentflow_rl.flow_grpo.registry import TrainingRegistry
from agentflow_rl.flow_grpo.rewards import RewardFn, context_for
from agentflow_rl.flow_grpo.rollout import PolicyEngines, RolloutBatch, refuse_stale, rollout_batch
from agentflow_rl.flow_grpo.run import alerts, logs, memory, metrics
from agentflow_rl.flow_grpo.run.checkpoint import Progress, latest_checkpoint, save_checkpoint
from agentflow_rl.flow_grpo.run.export import export_policy
from agentflow_rl.flow_grpo.run.identity import identity
from agentflow_rl.flow_grpo.run.kept_rollouts import keep_rollouts
from agentflow_rl.flow_grpo.run.resume import resume_run
from agentflow_rl.flow_grpo.run.tracking import JsonlTracker, read_metrics
from agentflow_rl.flow_grpo.tasks.records import RecordStream, TrainRecord
from agentflow_rl.flow_grpo.tasks.setup import TaskSetup, build_task, solver_config
from agentflow_rl.flow_grpo.tasks.tool_choice import dry_run
from agentflow_rl.flow_grpo.update import UpdateContext, UpdateStats, anchored, learnable, policy_update


@attrs.frozen
class TrainResult:
    output_dir: Path
    steps: int
    #: Held-out success before the first step of this run (None when not evaluated).
    first_success: float | None
    last_success: float | None
    minutes: float
    #: Why the loop ended: ``max_steps``, ``max_minutes`` or ``target_success``.
    stopped: str


@attrs.define
class _Session:
    config: TrainConfig
    accelerator: Any
    modules: TrainedModules
    tokenizer: Any
    optimizer: Any
    update: UpdateContext
    task: TaskSetup
    stream: RecordStream
    progress: Progress
    train_solver: Solver
    eval_solver: Solver
    runner: asyncio.Runner
    reward: RewardFn
    #: Where the trained modules generate (``rollout.backend``).
    backend: RolloutBackend
    #: Rebuilds the grammar's allowed set at each position of a turn (the masked objective).
    replay: GrammarReplay
    started: float = attrs.field(factory=time.perf_counter)

    @property
    def model(self) -> Any:
        """The first trained module's model (unwrapped): the policy, when one module is trained."""
        return self.modules.unwrapped(self.config.train.roles[0])

    def minutes(self) -> float:
        return (self.progress.elapsed_s + time.perf_counter() - self.started) / 60


def train(config: TrainConfig) -> TrainResult:
    """Load the policy, resume from the newest checkpoint if the run has one, and train to a stop.

    Every way in ends here: ``agentflow train``, ``python -m agentflow_rl.flow_grpo`` and nox
    read a TOML and call this.
    """
    session = start_session(config)
    try:
        return _loop(session)
    finally:
        close_session(session)


def start_session(config: TrainConfig) -> _Session:
    accelerator = _accelerator(config)
    task = build_task(config.task)
    base, tokenizer = load_policy(config.policy, task.vocabulary)
    sharded = shards_parameters(accelerator)
    modules, optimizer, copies = _trained_modules(config, base, accelerator, sharded=sharded)
    progress, stream = Progress(), RecordStream(task.train, seed=config.run.seed)
    accelerator.register_for_checkpointing(progress, stream)
    resume_run(accelerator, config, progress, optimizer)
    purge = {"tensorboard": {"purge_step": logs.tensorboard_purge_step(progress.step)}}
    accelerator.init_trackers("flow_grpo", config=metrics.flat_config(config), init_kwargs=purge)
    context = BackendContext(
        config.policy, config.rollout, modules, tokenizer, task.vocabulary, copies, output_dir=config.run.output_dir
    )
    registry, backend, reward = _plugins(config, task, context)
    update = UpdateContext(
        accelerator=accelerator,
        modules=modules,
        optimizer=optimizer,
        settings=config.loss.clip(),
        pad_id=int(tokenizer.pad_token_id),
        micro_batch_turns=config.optim.micro_batch_turns,
        max_grad_norm=config.optim.max_grad_norm,
        # Sharded parameters gather per forward pass; two passes per backward were not checked there.
        share_prompts=config.rollout.share_prompts and not sharded,
        release_memory=config.run.release_freed_memory and accelerator.device.type == "cpu",
    )
    roles = config.train.roles
    return _Session(
        config,
        accelerator,
        modules,
        tokenizer,
        optimizer,
        update,
        task,
        stream,
        progress,
        train_solver=Solver(solver_config(task, config.rollout, roles, evaluation=False), registry=registry),
        eval_solver=Solver(solver_config(task, config.rollout, roles, evaluation=True), registry=registry),
        runner=asyncio.Runner(),
        reward=reward,
        backend=backend,
        replay=GrammarReplay(modules.unwrapped(roles[0]), tokenizer),
    )


def _accelerator(config: TrainConfig) -> Any:
    """accelerate's state for this process, seeded, with the trackers and (on request) the memory tuning."""
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    run = config.run
    trackers: list[Any] = [*run.trackers, JsonlTracker("flow_grpo", run.output_dir)]
    precision = "bf16" if run.bf16 else "no"
    handlers = _ddp_kwargs(config.train.roles)
    accelerator = Accelerator(
        mixed_precision=precision, log_with=trackers, project_dir=run.output_dir, kwargs_handlers=handlers
    )
    set_seed(run.seed + accelerator.process_index)
    if run.release_freed_memory and accelerator.device.type == "cpu":
        memory.return_freed_memory()
    accelerator.print(f"Flow-GRPO on {accelerator.num_processes} process(es), {accelerator.distributed_type.value}")
    _check_divisible(config.rollout.questions_per_step, accelerator.num_processes)
    return accelerator


def _trained_modules(
    config: TrainConfig, base: Any, accelerator: Any, *, sharded: bool
) -> tuple[TrainedModules, Any, dict[ModuleRole, RolloutCopy]]:
    """The trained modules on ``base``, prepared by accelerate with their optimizer, and (under FSDP)
    the unsharded twins rollouts generate from."""
    roles = config.train.roles
    if sharded and config.policy.lora is not None:
        raise ConfigError("policy.lora under FSDP is not supported yet; use DDP (configs/accelerate/ddp.yaml)")
    modules = TrainedModules(base, roles, lora_settings=config.policy.lora, keep_base=_needs_base(config))
    if config.run.gradient_checkpointing:
        for model in modules.models:
            _checkpoint_activations(model)
    optimizer = _optimizer(config.optim, modules.parameters())
    copies = {role: RolloutCopy.of(modules.unwrapped(role), accelerator.device) for role in roles} if sharded else {}
    optimizer = modules.prepare(accelerator, optimizer)
    if modules.adapters:
        _checkpoint_adapters_only(accelerator)
    return modules, optimizer, copies


def _plugins(
    config: TrainConfig, task: TaskSetup, context: BackendContext
) -> tuple[Registry, RolloutBackend, RewardFn]:
    """The solvers' registry, the rollout backend and the reward, from the run's plugins.

    The backend is chosen and made first; the ``policy`` engines are then registered with it.
    """
    pm = task.plugin_manager()
    training = TrainingRegistry.collect(pm)
    reward = training.reward(config.task.reward).fn
    backend = training.rollout_backend(config.rollout.backend).factory(context)
    pm.register(PolicyEngines(backend.engine))
    registry = build_registry(pm)
    return (dry_run(registry) if config.task.dry_run_tools else registry), backend, reward


def _needs_base(config: TrainConfig) -> bool:
    """Whether a frozen copy of the base is needed beside full-weight training: for the KL, or to
    serve the synthetic task's untrained modules that ask a model (``policy:base``)."""
    if config.loss.kl_coef > 0:
        return True
    if config.task.kind is not TaskKind.SYNTHETIC:
        return False
    untrained = [role for role in MODULE_ROLES if role not in config.train.roles]
    return any(config.task.module(role) not in (None, "synthetic") for role in untrained)


def _ddp_kwargs(roles: Sequence[ModuleRole]) -> list[Any]:
    """Several trained modules on one DDP model leave some adapters unused in a backward pass."""
    from accelerate.utils import DistributedDataParallelKwargs

    return [DistributedDataParallelKwargs(find_unused_parameters=len(roles) > 1)]


def _checkpoint_adapters_only(accelerator: Any) -> None:
    """Checkpoints of a LoRA run hold the adapters, not the frozen base (rebuilt from ``policy.source``)."""

    def save(models: list[Any], weights: list[dict[str, Any]], folder: str) -> None:
        if accelerator.is_main_process:
            lora.save_checkpoint_adapters(accelerator.unwrap_model(models[0]), folder)
        weights.clear()

    def load(models: list[Any], folder: str) -> None:
        lora.load_checkpoint_adapters(accelerator.unwrap_model(models[0]), folder)
        models.clear()

    accelerator.register_save_state_pre_hook(save)
    accelerator.register_load_state_pre_hook(load)


def _checkpoint_activations(model: Any) -> None:
    """Recompute activations in the backward pass; transformers 5 renamed the switch."""
    if hasattr(model, "activation_checkpointing_enable"):
        model.activation_checkpointing_enable({"use_reentrant": False})
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


def _check_divisible(questions_per_step: int, processes: int) -> None:
    if questions_per_step % processes:
        raise ConfigError(
            f"rollout.questions_per_step ({questions_per_step}) must be a multiple of the "
            f"{processes} processes, so every process averages the same number of groups"
        )


def _optimizer(optim: OptimConfig, parameters: list[Any]) -> Any:
    import torch

    return torch.optim.AdamW(parameters, lr=optim.lr, betas=optim.betas, weight_decay=optim.weight_decay)


def close_session(session: _Session) -> None:
    session.runner.run(session.train_solver.aclose())
    session.runner.run(session.eval_solver.aclose())
    session.runner.close()
    session.backend.close()
    session.accelerator.end_training()
    # accelerate keeps one process-wide state and refuses a second Accelerator with other settings
    # (bf16 after fp32, say); forget it so that another run in this process starts clean.
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=False)


def _loop(session: _Session) -> TrainResult:
    run = session.config.run
    first = last = None
    evaluated_at = -1
    if run.eval_every and session.progress.step == 0:
        first = last = _log_eval(session)
        evaluated_at = 0
    elif session.progress.step > 0:  # resumed: the starting figure is in the metrics of the earlier session
        first = next((row["eval/success"] for row in read_metrics(run.output_dir) if "eval/success" in row), None)
    stopped = "max_steps"
    while session.progress.step < run.max_steps:
        if run.max_minutes and session.minutes() >= run.max_minutes:
            stopped = "max_minutes"
            # A run cut short by the clock still ends with a held-out figure for the weights it leaves.
            if run.eval_every and evaluated_at != session.progress.step:
                last = _log_eval(session)
            break
        train_step(session)
        step = session.progress.step
        if run.eval_every and (step % run.eval_every == 0 or step == run.max_steps):
            last = _log_eval(session)
            evaluated_at = step
        if run.checkpoint_every and step % run.checkpoint_every == 0:
            _checkpoint(session)
        if run.target_success and last is not None and last >= run.target_success:
            stopped = "target_success"
            break
    if run.checkpoint_every and not _checkpointed(session):
        _checkpoint(session)
    export_policy(session.accelerator, session.modules, session.tokenizer, run.output_dir, merged=run.export_merged)
    return TrainResult(Path(run.output_dir), session.progress.step, first, last, session.minutes(), stopped)


def train_step(session: _Session) -> dict[str, float]:
    """One rollout batch and its updates; returns (and logs) the step's metrics."""
    config, accelerator = session.config, session.accelerator
    started = time.perf_counter()
    records = _shard(session.stream.next_batch(config.rollout.questions_per_step), accelerator)
    batch = _rollouts(session, session.train_solver, records, config.rollout.group_size)
    rollouts = batch.rollouts
    rolled = time.perf_counter()
    rewards = [session.reward(context_for(r.record, r.trajectory, session.task.scorer)) for r in rollouts]
    per_turn = advantages(
        config.advantage.mode,
        rewards,
        [r.group for r in rollouts],
        [len(r.turns) for r in rollouts],
        scale=config.advantage.scale,
        seed=config.run.seed * 7919 + session.progress.step,
    )
    failed = failed_groups(rewards, [r.group for r in rollouts])
    every = build_samples(rollouts, per_turn, config.loss.type, session.replay, failed)
    training = config.train.training_at(session.progress.step + 1)
    samples = learnable(
        [s for s in every if s.role in training],
        config.loss.kl_coef,
        kl_on_zero_advantage=config.loss.kl_on_zero_advantage,
        failed_group_entropy=config.loss.failed_group_entropy,
    )
    updates = _updates(session, samples)
    session.progress.step += 1
    if accelerator.is_main_process:  # a few rollouts for `agentflow view`; every process would append its own
        keep_rollouts(
            config.run.output_dir, session.progress.step, rollouts, rewards, per_turn, config.run.sample_rollouts
        )
    values = metrics.step_metrics(
        metrics.StepRecord(
            rollouts,
            rewards,
            per_turn,
            updates,
            config.train.roles,
            batch.timed_out,
            every,
            deferred={role: role in training for role in config.train.start_step},
        ),
        rolled - started,
        time.perf_counter() - rolled,
    )
    values = metrics.mean_across(accelerator, values)
    values["train/minutes"] = session.minutes()
    version = session.backend.expected_version()
    if version is not None:  # a served backend: the weights version every trained turn was checked to carry
        values["rollout/policy_version"] = float(version)
    accelerator.log(values, step=session.progress.step)
    for line in alerts.crossed(values, config.alerts, config.train.roles):
        accelerator.print(f"step {session.progress.step}: {line}")
    return values


def _updates(session: _Session, samples: list[TurnSample]) -> list[UpdateStats]:
    """``optim.updates_per_batch`` optimizer steps on one batch; the passes after the first take their
    ratio against the first pass's log-probabilities, never the rollout engine's."""
    first = policy_update(session.update, samples)
    samples = anchored(samples, first)
    passes = session.config.optim.updates_per_batch
    return [first, *(policy_update(session.update, samples, first_pass=False) for _ in range(passes - 1))]


def _rollouts(session: _Session, solver: Solver, records: Sequence[TrainRecord], size: int) -> RolloutBatch:
    session.modules.train_mode(False)
    session.backend.sync(session.progress.step)
    timeout = session.config.rollout.timeout_s or None
    batch = session.runner.run(rollout_batch(solver, records, size, session.config.train.roles, timeout_s=timeout))
    session.backend.check()  # a dead or stuck generator fails the step here, in one line
    refuse_stale(batch.rollouts, session.backend.expected_version())
    if session.update.release_memory:
        memory.trim()  # the KV caches' and activations' small blocks, before the update's
    return batch


def evaluate(session: _Session) -> float:
    """Held-out mean reward at the evaluation temperature (greedy by default), over all processes.

    With the ``outcome`` reward that is the share of questions answered right; a question whose
    rollout ran past the deadline counts as a failure.
    """
    run = session.config.run
    records = list(session.task.held_out)[: run.eval_questions or None]
    if not records:
        return float("nan")
    batch = _rollouts(session, session.eval_solver, _shard(records, session.accelerator), 1)
    scorer = session.task.scorer
    total = sum(session.reward(context_for(r.record, r.trajectory, scorer)) for r in batch.rollouts)
    return metrics.sum_across(session.accelerator, total) / len(records)


def _log_eval(session: _Session) -> float:
    success = evaluate(session)
    session.progress.best_success = max(session.progress.best_success, success)
    session.accelerator.log({"eval/success": success, "train/minutes": session.minutes()}, step=session.progress.step)
    where = f"step {session.progress.step}, {session.minutes():.1f} min"
    session.accelerator.print(f"{where}: held-out success {success:.3f}")
    return success


def _checkpoint(session: _Session) -> None:
    session.progress.elapsed_s += time.perf_counter() - session.started
    session.started = time.perf_counter()
    run = session.config.run
    if session.accelerator.is_main_process:
        logs.settle(run.output_dir)  # the rows of the steps it holds are as durable as the checkpoint
    save_checkpoint(
        session.accelerator,
        run.output_dir,
        session.progress.step,
        keep=run.keep_checkpoints,
        settings=identity(session.config),
        checksums=run.checkpoint_checksums,
    )


def _checkpointed(session: _Session) -> bool:
    found = latest_checkpoint(session.config.run.output_dir)
    return found is not None and found.name == f"step-{session.progress.step:07d}"


def _shard(records: Sequence[TrainRecord], accelerator: Any) -> list[TrainRecord]:
    return list(records[accelerator.process_index :: accelerator.num_processes])
