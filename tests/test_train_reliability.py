"""Training runs that are killed, damaged, starved of disk or resumed with other settings (issue 33, item 4).

Real runs of the tiny policy, through the real entry points (``agentflow train`` and ``python -m
agentflow_rl.flow_grpo train``) in subprocesses: checkpoints cut short or garbled byte-wise, a run
frozen with SIGSTOP while it writes a checkpoint and then killed with SIGKILL, a file-size limit
and ``/dev/full`` for a full disk. ``docs/reliability.md`` ("Training runs") states what they hold.
"""

from __future__ import annotations

import errno
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from agentflow_core.testing import wait_until

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("accelerate")

from agentflow_rl.flow_grpo import trainer  # noqa: E402
from agentflow_rl.flow_grpo.config import load_train_config  # noqa: E402
from agentflow_rl.flow_grpo.run.checkpoint import (  # noqa: E402
    checkpoint_folders,
    checkpoint_path,
    is_complete,
    step_of,
)
from agentflow_rl.flow_grpo.run.kept_rollouts import kept_path, kept_steps  # noqa: E402
from agentflow_rl.flow_grpo.run.manifest import COMPLETE, damage, read_manifest, seal  # noqa: E402
from agentflow_rl.flow_grpo.run.storage import cause  # noqa: E402
from agentflow_rl.flow_grpo.testing import write_config  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
#: Rollouts each step keeps in samples/.
KEPT = 2
ENTRY_POINTS = {
    "agentflow": [sys.executable, "-m", "agentflow_core", "train"],
    "module": [sys.executable, "-m", "agentflow_rl.flow_grpo", "train"],
}


def _config(folder: Path, **run: Any) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    settings = {"eval_every": 0, "checkpoint_every": 1, "keep_checkpoints": 5, "trackers": [], **run}
    return write_config(
        folder / "train.toml",
        {
            "rollout": {"group_size": 4, "questions_per_step": 4, "temperature": 1.0, "max_new_tokens": 8},
            "optim": {"lr": 1e-2, "micro_batch_turns": 16},
            "loss": {"kl_coef": 0.001},
            "run": {"output_dir": str(folder / "run"), "sample_rollouts": KEPT, **settings},
        },
    )


def _command(entry: str, config: Path, *sets: str) -> list[str]:
    return [*ENTRY_POINTS[entry], str(config), *[arg for item in sets for arg in ("--set", item)]]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AGENTFLOW_", "OPENAI_", "HF_"))}
    return {**env, "PYTHONPATH": str(ROOT)}


def _train(entry: str, config: Path, *sets: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        _command(entry, config, *sets),
        cwd=config.parent,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        **kwargs,
    )


def _warnings(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("warning:")]


def _error(result: subprocess.CompletedProcess[str]) -> str:
    """The run failed with one ``Error:`` line and no traceback; that line."""
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and result.stderr.rstrip().endswith(errors[0]), result.stderr
    return errors[0]


def _logged_steps(run: Path) -> list[int]:
    """The step of every training row of metrics.jsonl, in file order; every line must be a whole row."""
    raw = (run / "metrics.jsonl").read_bytes()
    assert raw.endswith(b"\n")
    rows = [json.loads(line) for line in raw.splitlines()]
    return [row["step"] for row in rows if "train/reward" in row]


def _kept_lines(run: Path, step: int) -> int:
    return len(kept_path(run, step).read_text(encoding="utf-8").splitlines())


def _assert_whole(run: Path, steps: list[int]) -> None:
    """The run's checkpoints are exactly ``steps``, each sealed and whole."""
    folders = checkpoint_folders(run)
    assert [step_of(p) for p in folders] == steps
    assert all(is_complete(p) and damage(p) is None for p in folders)


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run of three steps with a checkpoint after each, to copy and damage."""
    folder = tmp_path_factory.mktemp("finished")
    trainer.train(load_train_config(_config(folder, max_steps=3)))
    return folder / "run"


@pytest.fixture
def copied(finished: Path, tmp_path: Path) -> Path:
    """This test's own copy of the finished run; its config is ``tmp_path / "train.toml"``."""
    _config(tmp_path)
    shutil.copytree(finished, tmp_path / "run")
    return tmp_path / "run"


