"""``vllm``: the trained modules generate on vLLM servers, which take the new weights after each step.

The servers are ``[rollout.vllm]``'s: URLs of servers started elsewhere, or servers this backend
launches on this machine before the first rollout (:mod:`~agentflow_rl.flow_grpo.fleet.launcher`,
stopped with the run however it ends). An engine ``policy:<role>`` renders its prompt with the
trainer's tokenizer and chat template, as the in-process engine does, and asks the fleet for token
ids (:mod:`~agentflow_rl.flow_grpo.fleet.client`): the completion's ``TokenTrace`` is the one the
``hf`` backend records, plus the version of the weights that sampled it. vLLM has no jump-forward
decoding, so every token is sampled (the config asks for ``rollout.jump_forward = false``).

``sync(step)`` publishes the trainer's weights as version ``step``: each module's LoRA adapter
(:mod:`~agentflow_rl.flow_grpo.fleet.publisher`), or a one-module run's full weights
(:mod:`~agentflow_rl.flow_grpo.fleet.weights`). Under ``accelerate launch`` the processes share
one fleet: process 0 launches the servers and publishes (its weights are every process's after
the synchronised step) and broadcasts the outcome; every other process then reads from each
server that it holds that version before it rolls out, so each process knows the version its
samples must carry (``expected_version``), and the trainer refuses any other.

Fleet I/O runs on an event loop in a thread of its own: the solver's engines and the trainer's
``sync`` reach it from their own threads and loops.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import attrs

from agentflow_core import Completion, ConfigError, EngineConfig, EngineError, GenerationRequest, TokenTrace, Usage
from agentflow_core.engine import GrammarTrace
from agentflow_core.engines.token_runtime import CallFailure, chat_prompt_ids, fit_schema_to_budget
from agentflow_rl.flow_grpo.config import VllmRolloutConfig
from agentflow_rl.flow_grpo.fleet.client import FleetClient
from agentflow_rl.flow_grpo.fleet.launcher import ServerFleet, ServerSpec
from agentflow_rl.flow_grpo.fleet.publisher import AdapterPublisher, Publisher
from agentflow_rl.flow_grpo.fleet.servers import Fleet
from agentflow_rl.flow_grpo.fleet.weights import DEV_MODE, WeightsPublisher
from agentflow_rl.flow_grpo.model.backends.base import BackendContext, ForwardingEngine, RolloutBackendError
from agentflow_rl.flow_grpo.model.trained import BASE

T = TypeVar("T")
#: The grammar library whose EBNF the fleet client sends (``json_schema_ebnf``), so the one replayed.
GRAMMAR = "xgrammar"
#: The LoRA ranks vLLM accepts as ``--max-lora-rank``.
VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)


class FleetBackend:
    def __init__(self, context: BackendContext) -> None:
        if context.rollout.vllm is None:
            raise ConfigError("rollout.backend = 'vllm' needs a [rollout.vllm] table with urls or launch")
        if context.copies:
            raise ConfigError("rollout.backend = 'vllm' under FSDP is not supported yet; use DDP")
        if not context.modules.adapters:
            _check_reloadable(context)
        self._context = context
        self._settings: VllmRolloutConfig = context.rollout.vllm
        self._loop = _LoopThread()
        self._servers: ServerFleet | None = None
        self._fleet: _Connected | None = None
        self._version: int | None = None

    # -- the trainer's side ------------------------------------------------------------------------

    def engine(self, config: EngineConfig) -> ForwardingEngine:
        name = config.model_name
        if name != BASE and name not in self._context.modules.roles:
            raise ConfigError(
                f"engine policy:{name}: no such policy; a trained module's engine is policy:<its role>, "
                "the untrained base is policy:base"
            )
        return ForwardingEngine(self.generate, config)

    def sync(self, step: int) -> None:
        if self._fleet is None:
            self._fleet = self._connect()
        if self._version != step:
            self._publish(self._fleet.publisher, step)
            self._version = step

    def expected_version(self) -> int | None:
        return self._version

    @property
    def fleet(self) -> Fleet | None:
        """The run's servers as the trainer sees them (live or dropped), once the first sync connected."""
        return self._fleet.fleet if self._fleet is not None else None

    def check(self) -> None:
        if self._fleet is not None:
            try:
                self._fleet.fleet.pool.require_live()
            except EngineError as exc:
                raise RolloutBackendError(str(exc)) from None

    def close(self) -> None:
        try:
            if self._fleet is not None:
                self._loop.run(self._fleet.fleet.aclose(), timeout_s=30)
            self._loop.stop()
        finally:
            if self._servers is not None:
                self._servers.stop()

    # -- generating ----------------------------------------------------------------------------------

    async def generate(self, config: EngineConfig, request: GenerationRequest) -> Completion:
        """A completion from the fleet, with the ``TokenTrace`` the in-process engine would record."""
        started = time.perf_counter()
        if self._fleet is None:
            raise EngineError("the rollout fleet has not been synced yet (the trainer syncs before each batch)")
        temperature, max_tokens = request.sampling(config)
        temperature = temperature or 0.0
        max_tokens = max_tokens or self._context.rollout.max_new_tokens
        prompt = chat_prompt_ids(self._context.tokenizer, request.messages)
        schema = fit_schema_to_budget(request.json_schema.schema, max_tokens) if request.json_schema else None
        name = config.model_name
        if name == BASE and not self._context.modules.adapters:  # made for every module, refused when asked
            raise EngineError(
                "policy:base: the servers of a full-weight run hold the trained weights, not the base; give the "
                "untrained modules that ask a model an engine of their own, or set policy.lora"
            )
        asking = self._fleet.client.complete(
            name,
            prompt,
            max_tokens=max_tokens,
            temperature=temperature,
            schema=schema,
            model=self._fleet.served_name(name, adapters=self._context.modules.adapters),
            versioned=name != BASE,
        )
        try:
            done = await self._loop.wait(asking)
        except CallFailure as failure:
            raise EngineError(f"{config.model}: the rollout fleet failed the request: {failure.detail}") from None
        trace = TokenTrace(
            tuple(prompt),
            done.token_ids,
            done.logprobs,
            temperature=temperature if temperature > 0 else 1.0,
            grammar=GrammarTrace(GRAMMAR, done.schema) if done.schema is not None else None,
            policy_version=done.adapter_version,
        )
        usage = Usage(len(prompt), len(done.token_ids))
        return Completion(done.text, usage, time.perf_counter() - started, done.finish_reason, trace)

    # -- the fleet -----------------------------------------------------------------------------------

    def _connect(self) -> _Connected:
        """The servers (launched by process 0, or the configured URLs), their base model's name, a publisher."""
        settings = self._settings
        urls = self._agreed(self._launch) if settings.launch is not None else settings.urls
        fleet = Fleet(urls, min_servers=settings.min_servers, timeout_s=settings.timeout_s)
        try:
            base = self._loop.run(fleet.served_base())
        except EngineError as exc:
            raise RolloutBackendError(str(exc)) from None
        root = Path(settings.weights_dir or Path(self._context.output_dir) / "served").resolve()
        publisher = (AdapterPublisher if self._context.modules.adapters else WeightsPublisher)(fleet, root)
        return _Connected(fleet, FleetClient(fleet), publisher, base)

    def _launch(self) -> tuple[str, ...]:
        """Start ``[rollout.vllm.launch]``'s servers for this run; the URLs once all answer."""
        from agentflow_rl.flow_grpo.model.policy import model_folder

        launch = self._settings.launch
        if launch is None:
            raise ConfigError("rollout.vllm.launch is not set")
        full = not self._context.modules.adapters
        spec = ServerSpec(
            python=launch.python,
            model=model_folder(self._context.policy),
            count=launch.count,
            extra_args=(*serve_args(self._context), *launch.args),
            env={**(DEV_MODE if full else {}), **launch.env},
            startup_s=launch.startup_s,
            served_name=self._context.modules.roles[0] if full else BASE,
        )
        if self._servers is not None:  # a connection that failed after the launch: start afresh
            self._servers.stop()
        self._servers = ServerFleet(spec, Path(self._context.output_dir) / "servers")
        self._servers.__enter__()
        return self._servers.urls

    def _publish(self, publisher: Publisher, step: int) -> None:
        """Process 0 publishes version ``step``; the others then check that every server holds it."""
        modules = self._context.modules

        def publish() -> dict[str, str]:
            model = modules.unwrapped(modules.roles[0])
            written = self._loop.run(publisher.publish(model, self._context.tokenizer, modules.roles, step))
            return {module: str(folder) for module, folder in written.items()}

        folders = self._agreed(publish)
        if _process_index() != 0:
            try:
                self._loop.run(publisher.confirm({m: Path(f) for m, f in folders.items()}, step))
            except EngineError as exc:
                raise RolloutBackendError(str(exc)) from None

    def _agreed(self, make: Callable[[], T]) -> T:
        """``make()`` on process 0, its result on every process; its failure fails all of them in one line."""
        outcome: list[Any] = [None]
        if _process_index() == 0:
            try:
                outcome = [("ok", make())]
            except Exception as exc:
                outcome = [("failed", str(exc) or type(exc).__name__)]
        kind, value = _from_process_zero(outcome)[0]
        if kind == "failed":
            raise RolloutBackendError(value)
        return value


