"""``rollout.backend = "vllm"``: Flow-GRPO training on real vLLM CPU servers serving SmolLM2.

A server start is the cost (a minute or more on a busy 2-core box), so the module makes three. The
first test's trainer launches one itself and trains two modules on it, an adapter each. Two more
are started once by a fixture for the rest, serving a copy of SmolLM2 with untied embeddings (the
full-weight test needs one; adapters compute the same numbers on it), in order: two training
processes sharing both; a full-weight run on the second (it reloads that server's weights, which the
last test does not mind); and last, because it ends them, a server killed mid-step while the step
completes on the other, then the other killed too, which fails the next step in one line.

Each step is checked the way a user would read it: ``rollout/policy_version`` (the weights version
every trained turn carried; the trainer refuses any other) and the gap between the servers'
log-probabilities and the trainer's. A gap far below how far the policy has moved from the base
(``loss/kl_max``) shows the servers sampled with the weights the trainer had just published, not
with older ones: with the base's weights, the gap would be about ``sqrt(2 · kl_max)``. A few small
steps need not move the policy at all (every group of a step may earn the same reward), so where a
test checks that, it moves the trained weights itself after each step, as a large update would.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("peft")
pytest.importorskip("accelerate")

from agentflow_core.testing import wait_until  # noqa: E402
from agentflow_rl.flow_grpo import trainer  # noqa: E402
from agentflow_rl.flow_grpo.config import load_train_config  # noqa: E402
from agentflow_rl.flow_grpo.fleet.launcher import ServerFleet, ServerSpec  # noqa: E402
from agentflow_rl.flow_grpo.fleet.weights import DEV_MODE  # noqa: E402
from agentflow_rl.flow_grpo.model.backends.base import RolloutBackendError  # noqa: E402
from agentflow_rl.flow_grpo.model.policy import untied_copy  # noqa: E402
from agentflow_rl.flow_grpo.run.tracking import read_metrics  # noqa: E402
from agentflow_rl.flow_grpo.testing import write_config  # noqa: E402
from tests.vllm_support import ROOT, smollm2_folder, vllm_env, vllm_python  # noqa: E402

pytestmark = pytest.mark.slow

#: |vLLM - trainer| per token: both compute in float32 (measured: max ~6e-5; benchmarks/vllm_fleet.py).
GAP = 2e-3
#: Arguments every test server runs with: small, eager (no compile), room for two rank-8 adapters.
SERVE_ARGS = ("--max-model-len", "2048", "--enforce-eager")
LOGGER = "agentflow_core.engines.endpoints"


def _server_env() -> dict[str, str]:
    return {k: v for k, v in vllm_env().items() if k.startswith("VLLM_")}


def _train_toml(
    tmp_path: Path,
    fleet: dict[str, Any],
    *,
    two_modules: bool = True,
    lora: bool = True,
    group: int = 2,
    source: str = "hf:smollm2",
    **run: Any,
) -> Path:
    """SmolLM2 as Planner (and Verifier) of the synthetic task, in steps as small as they come."""
    task = {"kind": "synthetic", "planner": "synthetic_chat"}
    if two_modules:
        task |= {"verifier": "synthetic_chat", "generator": "synthetic_stopped"}
    sections: dict[str, Any] = {
        "train": {"modules": ["planner", "verifier"] if two_modules else ["planner"]},
        "policy": {"source": source, **({"lora": {"r": 8, "alpha": 16}} if lora else {})},
        "task": task,
        "rollout": {
            "group_size": group,
            "questions_per_step": 2,
            "max_turns": 2,
            "temperature": 1.2,
            "max_new_tokens": 24,
            "jump_forward": False,
            "backend": "vllm",
            "vllm": fleet,
        },
        "loss": {"kl_coef": 0.001, "kl_on_zero_advantage": True},
        "optim": {"lr": 2e-4 if lora else 1e-5, "micro_batch_turns": 8},
        "run": {
            "output_dir": str(tmp_path / "run"),
            "eval_every": 0,
            "checkpoint_every": 0,
            "trackers": [],
            "sample_rollouts": 0,
            **run,
        },
    }
    return write_config(tmp_path / "train.toml", sections)


def _served_what_was_published(values: dict[str, float], step: int, *, moved: bool = False) -> None:
    """One step's metrics: the version its turns carried, and a gap that only the new weights explain."""
    assert values["rollout/policy_version"] == step - 1
    gap = values["rollout/logprob_gap_max"]
    assert gap < GAP, values
    if moved:  # the policy has moved: a server on older weights would show a gap near sqrt(2 kl)
        assert values["loss/kl_max"] > 1e-3, values
        assert gap < 0.1 * math.sqrt(2 * values["loss/kl_max"]), values