# -- a damaged checkpoint ------------------------------------------------------------------------


def _truncate(path: Path) -> None:
    os.truncate(path, path.stat().st_size // 3)


def _garble(path: Path, at: int = 8) -> None:
    """Overwrite bytes in place: the size stays, the content does not (a safetensors header at 8)."""
    with path.open("r+b") as raw:
        raw.seek(at)
        raw.write(b'{"garbled": [1, 2')


DAMAGES = {
    "weights cut short": ("agentflow", "model.safetensors", _truncate, "model.safetensors has "),
    "weights header garbled": ("module", "model.safetensors", _garble, "model.safetensors is not what was written"),
    "optimizer missing": ("module", "optimizer.bin", Path.unlink, "optimizer.bin: No such file or directory"),
    "RNG state garbled": ("agentflow", "random_states_0.pkl", lambda p: _garble(p, 200), "random_states_0.pkl is not"),
    "data position cut short": ("module", "custom_checkpoint_1.pkl", _truncate, "custom_checkpoint_1.pkl has "),
}


@pytest.mark.parametrize("damaged", DAMAGES, ids=list(DAMAGES))
def test_a_damaged_checkpoint_is_set_aside_and_the_run_resumes_from_the_one_before(copied: Path, damaged: str) -> None:
    entry, name, spoil, reason = DAMAGES[damaged]
    spoil(checkpoint_path(copied, 3) / name)

    result = _train(entry, copied.parent / "train.toml", "run.max_steps=4")

    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    warned = _warnings(result)
    assert len(warned) == 1, result.stderr
    assert warned[0].startswith(f"warning: checkpoint {checkpoint_path(copied, 3)} is damaged (")
    assert reason in warned[0] and warned[0].endswith("set aside as step-0000003.damaged; trying step-0000002")
    assert f"resumed from {checkpoint_path(copied, 2)} at step 2" in result.stdout
    assert _logged_steps(copied) == [1, 2, 3, 4]  # step 3 once: the row of the lost one is gone
    assert _kept_lines(copied, 3) == KEPT
    _assert_whole(copied, [1, 2, 3, 4])
    assert (copied / "checkpoints" / "step-0000003.damaged" / COMPLETE).is_file()  # kept to look at


def test_with_every_checkpoint_damaged_the_run_starts_again_from_step_0(copied: Path) -> None:
    for step in (1, 2, 3):
        _truncate(checkpoint_path(copied, step) / "model.safetensors")

    result = _train("module", copied.parent / "train.toml", "run.max_steps=2")

    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    warned = _warnings(result)
    assert [line.split(" is damaged")[0] for line in warned] == [
        f"warning: checkpoint {checkpoint_path(copied, step)}" for step in (3, 2, 1)
    ]
    assert warned[-1].endswith("no checkpoint left: starting from step 0")
    assert "resumed from" not in result.stdout
    assert _logged_steps(copied) == [1, 2]  # the lost run's rows are gone with its weights
    assert kept_steps(copied) == [1, 2]
    _assert_whole(copied, [1, 2])


def test_a_torn_last_metrics_row_is_dropped_on_resume(copied: Path) -> None:
    with (copied / "metrics.jsonl").open("ab") as out:
        out.write(b'{"step": 4, "train/rew')  # what a kill in the middle of a write leaves

    result = _train("module", copied.parent / "train.toml", "run.max_steps=4")

    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    assert _logged_steps(copied) == [1, 2, 3, 4]


# -- a kill in the middle of a checkpoint --------------------------------------------------------


def _freeze_inside_a_checkpoint(process: subprocess.Popen[str], run: Path) -> Path:
    """Stop ``process`` (SIGSTOP) at a moment its newest checkpoint folder exists but is not sealed."""
    caught: list[Path] = []

    def frozen_while_writing() -> bool:
        assert process.poll() is None, "the training run ended"
        unsealed = [p for p in checkpoint_folders(run) if step_of(p) >= 2 and not is_complete(p)]
        if not unsealed:
            return False
        process.send_signal(signal.SIGSTOP)
        if is_complete(unsealed[-1]):  # sealed between the look and the stop: catch the next one
            process.send_signal(signal.SIGCONT)
            return False
        caught.append(unsealed[-1])
        return True

    wait_until(frozen_while_writing, timeout_s=240, interval_s=0.001, what="a checkpoint being written")
    return caught[0]


def test_a_run_killed_while_checkpointing_resumes_from_the_one_before_and_logs_each_step_once(
    tmp_path: Path,
) -> None:
    config = _config(tmp_path, max_steps=1000, keep_checkpoints=3)
    run = tmp_path / "run"
    process = subprocess.Popen(
        _command("module", config),
        cwd=tmp_path,
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        unsealed = _freeze_inside_a_checkpoint(process, run)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    killed_at = step_of(unsealed)
    assert _logged_steps(run)[-1] == killed_at  # logged, then killed before its checkpoint was sealed

    result = _train("agentflow", config, f"run.max_steps={killed_at + 1}")

    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    assert not _warnings(result)  # an unsealed folder is no damage: it was never a checkpoint
    assert f"resumed from {checkpoint_path(run, killed_at - 1)} at step {killed_at - 1}" in result.stdout
    assert _logged_steps(run) == list(range(1, killed_at + 2))
    assert _kept_lines(run, killed_at) == KEPT
    _assert_whole(run, list(range(1, killed_at + 2))[-3:])


# -- a full disk ---------------------------------------------------------------------------------


def test_a_full_disk_while_checkpointing_is_one_line_and_the_checkpoint_before_stays_usable(copied: Path) -> None:
    config = copied.parent / "train.toml"
    optimizer = (checkpoint_path(copied, 3) / "optimizer.bin").stat().st_size
    limit = optimizer // 2  # the weights fit under it, the optimizer state does not

    def file_size_limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))

    full = _train("module", config, "run.max_steps=4", preexec_fn=file_size_limit)

    error = _error(full)
    assert error.startswith(f"Error: cannot write {checkpoint_path(copied, 4) / 'optimizer.bin'}: File too large")
    assert error.endswith(
        "step-0000003 is still the last checkpoint, and the same command resumes from it once there is room"
    )
    _assert_whole(copied, [1, 2, 3])  # the half-written step 4 is gone, step 3 untouched

    again = _train("agentflow", config, "run.max_steps=4")
    assert again.returncode == 0, again.stderr
    assert f"resumed from {checkpoint_path(copied, 3)}" in again.stdout
    assert _logged_steps(copied) == [1, 2, 3, 4]
    _assert_whole(copied, [1, 2, 3, 4])


