"""The installed plugin: found through its entry point, and a whole solve on ``ollama:tiny``."""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path

import pytest
from ollama_server import OllamaReply, ScriptedOllamaServer

from agentflow_core import Solver, StopReason, ToolSuccess, load_config


def test_the_entry_point_names_the_plugin_module() -> None:
    found = [ep for ep in metadata.entry_points(group="agentflow") if ep.name == "ollama"]
    assert len(found) == 1, "install the plugin first: pip install -e plugins/agentflow-ollama"
    assert found[0].value == "agentflow_ollama.plugin"
    assert found[0].dist is not None and found[0].dist.name == "agentflow-ollama"


def test_a_solve_runs_every_module_on_ollama(
    tmp_path: Path, ollama: ScriptedOllamaServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AGENTFLOW_DISABLE_PLUGINS", raising=False)
    config = tmp_path / "agentflow.toml"
    config.write_text(f'[engines]\ndefault = {{ model = "ollama:tiny", base_url = "{ollama.base_url}" }}\n')
    ollama.enqueue(
        OllamaReply("Needs one fact."),  # planner: analysis
        OllamaReply(json.dumps({"tool": "base_generator", "question": "Who wrote Dune?"})),  # its query as it stands
        OllamaReply("Frank Herbert wrote Dune."),  # the base_generator tool, on the generator's engine
        OllamaReply(json.dumps({"analysis": "answered", "decision": "STOP"})),  # verifier
        OllamaReply("Frank Herbert"),  # generator
    )
    with Solver(load_config(config)) as solver:
        trajectory = solver.solve("Who wrote Dune?")
    assert trajectory.error is None and trajectory.stop_reason is StopReason.VERIFIER_STOP
    assert isinstance(trajectory.steps[0].result, ToolSuccess)
    assert trajectory.final_answer is not None and trajectory.final_answer.text == "Frank Herbert"
    assert set(trajectory.engines.values()) == {"ollama:tiny"}
    assert trajectory.usage.prompt_tokens == 7 * 4  # the modules' calls, counted from prompt_eval_count
    assert all(r.body["model"] == "tiny" and r.body["stream"] is False for r in ollama.requests)
    assert "format" in ollama.requests[1].body  # the planner's decision asked for structured output
