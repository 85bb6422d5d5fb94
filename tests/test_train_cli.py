"""``agentflow train CONFIG`` as a user runs it."""

from __future__ import annotations

import json
from pathlib import Path

from agentflow_rl.flow_grpo.cli import bundled_config
from tests.test_cli import agentflow


def test_train_runs_one_step_and_writes_metrics(tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = agentflow(
        "train",
        str(bundled_config("synthetic.toml")),
        "--set",
        "run.max_steps=1",
        "--set",
        f"run.output_dir={out}",
        cwd=tmp_path,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "1 steps in" in result.stdout
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert lines and all(isinstance(json.loads(line), dict) for line in lines)


def test_bad_train_config_is_one_line(tmp_path: Path) -> None:
    config = tmp_path / "train.toml"
    config.write_text("[run]\nmax_steps = 'many'\n")
    result = agentflow("train", str(config), cwd=tmp_path)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "max_steps" in result.stderr