def test_a_full_disk_while_logging_names_metrics_jsonl(copied: Path) -> None:
    metrics = copied / "metrics.jsonl"
    metrics.unlink()
    metrics.symlink_to("/dev/full")  # every write fails with ENOSPC, as on a full disk

    result = _train("agentflow", copied.parent / "train.toml", "run.max_steps=4")

    assert _error(result) == (
        f"Error: cannot write {metrics}: No space left on device; "
        "the same command resumes from the last checkpoint once there is room"
    )
    _assert_whole(copied, [1, 2, 3])


def test_a_failed_write_is_put_down_to_the_machine_only_when_the_machine_says_so(tmp_path: Path) -> None:
    assert cause(OSError(errno.ENOSPC, "No space left on device"), tmp_path) == "No space left on device"
    safetensors = RuntimeError("Error while serializing: I/O error: Disk quota exceeded (os error 122)")
    assert cause(safetensors, tmp_path) == "Disk quota exceeded"
    assert cause(OSError(errno.EINVAL, "Invalid argument"), tmp_path) is None  # a bug, not the disk
    assert cause(RuntimeError("unexpected pos 576 vs 534"), tmp_path) is None  # a disk with room


# -- other settings ------------------------------------------------------------------------------


def test_resuming_with_another_model_or_other_modules_is_refused_in_one_line(copied: Path) -> None:
    before = (copied / "metrics.jsonl").read_bytes()
    result = _train(
        "module",
        copied.parent / "train.toml",
        "run.max_steps=4",
        "policy.tiny.layers=3",
        'train.modules=["planner", "verifier"]',
    )

    assert _error(result) == (
        f"Error: {checkpoint_path(copied, 3)} was made with other settings: policy.tiny.layers 2 (now 3); "
        "train.modules planner (now planner,verifier); resume with the settings it was made with, or set "
        "run.resume = false (or another run.output_dir) to start afresh"
    )
    assert (copied / "metrics.jsonl").read_bytes() == before
    _assert_whole(copied, [1, 2, 3])