def _check_reloadable(context: BackendContext) -> None:
    """Full weights reach the servers through vLLM's ``reload_weights``, which (vLLM 0.32) refreshes a
    model's embeddings but puts the old output head back when the two are tied: the servers would
    then sample from weights the trainer never held."""
    model = context.modules.unwrapped(context.modules.roles[0])
    if getattr(model.config, "tie_word_embeddings", False):
        raise ConfigError(
            f"rollout.backend = 'vllm' with full weights: {context.policy.source} ties its output head to its "
            "embeddings, and vLLM's weight reload keeps the old head of such a model; set policy.lora, or train "
            "a copy with untied embeddings (agentflow_rl.flow_grpo.model.policy.untied_copy writes one)"
        )


def serve_args(context: BackendContext) -> tuple[str, ...]:
    """``vllm serve`` arguments a run's servers need: its dtype, and room for every module's adapter."""
    policy = context.policy
    args = ["--dtype", policy.dtype.value]
    if policy.lora is not None:
        rank = next((r for r in VLLM_LORA_RANKS if r >= policy.lora.r), policy.lora.r)
        args += ["--max-lora-rank", str(rank), "--max-loras", str(len(context.modules.roles))]
    return tuple(args)


@attrs.frozen
class _Connected:
    """The live fleet of a run and what talks to it."""

    fleet: Fleet
    client: FleetClient
    publisher: Publisher
    #: The name the servers serve the base model under.
    base: str

    def served_name(self, name: str, *, adapters: bool) -> str:
        """The model a request names: a module's own adapter, else the base (a full-weight run trains it)."""
        return name if adapters and name != BASE else self.base


class _LoopThread:
    """An event loop in a daemon thread of its own, which the fleet's connections belong to."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="rollout-fleet-loop", daemon=True)
        self._thread.start()

    def run(self, work: Coroutine[Any, Any, T], *, timeout_s: float | None = None) -> T:
        """Run ``work`` there and wait for it (from a thread with no running loop)."""
        future: concurrent.futures.Future[T] = asyncio.run_coroutine_threadsafe(work, self._loop)
        try:
            return future.result(timeout_s)
        except BaseException:
            future.cancel()
            raise

    async def wait(self, work: Coroutine[Any, Any, T]) -> T:
        """Run ``work`` there and await it from another loop; cancelling the wait cancels the work."""
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(work, self._loop))

    def stop(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=30)


def _process_index() -> int:
    from accelerate import PartialState

    return int(PartialState().process_index)


def _from_process_zero(values: list[Any]) -> list[Any]:
    from accelerate.utils import broadcast_object_list

    return list(broadcast_object_list(values))
