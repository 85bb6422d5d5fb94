from __future__ import annotations

from pathlib import Path

import pytest

from agentflow_core.config import EMBEDDED_ENGINE, Config, config_from_dict, load_config, with_overrides
from agentflow_core.engine import EngineConfig
from agentflow_core.errors import ConfigError

FULL = """
[agent]
tools = ["base_generator"]
max_steps = 3
max_time_s = 60

[engines]
default = "openai:gpt-4o-mini"
planner = { model = "openai:Qwen/Qwen2.5-7B-Instruct", base_url = "http://127.0.0.1:8000/v1", temperature = 0.7 }
verifier = "litellm:dashscope/qwen2.5-7b-instruct"

[modules]
planner = "default"

[tools.base_generator]
engine = "openai:small"
max_tokens = 100
"""


def test_full_file_structures(tmp_path: Path) -> None:
    path = tmp_path / "agentflow.toml"
    path.write_text(FULL)
    config = load_config(path)
    assert config.agent.max_steps == 3
    assert config.engines.for_module("planner").base_url == "http://127.0.0.1:8000/v1"
    assert config.engines.for_module("planner").temperature == 0.7
    assert config.engines.for_module("executor").model == "openai:gpt-4o-mini"
    assert config.engines.for_module("verifier").provider == "litellm"
    assert config.tool_engine("base_generator").model == "openai:small"
    assert config.tool_settings("base_generator") == {"max_tokens": 100}


def test_nothing_configured_means_embedded_model_everywhere() -> None:
    config = Config()
    for role in ("planner", "executor", "verifier", "generator"):
        assert config.engines.for_module(role).model == EMBEDDED_ENGINE
    assert config.tool_engine("base_generator").model == EMBEDDED_ENGINE