def test_a_resumed_run_takes_the_optimizer_settings_it_is_given(copied: Path) -> None:
    config = load_train_config(copied.parent / "train.toml", {"optim.lr": 0.5, "optim.weight_decay": 0.1})
    session = trainer.start_session(config)
    try:
        assert session.progress.step == 3
        assert session.optimizer.state_dict()["state"]  # Adam's moments came back...
        assert [(g["lr"], g["weight_decay"]) for g in session.optimizer.param_groups] == [(0.5, 0.1)]  # ...not its lr
    finally:
        trainer.close_session(session)


def test_resume_false_starts_afresh_in_the_same_folder(copied: Path) -> None:
    config = load_train_config(copied.parent / "train.toml", {"run.resume": False, "run.max_steps": 2})
    result = trainer.train(config)

    assert result.steps == 2
    assert _logged_steps(copied) == [1, 2]
    assert kept_steps(copied) == [1, 2]
    _assert_whole(copied, [1, 2])  # the earlier run's step 3 would otherwise be "the newest" on resume


# -- what a checkpoint is made of ----------------------------------------------------------------


def test_a_checkpoint_is_on_disk_before_its_marker_and_its_marker_before_it_counts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[tuple[str, str]] = []
    fsync, replace = os.fsync, os.replace

    def recording_fsync(fd: int) -> None:
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        fsync(fd)

    def recording_replace(source: Any, target: Any) -> None:
        events.append(("replace", os.fspath(target)))
        replace(source, target)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    monkeypatch.setattr(os, "replace", recording_replace)
    trainer.train(load_train_config(_config(tmp_path, max_steps=1)))

    folder = checkpoint_path(tmp_path / "run", 1)
    sealed = events.index(("replace", str(folder / COMPLETE)))
    synced = {path for kind, path in events[:sealed] if kind == "fsync"}
    files = {str(folder / name) for name in read_manifest(folder).files}
    assert files and files <= synced  # every file's bytes, and the rows of the steps it holds, then
    assert {str(tmp_path / "run" / "metrics.jsonl"), str(kept_path(tmp_path / "run", 1))} <= synced
    assert {str(folder), str(folder.parent), str(tmp_path / "run")} <= synced  # the names of the new entries
    assert ("fsync", str(folder)) in events[sealed:]  # and the marker's own rename


def test_sizes_are_always_checked_and_checksums_when_recorded(tmp_path: Path) -> None:
    for checksums in (True, False):
        folder = tmp_path / f"step-000000{int(checksums)}"
        (folder / "sub").mkdir(parents=True)
        (folder / "weights.bin").write_bytes(bytes(range(256)) * 64)
        (folder / "sub" / "state.pkl").write_bytes(b"state")
        seal(folder, 1, {"policy.source": "tiny"}, checksums=checksums)
        assert damage(folder) is None and read_manifest(folder).settings == {"policy.source": "tiny"}

        _garble(folder / "weights.bin", at=100)
        assert damage(folder) == ("weights.bin is not what was written (its SHA-256 differs)" if checksums else None)
        (folder / "sub" / "state.pkl").write_bytes(b"stat")
        assert damage(folder) == "sub/state.pkl has 4 bytes, 5 were written"

    legacy = tmp_path / "legacy"
    legacy.mkdir()
    (legacy / COMPLETE).write_text("3\n")  # a marker from before manifests: trusted as it was
    assert damage(legacy) is None
    (legacy / COMPLETE).write_text('{"step": 3, "fil')
    assert damage(legacy).startswith("its COMPLETE marker is not a manifest")
