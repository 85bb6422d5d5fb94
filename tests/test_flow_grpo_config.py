"""Training config and data files: strict loading, errors that name the key and the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentflow_core import ConfigError
from agentflow_rl.flow_grpo.advantages import AdvantageMode
from agentflow_rl.flow_grpo.config import TaskKind, load_train_config
from agentflow_rl.flow_grpo.loss import LossType
from agentflow_rl.flow_grpo.tasks.records import RecordStream, TrainRecord, bundled_sample, load_records
from agentflow_rl.flow_grpo.testing import write_config

CONFIGS = Path(__file__).resolve().parents[1] / "agentflow_rl" / "flow_grpo" / "configs"


@pytest.mark.parametrize("name", sorted(p.name for p in CONFIGS.glob("*.toml")))
def test_the_example_configs_load(name: str) -> None:
    config = load_train_config(CONFIGS / name)
    assert config.loss.clip_low == 0.2 and config.loss.clip_high == 0.3
    assert config.loss.kl_coef in (0.0, 0.001)  # the paper's, or none where a config matches TRL's default
    if config.task.kind is TaskKind.RECORDS:
        assert config.task.train_file is not None and Path(config.task.train_file).is_file()


def test_defaults_are_the_papers_hyper_parameters(tmp_path: Path) -> None:
    config = load_train_config(write_config(tmp_path / "t.toml", {}))
    assert (config.optim.lr, config.rollout.group_size, config.rollout.questions_per_step) == (1e-6, 8, 32)
    assert (config.rollout.max_turns, config.rollout.temperature, config.rollout.eval_temperature) == (3, 0.7, 0.0)
    assert (config.loss.type, config.advantage.mode) == (LossType.FLOW_GRPO, AdvantageMode.TRAJECTORY)


@pytest.mark.parametrize(
    ("sections", "message"),
    [
        ({"loss": {"type": "ppo"}}, r"t\.toml: loss\.type: 'ppo' is not a valid LossType"),
        ({"optim": {"lr": "fast"}}, r"t\.toml: optim\.lr: expected a number"),
        ({"rollout": {"group_size": 1}}, r"t\.toml: rollout: 'group_size' must be >= 2"),
        ({"loss": {"failed_group_entropy": -0.1}}, r"t\.toml: loss: 'failed_group_entropy' must be >= 0"),
        ({"run": {"max_step": 3}}, r"t\.toml: run: extra fields found \(max_step\)"),
        ({"task": {"kind": "records"}, "policy": {"source": "hf:smollm2"}}, r"needs task\.train_file"),
        ({"task": {"kind": "records", "train_file": "x.jsonl"}}, r"only knows the synthetic task's words"),
    ],
)
def test_bad_configs_fail_at_load_naming_file_and_key(tmp_path: Path, sections: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_train_config(write_config(tmp_path / "t.toml", sections))


def test_a_training_config_that_cannot_be_read_is_one_line_naming_it(tmp_path: Path) -> None:
    """Read as the core reads agentflow.toml: a folder given as the file is an error, not a traceback."""
    with pytest.raises(ConfigError, match=r"training config .*nope\.toml does not exist"):
        load_train_config(tmp_path / "nope.toml")
    (tmp_path / "bad.toml").write_text("[run\n")
    with pytest.raises(ConfigError, match=r"bad\.toml: not valid TOML"):
        load_train_config(tmp_path / "bad.toml")
    with pytest.raises(ConfigError, match=r": cannot read: Is a directory"):
        load_train_config(tmp_path)


def test_input_files_are_relative_to_the_config_and_overrides_apply(tmp_path: Path) -> None:
    path = write_config(
        tmp_path / "t.toml", {"task": {"kind": "records", "train_file": "q.jsonl"}, "policy": {"source": "hf:smollm2"}}
    )
    config = load_train_config(path, {"run.max_steps": 7})
    assert config.task.train_file == str(tmp_path / "q.jsonl") and config.run.max_steps == 7


def test_records_accept_the_usual_field_names(tmp_path: Path) -> None:
    path = tmp_path / "q.jsonl"
    path.write_text('{"question": "a?", "answer": 4}\n\n{"query": "b?", "answers": ["x", "y"], "id": "b"}\n')
    assert load_records(path) == [TrainRecord("1", "a?", ("4",)), TrainRecord("b", "b?", ("x", "y"))]
    path.write_text('{"question": "a?"}\n')
    with pytest.raises(ConfigError, match=r"q\.jsonl:1: no gold answer"):
        load_records(path)


def test_the_bundled_sample_loads() -> None:
    records = load_records(bundled_sample())
    assert len(records) >= 20 and all(r.answers for r in records)


def test_a_restored_stream_continues_with_the_same_questions() -> None:
    records = [TrainRecord(str(i), f"q{i}", ("a",)) for i in range(5)]
    stream = RecordStream(records, seed=3)
    stream.next_batch(7)  # into the second epoch
    state = stream.state_dict()
    expected = stream.next_batch(6)
    again = RecordStream(records, seed=3)
    again.load_state_dict(state)
    assert again.next_batch(6) == expected
