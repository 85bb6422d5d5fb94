"""``[flow_grpo]`` training settings, read from TOML with the core's strict rules.

Every field is documented once, here. Unknown keys, wrong types and bad enum values are rejected
at load time with the key and the file named (``train.toml: loss.type: 'ppo' is not a valid
LossType``); cross-field mistakes say what is wrong, why, and what to set instead.
The defaults are the paper's hyper-parameters (lr 1e-6, 8 rollouts per question, 32 questions
per step, 3 turns, temperature 0.7 for training and 0.0 for evaluation).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import attrs

from agentflow_core import structure_settings
from agentflow_core.config import read_toml
from agentflow_core.records import MODULE_ROLES, ModuleRole
from agentflow_rl.flow_grpo.advantages import AdvantageMode
from agentflow_rl.flow_grpo.loss import ClipSettings, LossType
from agentflow_rl.flow_grpo.model.tiny_policy import TinyPolicyConfig

#: Bounds many fields share. attrs types a validator by its bound, so counts (int fields) and amounts
#: (float fields) each get their own.
_ge0, _ge1 = attrs.validators.ge(0), attrs.validators.ge(1)
_non_negative, _positive = attrs.validators.ge(0.0), attrs.validators.gt(0.0)


#: Llama/Qwen/Mistral spelling of every linear layer of attention and MLP (not the embeddings or head).
LLAMA_LINEAR_LAYERS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def _check_roles(key: str, keys: Any) -> None:
    """Tables keyed by module (``{ verifier = 2.0 }``) name only modules that exist."""
    for role in keys:
        if role not in MODULE_ROLES:
            raise ValueError(f"{key}: {role!r} is not one of {', '.join(MODULE_ROLES)}")


def _check_trained(key: str, keys: Any, trained: Sequence[str]) -> None:
    """Tables of settings that only a trained module has name only trained modules."""
    for role in keys:
        if role not in trained:
            raise ValueError(
                f"{key}.{role}: {role} is not trained (train.modules = {list(trained)}); "
                "an untrained module runs on the base model"
            )


@attrs.frozen
class LoraConfig:
    """A LoRA adapter (peft) per trained module instead of training all weights."""

    #: Rank of each adapter: the inner size of its two low-rank matrices.
    r: int = attrs.field(default=16, validator=_ge1)
    #: Scale of an adapter's update, which is multiplied by ``alpha / r``.
    alpha: float = attrs.field(default=32.0, validator=_positive)
    #: Dropout on each adapter's input while training.
    dropout: float = attrs.field(default=0.0, validator=[_non_negative, attrs.validators.lt(1)])
    #: Module names to adapt; ``["all-linear"]`` lets peft pick every linear layer but the head.
    target_modules: tuple[str, ...] = LLAMA_LINEAR_LAYERS
    #: Adapt only the last N decoder layers (peft's ``layers_to_transform``); unset adapts every
    #: layer. Nothing below the lowest adapter needs a gradient, so the backward pass stops there
    #: and keeps no activations for those layers (the time it saves: docs/results.md, "Adapting fewer layers").
    last_layers: int | None = attrs.field(default=None, validator=attrs.validators.optional(_ge1))
    #: Start a trained module's adapter from a PEFT adapter folder instead of from zero, e.g.
    #: ``{ planner = "runs/smollm2/policy/planner" }`` (relative to the working directory, like
    #: ``run.output_dir``, since it is usually an earlier run's output). Its shape (``r``, ``alpha``,
    #: targets, layers) must be this table's. That module's KL reference is then the adapter it
    #: started from, held frozen beside it, not the bare base: training goes on from a policy, as
    #: GRPO's reference is the policy training began with.
    init: dict[str, str] = attrs.field(factory=dict)

    @init.validator
    def _check_init(self, _: Any, value: dict[str, str]) -> None:
        _check_roles("policy.lora.init", value)


class WeightDtype(enum.Enum):
    FLOAT32 = "float32"
    BFLOAT16 = "bfloat16"
    FLOAT16 = "float16"


@attrs.frozen
class PolicyConfig:
    #: ``"tiny"`` (random Llama over the synthetic vocabulary), ``"hf:smollm2"``, a folder or a hub id.
    source: str = "tiny"
    #: Shape of the tiny policy; used only when ``source = "tiny"``.
    tiny: TinyPolicyConfig = attrs.field(factory=TinyPolicyConfig)
    #: Train a LoRA adapter per module on one shared, frozen base; unset trains all weights (each
    #: trained module then gets its own copy of the model).
    lora: LoraConfig | None = None
    #: The weights' dtype. Half precision needs ``lora``: it halves the frozen base and the
    #: activations and KV caches computed through it, while the adapters, logits and loss stay
    #: float32. Fast on GPUs and on CPUs with AVX-512 BF16; on an AVX2-only CPU several times slower,
    #: so float32 is the default (measured in docs/results.md, "A bfloat16 base").
    dtype: WeightDtype = WeightDtype.FLOAT32


class TaskKind(enum.Enum):
    #: The built-in synthetic tool-use environment (``agentflow_rl.flow_grpo.tasks.synthetic.world``).
    SYNTHETIC = "synthetic"
    #: Questions and gold answers from files, solved with an ``agentflow.toml`` agent.
    RECORDS = "records"


@attrs.frozen
class SyntheticConfig:
    #: Keys whose numbers must be looked up.
    keys: int = attrs.field(default=12, validator=_ge1)
    #: Share of each question shape held out for evaluation (at most ``max_held_out`` of a shape).
    held_out: float = attrs.field(default=0.25, validator=[attrs.validators.gt(0), attrs.validators.lt(1)])
    #: Most questions of one shape held out (there are 5 shapes).
    max_held_out: int = attrs.field(default=20, validator=_ge1)
    #: Seed of the world (the keys' numbers) and of the held-out split.
    seed: int = 0


@attrs.frozen
class TaskConfig:
    #: Where the questions come from and how the agent is made.
    kind: TaskKind = TaskKind.SYNTHETIC
    #: The synthetic world (``kind = "synthetic"``).
    synthetic: SyntheticConfig = SyntheticConfig()
    #: JSONL or parquet of training questions (``kind = "records"``); relative to this file.
    train_file: str | None = None
    #: Held-out questions; default: none (no evaluation).
    eval_file: str | None = None
    #: An ``agentflow.toml`` for the fixed modules and the tools (``kind = "records"``).
    agent_config: str | None = None
    #: The planner module, by registered name (``synthetic`` or ``synthetic_chat`` for the synthetic
    #: task; ``default`` for an agentflow.toml agent).
    planner: str = "synthetic"
    #: The executor module by registered name; unset keeps the task's own (the synthetic task's rules,
    #: or the agent config's).
    executor: str | None = None
    #: The verifier module by registered name; unset keeps the task's own. The synthetic task also has
    #: an LLM verifier, ``synthetic_chat``.
    verifier: str | None = None
    #: The generator module by registered name; unset keeps the task's own.
    generator: str | None = None
    #: How answers are scored (``records``): ``exact_match`` (the whole answer), or ``short_answer`` (its
    #: ``Answer:`` line; numbers compared as numbers, F1 as the graded value).
    scorer: str = "exact_match"
    #: The reward, by name in the reward registry (``register_rewards``): ``outcome`` (the paper's:
    #: 1 when the scorer calls the final answer right) or ``tool_choice`` (1 when the planner's first
    #: tool is the record's gold tool).
    reward: str = "outcome"
    #: Describe the enabled tools to the modules but never run them: each call returns a fixed
    #: note. For rewards that judge decisions rather than outcomes (``tool_choice``), so a rollout
    #: costs no sandbox, network or tool model.
    dry_run_tools: bool = False

    def module(self, role: ModuleRole) -> str | None:
        return self.planner if role == "planner" else getattr(self, role)


@attrs.frozen
class TrainModulesConfig:
    # Typed as plain strings so that a wrong name gets the validator's message, not cattrs'.
    #: The modules whose LLM calls are trained, each with its own adapter (or model); the others
    #: keep their engines. The paper trains only the planner.
    modules: tuple[str, ...] = attrs.field(default=("planner",))

    #: The step (as logged, from 1) at which a module's updates begin, e.g. ``{ verifier = 40 }``;
    #: modules not named train from step 1. Before it the module is rolled out at its starting
    #: weights, at its temperature, and not trained. A curriculum for modules whose reward depends
    #: on another's skill: a Verifier cannot learn when to continue while every Planner's second
    #: turn fails anyway, and its updates (long, unshared prompts) cost more than the Planner's.
    start_step: dict[str, int] = attrs.field(factory=dict)

    @property
    def roles(self) -> tuple[ModuleRole, ...]:
        return tuple(role for role in self.modules if role in MODULE_ROLES)  # all of them: checked below

    def training_at(self, step: int) -> tuple[ModuleRole, ...]:
        """The modules whose turns the update of logged step ``step`` trains."""
        return tuple(role for role in self.roles if step >= self.start_step.get(role, 1))

    @modules.validator
    def _check(self, _: Any, value: tuple[str, ...]) -> None:
        unknown = [m for m in value if m not in MODULE_ROLES]
        if unknown or not value or len(set(value)) != len(value):
            raise ValueError(
                f"train.modules must name each of {', '.join(MODULE_ROLES)} at most once, got {list(value)}"
            )

    @start_step.validator
    def _check_start(self, _: Any, value: dict[str, int]) -> None:
        _check_roles("train.start_step", value)
        _check_trained("train.start_step", value, self.modules)
        for role, step in value.items():
            if isinstance(step, bool) or not isinstance(step, int) or step < 1:
                raise ValueError(f"train.start_step.{role} must be a step number >= 1, got {step!r}")


@attrs.frozen
class VllmLaunchConfig:
    """vLLM servers the trainer starts on this machine before the first step and stops with the run."""

    #: An interpreter that imports vLLM (it pins its own libraries, so usually a venv of its own).
    python: str
    #: How many servers, each on a free loopback port.
    count: int = attrs.field(default=1, validator=_ge1)
    #: More ``vllm serve`` arguments, after the trainer's own (so they win), e.g. ``["--max-model-len", "4096"]``.
    args: tuple[str, ...] = ()
    #: More environment variables for the servers (which GPUs they see, how much KV cache a CPU server keeps).
    env: dict[str, str] = attrs.field(factory=dict)
    #: Seconds all servers together may take to load the model and answer ``/health``.
    startup_s: float = attrs.field(default=900.0, validator=attrs.validators.gt(0.0))


@attrs.frozen
class VllmRolloutConfig:
    """``[rollout.vllm]``: the vLLM servers the trained modules generate on (``rollout.backend = "vllm"``)."""

    #: ``/v1`` URLs of servers started elsewhere (Slurm, Kubernetes, Ray), e.g. ``["http://gpu-3:8000/v1"]``.
    urls: tuple[str, ...] = attrs.field(default=())
    #: Servers the trainer starts itself instead; give this or ``urls``.
    launch: VllmLaunchConfig | None = None
    #: The fewest servers that must still answer for a step to go on; with fewer the step fails.
    min_servers: int = attrs.field(default=1, validator=_ge1)
    #: Seconds one request (a completion, an adapter load) may take before its server is dropped.
    timeout_s: float = attrs.field(default=300.0, validator=attrs.validators.gt(0.0))
    #: Where each step's weights go, read by every server at this path; default ``<run.output_dir>/served``.
    weights_dir: str | None = None

    @urls.validator
    def _check_urls(self, _: Any, value: tuple[str, ...]) -> None:
        for url in value:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"urls: {url!r} is not an http(s) URL (e.g. http://gpu-3:8000/v1)")
        if len({url.rstrip("/") for url in value}) != len(value):
            raise ValueError("urls names a server more than once")

    def __attrs_post_init__(self) -> None:
        if bool(self.urls) == (self.launch is not None):
            raise ValueError(
                "give either urls (servers started elsewhere) or launch (servers the trainer starts), "
                "not both and not neither"
            )
        servers = self.launch.count if self.launch is not None else len(self.urls)
        if self.min_servers > servers:
            raise ValueError(f"min_servers = {self.min_servers}, but there are only {servers} servers")


@attrs.frozen
class RolloutConfig:
    #: Trajectories sampled per question (G).
    group_size: int = attrs.field(default=8, validator=attrs.validators.ge(2))
    #: Questions per training step, over all processes.
    questions_per_step: int = attrs.field(default=32, validator=_ge1)
    #: Planner turns per trajectory (the solver's ``max_steps``).
    max_turns: int = attrs.field(default=3, validator=_ge1)
    #: Sampling temperature of every module in training rollouts, unless ``module_temperatures`` names it.
    temperature: float = attrs.field(default=0.7, validator=_positive)
    #: A module's own training temperature, e.g. ``{ verifier = 2.0 }``, trained or not. A binary
    #: decision whose prior is 95/5 hardly explores at the planner's temperature; evaluation stays at
    #: ``eval_temperature`` for every module.
    module_temperatures: dict[str, float] = attrs.field(factory=dict)
    #: Sampling temperature of every module on held-out questions; 0 is greedy.
    eval_temperature: float = attrs.field(default=0.0, validator=_non_negative)
    #: Cap on tokens of one planner reply.
    max_new_tokens: int = attrs.field(default=256, validator=_ge1)
    #: Planner calls decoded together in one padded batch (the engine's ``max_batch``); 1 decodes
    #: them one at a time. The G trajectories of all questions reach the planner together, so a
    #: batch this large keeps them in one pass.
    max_batch: int = attrs.field(default=1, validator=_ge1)
    #: Forward what prompts share (a group's one prompt, the opening every prompt of a run has) once
    #: per batch, in generation (the engine's ``share_prompts``) and in the update. Off, every row
    #: is forwarded in full; activation checkpointing and FSDP turn it off in the update.
    share_prompts: bool = True
    #: Write the text a JSON schema leaves no choice about (the engine's ``jump_forward``) instead of
    #: sampling it: the policy then acts only where the grammar offers a choice of text, not among
    #: spellings of the same JSON, and a tool choice costs one sampled token instead of about eight.
    jump_forward: bool = True
    #: Deadline for one question's group of trajectories, in seconds; a group past it is dropped from
    #: the step and counted (``train/timed_out_groups``) instead of stalling the run. 0: no deadline.
    timeout_s: float = attrs.field(default=600.0, validator=_non_negative)
    #: Where the trained modules generate, by name in the ``register_rollout_backends`` registry:
    #: ``hf`` (in the training process), ``hf_worker`` (a separate process, synced each step) or
    #: ``vllm`` (vLLM servers, ``[rollout.vllm]``).
    backend: str = "hf"
    #: How long a worker backend may take to answer one call or take new weights; 0: no limit.
    worker_timeout_s: float = attrs.field(default=300.0, validator=_non_negative)
    #: The servers of ``backend = "vllm"``.
    vllm: VllmRolloutConfig | None = None

    @module_temperatures.validator
    def _check_module_temperatures(self, _: Any, value: dict[str, float]) -> None:
        _check_roles("rollout.module_temperatures", value)
        for role, temperature in value.items():
            if not temperature > 0:
                raise ValueError(f"rollout.module_temperatures.{role} must be > 0, got {temperature}")

    def temperature_of(self, role: str) -> float:
        return self.module_temperatures.get(role, self.temperature)


@attrs.frozen
class LossConfig:
    #: How the token terms of a batch are averaged into the loss.
    type: LossType = LossType.FLOW_GRPO
    #: The importance ratio is clipped to ``[1 - clip_low, 1 + clip_high]``, as in PPO; this is the lower side.
    clip_low: float = attrs.field(default=0.2, validator=[_non_negative, attrs.validators.lt(1)])
    #: The upper side of that clip; above ``clip_low`` it lets unlikely tokens gain probability faster
    #: (DAPO's clip-higher).
    clip_high: float = attrs.field(default=0.3, validator=_non_negative)
    #: Weight of the k3 KL to the frozen reference; 0 skips the reference model entirely.
    kl_coef: float = attrs.field(default=0.001, validator=_non_negative)
    #: Whether turns with a zero advantage (groups whose rewards all agree) are still trained on for
    #: their KL term alone. False leaves them out of the update: early in training most groups
    #: fail together, so this skips most of a step's forward/backward work for a term that weighs
    #: ``kl_coef`` (0.001) against nothing.
    kl_on_zero_advantage: bool = True
    #: Weight of an entropy bonus on the turns of groups in which no trajectory earned any reward.
    #: Their advantage is zero, so otherwise nothing keeps the policy from settling on the choice
    #: that fails them all; the bonus pushes those prompts, and only those, back towards trying
    #: something else. 0 leaves them out of the update (with ``kl_on_zero_advantage = false``).
    failed_group_entropy: float = attrs.field(default=0.0, validator=_non_negative)

    def clip(self) -> ClipSettings:
        return ClipSettings(self.clip_low, self.clip_high, self.kl_coef, self.failed_group_entropy)


@attrs.frozen
class AdvantageConfig:
    #: How a group's rewards become the advantages of its turns.
    mode: AdvantageMode = AdvantageMode.TRAJECTORY
    #: Divide by the group's standard deviation (false: only centre, as in Dr. GRPO).
    scale: bool = True


@attrs.frozen
class OptimConfig:
    """AdamW, and how an update is split into passes."""

    #: Learning rate (the paper's 1e-6 is for all weights; LoRA adapters take a larger one).
    lr: float = attrs.field(default=1e-6, validator=_positive)
    #: AdamW's decoupled weight decay.
    weight_decay: float = attrs.field(default=0.0, validator=_non_negative)
    #: AdamW's decay rates of the running mean of the gradient and of its square.
    betas: tuple[float, float] = (0.9, 0.999)
    #: Gradient-norm clip; 0 turns it off.
    max_grad_norm: float = attrs.field(default=1.0, validator=_non_negative)
    #: Optimizer steps on each rollout batch (the ratio leaves 1 from the second on).
    updates_per_batch: int = attrs.field(default=1, validator=_ge1)
    #: Turns per forward/backward pass; a batch is accumulated over as many as it needs. With
    #: ``rollout.share_prompts`` it counts distinct prompts: the turns that share one ride along.
    micro_batch_turns: int = attrs.field(default=64, validator=_ge1)


@attrs.frozen
class RunConfig:
    #: Folder of the run (checkpoints, metrics, kept rollouts, the trained policy), relative to the
    #: working directory.
    output_dir: str = "runs/flow-grpo"
    #: Training steps, each one rollout batch and its updates.
    max_steps: int = attrs.field(default=100, validator=_ge1)
    #: Stop (after checkpointing) once this much wall time has passed; 0 for no limit.
    max_minutes: float = attrs.field(default=0.0, validator=_non_negative)
    #: Evaluate on held-out questions every N steps (and before the first); 0 never.
    eval_every: int = attrs.field(default=10, validator=_ge0)
    #: Evaluate on at most this many held-out questions; 0 for all.
    eval_questions: int = attrs.field(default=0, validator=_ge0)
    #: Stop early once held-out success reaches this (0 never).
    target_success: float = attrs.field(default=0.0, validator=[_non_negative, attrs.validators.le(1)])
    #: Checkpoint every N steps and at the end, to resume from; 0 never checkpoints.
    checkpoint_every: int = attrs.field(default=10, validator=_ge0)
    #: Complete checkpoints kept in ``output_dir``; older ones are deleted.
    keep_checkpoints: int = attrs.field(default=2, validator=_ge1)
    #: Record each checkpoint file's SHA-256 in its manifest and check it before resuming, so that
    #: a file whose bytes changed is caught, not only one cut short (sizes are always checked).
    #: Costs a read of the checkpoint per save and per resume; off for very large runs.
    checkpoint_checksums: bool = True
    #: Continue from the newest complete checkpoint in ``output_dir`` when there is one.
    resume: bool = True
    #: Seed of the question order, sampling and the advantage ablations.
    seed: int = 0
    #: Mixed precision for the update (accelerate's ``bf16``); rollouts stay in the model's dtype.
    bf16: bool = False
    #: Recompute activations in the backward pass instead of keeping them: less memory, more time.
    gradient_checkpointing: bool = False
    #: On a CPU, have glibc hand blocks of 1 MB and more back to the system as soon as they are freed
    #: (``agentflow_rl.flow_grpo.run.memory``): the peak stays at what a step needs instead of creeping
    #: up, but every large tensor then costs fresh page faults. Also trims the heaps after each
    #: rollout batch and micro-batch, caps oneDNN's primitive cache at 64 and ideep's at 1 (unless
    #: ``ONEDNN_PRIMITIVE_CACHE_CAPACITY`` or ``LRU_CACHE_CAPACITY`` is set). For runs with a memory
    #: budget; peak and time measured in docs/results.md, "The CPU allocator".
    release_freed_memory: bool = False
    #: Rollouts of each step saved to ``<output_dir>/samples/`` for ``agentflow view``; 0 saves none.
    sample_rollouts: int = attrs.field(default=4, validator=_ge0)
    #: accelerate trackers; ``tensorboard`` needs the ``tensorboard`` package. metrics.jsonl is always written.
    trackers: tuple[str, ...] = ("tensorboard",)
    #: Besides ``<output_dir>/policy/<module>/`` (weights, or a PEFT adapter for LoRA runs), write
    #: each LoRA module with its adapter merged into the base to ``<output_dir>/merged/<module>/``.
    export_merged: bool = False


@attrs.frozen
class AlertsConfig:
    """Thresholds that print a one-line warning at the step a trained module crosses them; 0 turns one off."""

    #: Share of a module's calls whose reply did not parse.
    parse_error_rate: float = attrs.field(default=0.5, validator=_non_negative)
    #: Share of tool calls that failed.
    tool_error_rate: float = attrs.field(default=0.9, validator=_non_negative)
    #: Mean per-token k3 KL of a module to the reference.
    kl: float = attrs.field(default=1.0, validator=_non_negative)


@attrs.frozen
class TrainConfig:
    #: Which modules are trained, and from which step.
    train: TrainModulesConfig = TrainModulesConfig()
    #: The model being trained: where it comes from, LoRA or all weights, its dtype.
    policy: PolicyConfig = PolicyConfig()
    #: What the agent is trained on: questions, modules, tools and reward.
    task: TaskConfig = TaskConfig()
    #: How trajectories are sampled: group size, questions per step, temperatures, where generation runs.
    rollout: RolloutConfig = RolloutConfig()
    #: The objective: how token terms are averaged, the clip, the KL and entropy terms.
    loss: LossConfig = LossConfig()
    #: How rewards become advantages.
    advantage: AdvantageConfig = AdvantageConfig()
    #: The optimizer and the passes of an update.
    optim: OptimConfig = OptimConfig()
    #: The run: its folder, length, evaluation, checkpoints and trackers.
    run: RunConfig = RunConfig()
    #: Thresholds of one-line warnings about a trained module.
    alerts: AlertsConfig = AlertsConfig()

    def __attrs_post_init__(self) -> None:
        if self.policy.source == "tiny" and self.task.kind is not TaskKind.SYNTHETIC:
            raise ValueError(
                "policy.source = 'tiny' only knows the synthetic task's words; set task.kind = 'synthetic' "
                "or give a real model as policy.source (e.g. 'hf:smollm2')"
            )
        if self.task.kind is TaskKind.RECORDS and not self.task.train_file:
            raise ValueError("task.kind = 'records' needs task.train_file (a JSONL or parquet of questions)")
        if self.policy.dtype is not WeightDtype.FLOAT32 and self.policy.lora is None:
            raise ValueError(
                f"policy.dtype = {self.policy.dtype.value!r} needs policy.lora: all weights train in float32 "
                "(Adam's updates vanish in half precision); run.bf16 = true gives mixed precision instead"
            )
        if self.policy.lora is not None:
            _check_trained("policy.lora.init", self.policy.lora.init, self.train.roles)
        if self.run.export_merged and self.policy.lora is None:
            raise ValueError("run.export_merged merges LoRA adapters; it needs policy.lora (full weights export as is)")
        _check_served(self)


#: The rollout backend that reads ``[rollout.vllm]``.
VLLM_BACKEND = "vllm"


def _check_served(config: TrainConfig) -> None:
    """What a vLLM fleet cannot do, refused at load rather than at the first step."""
    rollout = config.rollout
    if rollout.backend != VLLM_BACKEND:
        if rollout.vllm is not None:
            raise ValueError(f"rollout.vllm is read only by rollout.backend = 'vllm' (it is {rollout.backend!r})")
        return
    if rollout.vllm is None:
        raise ValueError("rollout.backend = 'vllm' needs a [rollout.vllm] table with urls or launch")
    if config.policy.source == "tiny":
        raise ValueError(
            "rollout.backend = 'vllm' cannot serve policy.source = 'tiny' (built in code, not a model folder); "
            "give a real model, e.g. 'hf:smollm2'"
        )
    if rollout.jump_forward:
        raise ValueError(
            "rollout.backend = 'vllm' samples every token (vLLM has no jump-forward decoding): set "
            "rollout.jump_forward = false too (docs/flow-grpo.md says what that costs)"
        )
    if config.policy.lora is None and len(config.train.roles) > 1:
        raise ValueError(
            f"rollout.backend = 'vllm' with full weights serves one trained module (each server holds one model), "
            f"but train.modules = {list(config.train.roles)}: train one, or set policy.lora for an adapter each"
        )


def bundled_config(name: str) -> Path:
    """A TOML shipped in ``agentflow_rl/flow_grpo/configs`` (e.g. ``synthetic.toml``)."""
    return Path(str(resources.files("agentflow_rl.flow_grpo") / "configs" / name))


def load_train_config(path: str | Path, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """Read a training TOML; input files are relative to its folder, ``run.output_dir`` to the working one."""
    path = Path(path)
    data = read_toml(path, what="training config")
    for dotted, value in (overrides or {}).items():
        _set(data, dotted, value)
    config = structure_settings(TrainConfig, data, where=str(path))
    return _relative_to(config, path.parent)


def _set(data: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    for key in parents:
        data = data.setdefault(key, {})
    data[leaf] = value


def _relative_to(config: TrainConfig, base: Path) -> TrainConfig:
    def resolve(value: str | None) -> str | None:
        if value is None or Path(value).is_absolute():
            return value
        return str(base / value)

    task = attrs.evolve(
        config.task,
        train_file=resolve(config.task.train_file),
        eval_file=resolve(config.task.eval_file),
        agent_config=resolve(config.task.agent_config),
    )
    return attrs.evolve(config, task=task)