def test_tool_engine_defaults_to_generator_engine() -> None:
    config = config_from_dict({"engines": {"default": "openai:a", "generator": "openai:g"}})
    assert config.tool_engine("base_generator").model == "openai:g"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"agent": {"bogus": 1}}, "agent: extra fields found (bogus)"),
        ({"agent": {"max_steps": "3"}}, "agent.max_steps: expected an integer"),
        ({"agent": {"max_steps": 2.5}}, "agent.max_steps: expected an integer"),
        ({"agent": {"max_steps": 0}}, "'max_steps' must be >= 1"),
        ({"agent": {"tools": "base_generator"}}, "agent.tools: expected a list of strings"),
        ({"agent": {"direct_answer": "yes"}}, "agent.direct_answer: expected true or false"),
        ({"engines": {"planner": "gpt4"}}, "engines.planner: engine 'gpt4' is not of the form provider:model"),
        ({"engines": {"planner": {"model": "openai:x", "nope": 1}}}, "engines.planner: extra fields found (nope)"),
        ({"engines": {"planner": {"base_url": "http://x"}}}, "engines.planner"),
        ({"engines": {"wizard": "openai:x"}}, "engines: extra fields found (wizard)"),
        ({"tools": {"base_generator": 3}}, "a tool's settings are a table"),
        ({"unknown_section": 3}, "unknown_section: expected a table"),
        # Nonsense limits are refused here, not discovered mid-solve (#33).
        ({"engines": {"planner": {"model": "openai:x", "timeout_s": 0}}}, "engines.planner: 'timeout_s' must be > 0"),
        ({"engines": {"planner": {"model": "openai:x", "timeout_s": -3}}}, "'timeout_s' must be > 0"),
        ({"engines": {"planner": {"model": "openai:x", "timeout_s": "5"}}}, "planner.timeout_s: expected a number"),
        ({"engines": {"default": {"model": "openai:x", "timeout_s": float("inf")}}}, "expected a finite number"),
        ({"engines": {"planner": {"model": "openai:x", "max_tokens": 0}}}, "'max_tokens' must be >= 1"),
        ({"engines": {"planner": {"model": "openai:x", "max_tokens": -100}}}, "'max_tokens' must be >= 1"),
        ({"engines": {"planner": {"model": "openai:x", "temperature": -0.5}}}, "'temperature' must be >= 0"),
        ({"engines": {"planner": {"model": "openai:x", "temperature": 7}}}, "'temperature' must be <= 5"),
        ({"engines": {"planner": {"model": "openai:x", "temperature": float("nan")}}}, "expected a finite number"),
        ({"engines": {"planner": {"model": "openai:x", "max_attempts": 0}}}, "'max_attempts' must be >= 1"),
        ({"tools": {"base_generator": {"engine": {"model": "openai:x", "timeout_s": 0}}}}, "'timeout_s' must be > 0"),
        ({"agent": {"max_time_s": -1}}, "'max_time_s' must be > 0"),
        ({"agent": {"max_time_s": float("nan")}}, "agent.max_time_s: expected a finite number"),
        ({"agent": {"max_tokens": 0}}, "'max_tokens' must be >= 1"),
        ({"agent": {"tool_timeout_s": 0}}, "'tool_timeout_s' must be > 0"),
        ({"agent": {"answer_reserve_s": -1}}, "'answer_reserve_s' must be >= 0"),
        ({"agent": {"max_time_s": 5, "answer_reserve_s": 5}}, "answer_reserve_s (5) must be less than max_time_s (5)"),
        ({"agent": {"max_module_output_chars": 0}}, "'max_module_output_chars' must be >= 100"),
        ({"source": "elsewhere"}, "source: expected a table"),
    ],
)
def test_bad_config_names_key_and_file(data: dict, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        config_from_dict(data, source="my.toml")
    message = str(info.value)
    assert message.startswith("my.toml: ")
    assert expected in message
    assert "\n" not in message


def test_malformed_toml_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[agent\nmax_steps = ")
    with pytest.raises(ConfigError, match=r"bad\.toml: not valid TOML"):
        load_config(path)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"[agent]\nmax_steps = 3\n# caf\xe9 in Latin-1\n", "not UTF-8 text (byte 0xe9 at offset 27)"),
        (bytes(range(256)), "not UTF-8 text (byte 0x80 at offset 128)"),
        (b"\x00" * 64, "not valid TOML: Invalid statement (at line 1, column 1)"),
    ],
)
def test_an_undecodable_config_file_is_one_line_naming_it(tmp_path: Path, content: bytes, expected: str) -> None:
    path = tmp_path / "agentflow.toml"
    path.write_bytes(content)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value).removesuffix("; is it the right file?") == f"{path}: {expected}"


def test_a_directory_as_config_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r": cannot read: Is a directory$"):
        load_config(tmp_path)


def test_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "absent.toml")


def test_env_var_locates_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "x.toml"
    path.write_text("[agent]\nmax_steps = 2\n")
    monkeypatch.setenv("AGENTFLOW_CONFIG", str(path))
    assert load_config().agent.max_steps == 2


def test_flags_override_file() -> None:
    config = config_from_dict({"engines": {"default": "openai:a"}, "agent": {"max_steps": 4}})
    new = with_overrides(
        config,
        engines={"planner": "openai:p", "default": "openai:d"},
        tools=("base_generator",),
        tool_engines={"base_generator": "openai:t"},
        max_steps=2,
        base_url="http://127.0.0.1:1/v1",
    )
    assert new.engines.for_module("planner") == EngineConfig(model="openai:p", base_url="http://127.0.0.1:1/v1")
    assert new.engines.for_module("executor").model == "openai:d"
    assert new.tool_engine("base_generator").model == "openai:t"
    assert new.agent.max_steps == 2


def test_bad_flags_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="--planner-engine"):
        with_overrides(Config(), engines={"planner": "nocolon"})
    with pytest.raises(ConfigError, match="--max-steps must be at least 1"):
        with_overrides(Config(), max_steps=0)


def test_the_answer_reserve_defaults_to_a_fifth_of_the_budget_at_most_a_minute() -> None:
    assert config_from_dict({"agent": {"max_time_s": 5}}).agent.reserve_s == 1
    assert config_from_dict({"agent": {}}).agent.reserve_s == 60
    assert config_from_dict({"agent": {"max_time_s": 5, "answer_reserve_s": 0}}).agent.reserve_s == 0