def _move(session: Any, seed: int) -> None:
    """Change the trained weights as a large update would: each adapter's B matrices, or, with full
    weights, the scale of the final norm (every logit then moves)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for role in session.config.train.roles:
            for name, parameter in session.modules.unwrapped(role).named_parameters():
                if f"lora_B.{role}." in name:
                    parameter.add_(torch.randn(parameter.shape, generator=generator) * 0.05)
                elif name == "model.norm.weight":
                    parameter.mul_(1.2)


def _models(url: str) -> dict[str, str]:
    """``/v1/models`` as ``{name: root}``."""
    with urllib.request.urlopen(f"{url}/models", timeout=30) as response:
        return {card["id"]: card["root"] for card in json.load(response)["data"]}


# -- the trainer launches its server ---------------------------------------------------------------


def test_a_two_module_lora_run_on_a_server_it_launches_serves_each_steps_adapters(tmp_path: Path) -> None:
    launch = {"python": vllm_python(), "count": 1, "args": list(SERVE_ARGS), "env": _server_env()}
    config = load_train_config(_train_toml(tmp_path, {"launch": launch}, max_steps=3))
    session = trainer.start_session(config)
    try:
        for step in (1, 2, 3):
            _served_what_was_published(trainer.train_step(session), step, moved=step > 1)
            _move(session, step)
        fleet = session.backend.fleet
        assert fleet is not None and len(fleet.live()) == 1
        served = _models(fleet.live()[0])
    finally:
        trainer.close_session(session)

    published = tmp_path / "run" / "served" / "v000002"  # the weights step 3 rolled out with
    assert served["planner"] == str(published / "planner")
    assert served["verifier"] == str(published / "verifier")  # two adapters on one server
    log = (tmp_path / "run" / "servers" / "vllm-0.log").read_text()
    assert "watchdog: stopped the server" in log  # the run's end stopped it


# -- two servers started once for the rest -------------------------------------------------------------


@pytest.fixture(scope="module")
def untied(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SmolLM2 with an output head of its own: the full-weight test trains it, every test's servers serve it
    (an adapter trained on the tied original computes the same numbers on it)."""
    return untied_copy(smollm2_folder(), tmp_path_factory.mktemp("smollm2-untied"))


@pytest.fixture(scope="module")
def servers(untied: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerFleet]:
    spec = ServerSpec(
        python=vllm_python(),
        model=str(untied),
        count=2,
        extra_args=("--max-lora-rank", "8", "--max-loras", "2", "--dtype", "float32", *SERVE_ARGS),
        env={**_server_env(), **DEV_MODE},  # the full-weight test reloads weights through dev routes
        startup_s=900,
        served_name="smollm2",
    )
    with ServerFleet(spec, tmp_path_factory.mktemp("vllm-fleet")) as fleet:
        yield fleet


def test_two_training_processes_share_two_servers(servers: ServerFleet, tmp_path: Path) -> None:
    """``torchrun`` with two gloo processes: process 0 publishes, process 1 checks the servers hold it."""
    path = _train_toml(tmp_path, {"urls": list(servers.urls), "min_servers": 2}, max_steps=2)
    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    done = subprocess.run(
        [*command, "-m", "agentflow_rl.flow_grpo", "train", str(path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )

    assert done.returncode == 0, done.stderr[-4000:]
    assert "Flow-GRPO on 2 process(es)" in done.stdout
    rows = [row for row in read_metrics(tmp_path / "run") if "rollout/policy_version" in row]
    assert [row["step"] for row in rows] == [1, 2]
    for row in rows:
        _served_what_was_published(row, row["step"])
    for url in servers.urls:  # both servers hold the version step 2 rolled out with
        assert _models(url)["planner"] == str(tmp_path / "run" / "served" / "v000001" / "planner")


def test_a_full_weight_run_reloads_the_servers_weights_each_step(
    servers: ServerFleet, untied: Path, tmp_path: Path
) -> None:
    url = servers.urls[1]
    fleet = {"urls": [url]}
    path = _train_toml(tmp_path, fleet, two_modules=False, lora=False, source=str(untied), max_steps=2)
    session = trainer.start_session(load_train_config(path))
    try:
        for step in (1, 2):
            _served_what_was_published(trainer.train_step(session), step, moved=step > 1)
            _move(session, step)
    finally:
        trainer.close_session(session)

    with urllib.request.urlopen(url.removesuffix("/v1") + "/weight_info", timeout=30) as response:
        assert json.load(response)["weight_version"] == "1"
    assert (tmp_path / "run" / "served" / "v000001" / "planner" / "model.safetensors").is_file()


def _running(url: str) -> float:
    """Requests the server is decoding now, from its Prometheus ``/metrics``."""
    with urllib.request.urlopen(url.removesuffix("/v1") + "/metrics", timeout=10) as response:
        lines = response.read().decode().splitlines()
    return sum(float(line.rsplit(" ", 1)[1]) for line in lines if line.startswith("vllm:num_requests_running"))


def test_a_server_killed_mid_step_is_dropped_and_the_step_completes_on_the_other(
    servers: ServerFleet, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    killed, kept = servers.urls
    path = _train_toml(tmp_path, {"urls": [killed, kept]}, two_modules=False, group=4, max_steps=3)
    session = trainer.start_session(load_train_config(path))

    def kill_once_busy() -> None:
        wait_until(lambda: _running(killed) > 0, timeout_s=900, what="requests on the first server")
        servers.kill(0)

    killer = threading.Thread(target=kill_once_busy, daemon=True)
    try:
        killer.start()
        first = trainer.train_step(session)
        killer.join(timeout=60)
        fleet = session.backend.fleet
        assert fleet is not None and fleet.live() == (kept,)
        second = trainer.train_step(session)  # published to the one left, rolled out there
        servers.kill(1)
        with pytest.raises(RolloutBackendError) as none_left:
            trainer.train_step(session)
    finally:
        trainer.close_session(session)

    assert first["rollout/policy_version"] == 0 and second["rollout/policy_version"] == 1
    assert first["module/planner/turns"] > 0 and second["module/planner/turns"] > 0
    [dropped] = [r.getMessage() for r in caplog.records if r.name == LOGGER and killed in r.getMessage()]
    assert dropped.startswith(f"rollout fleet: dropped {killed}: ")
    message = str(none_left.value)
    assert "\n" not in message and "0 of 2 endpoints answer, fewer than the 1 required" in message
