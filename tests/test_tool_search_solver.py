"""Each search tool inside the real loop: a scripted planner picks it and its observation reaches memory.

Modules run on one scripted model ("m"); web_search's own LLM is a second one ("m-tool"); the
search APIs and the web page are loopback servers.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agentflow_core import ConfigError, Solver, StopReason, ToolErrorKind, ToolFailure, ToolSuccess, Trajectory
from agentflow_core.config import config_from_dict
from agentflow_core.registry import Registry
from agentflow_core.testing import Reply, ScriptedOpenAIServer, scripted_json
from tests.helpers import engine_table
from tests.search_payloads import GOOGLE_OK, wikipedia_handler
from tests.search_servers import LoopbackServer, html_answer, json_answer


@pytest.fixture
def llm() -> Iterator[ScriptedOpenAIServer]:
    with ScriptedOpenAIServer() as server:
        yield server


@pytest.fixture
def site() -> Iterator[LoopbackServer]:
    with LoopbackServer() as server:
        yield server


def script_one_turn(llm: ScriptedOpenAIServer, tool: str, arguments: dict[str, Any], answer: str) -> None:
    """One turn; a tool that takes a ``query`` gets the sub-goal as it, the others ask the executor."""
    request = list(arguments) == ["query"]
    plan = scripted_json({"tool": tool, "question": arguments["query"] if request else "look it up"})
    command = [] if request else [scripted_json({"arguments": arguments})]
    verdict = scripted_json({"analysis": "the observation answers it", "decision": "STOP"})
    llm.enqueue("m", Reply("The question needs a lookup."), plan, *command, verdict, Reply(answer))


async def solve(llm: ScriptedOpenAIServer, registry: Registry, tool: str, settings: dict[str, Any]) -> Trajectory:
    config = config_from_dict(
        {"agent": {"tools": [tool]}, "engines": {"default": engine_table(llm, "m")}, "tools": {tool: settings}}
    )
    async with Solver(config, registry=registry) as solver:
        return await solver.asolve("a question")


def observation(trajectory: Trajectory, llm: ScriptedOpenAIServer) -> str:
    """The tool's output, after checking that it reached the generator's prompt."""
    assert trajectory.error is None and trajectory.stop_reason is StopReason.VERIFIER_STOP
    [step] = trajectory.steps
    assert isinstance(step.result, ToolSuccess)
    first_line = step.result.output.splitlines()[0]
    assert first_line in llm.requests_for("m")[-1].messages[-1]["content"]
    return step.result.output


@pytest.mark.parametrize("cx_variable", ["GOOGLE_CSE_ID", "GOOGLE_CX"])  # the README's name, and the old one
async def test_google_search(
    llm: ScriptedOpenAIServer,
    site: LoopbackServer,
    registry: Registry,
    monkeypatch: pytest.MonkeyPatch,
    cx_variable: str,
) -> None:
    for variable in ("GOOGLE_CSE_ID", "GOOGLE_CX"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("GOOGLE_API_KEY", "k")
    monkeypatch.setenv(cx_variable, "engine-id-42")
    seen: list[str] = []

    def answer(request: Any) -> Any:
        seen.append(request.query.get("cx"))
        return json_answer(GOOGLE_OK)

    site.handler = answer
    script_one_turn(llm, "google_search", {"query": "barn owl"}, "Tyto alba")
    trajectory = await solve(llm, registry, "google_search", {"google_url": site.url("/customsearch/v1")})
    assert "1. Barn owl - Wikipedia" in observation(trajectory, llm)
    assert trajectory.answer == "Tyto alba"
    assert seen == ["engine-id-42"]


async def test_google_search_without_an_engine_id_names_the_documented_variable(
    llm: ScriptedOpenAIServer, registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in ("GOOGLE_CSE_ID", "GOOGLE_CX"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("GOOGLE_API_KEY", "k")
    script_one_turn(llm, "google_search", {"query": "barn owl"}, "no idea")
    trajectory = await solve(llm, registry, "google_search", {})
    [step] = trajectory.steps
    assert step.result == ToolFailure(
        ToolErrorKind.FAILED,
        "no Programmable Search Engine id (cx): set the environment variable GOOGLE_CSE_ID "
        "(the setting cx_env names it)",
        step.result.elapsed_s,
    )


async def test_wikipedia_search(llm: ScriptedOpenAIServer, site: LoopbackServer, registry: Registry) -> None:
    site.handler = wikipedia_handler
    script_one_turn(llm, "wikipedia_search", {"query": "barn owl diet"}, "voles")
    trajectory = await solve(llm, registry, "wikipedia_search", {"api_url": site.url("/w/api.php")})
    assert "voles, shrews and mice" in observation(trajectory, llm)


async def test_web_search(llm: ScriptedOpenAIServer, site: LoopbackServer, registry: Registry) -> None:
    site.handler = lambda request: html_answer("<html><body><p>The barn owl eats mostly voles.</p></body></html>")
    llm.set_responder("m-tool", lambda request: Reply("Mostly voles."))
    script_one_turn(llm, "web_search", {"url": site.url("/owl"), "question": "What does it eat?"}, "voles")
    settings = {"engine": engine_table(llm, "m-tool"), "allow_private_addresses": True}
    trajectory = await solve(llm, registry, "web_search", settings)
    assert observation(trajectory, llm).startswith("Answer: Mostly voles.\n")
    assert "The barn owl eats mostly voles." in llm.requests_for("m-tool")[0].messages[-1]["content"]
    assert trajectory.engines["tool:web_search"] == "openai:m-tool"


async def test_local_search(llm: ScriptedOpenAIServer, registry: Registry, tmp_path: Path) -> None:
    corpus = tmp_path / "c.jsonl"
    lines = [
        {"id": "1", "contents": '"Barn owl"\nThe barn owl hunts voles.'},
        {"id": "2", "contents": '"Heron"\nFish.'},
    ]
    corpus.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    plan = scripted_json({"tool": "local_search", "question": "barn owl"})
    verdict = scripted_json({"analysis": "the observation answers it", "decision": "STOP"})
    choice = scripted_json({"answer": "barn owl hunts voles"})  # chosen among the passage's spans, not written
    llm.enqueue("m", Reply("The question needs a lookup."), plan, verdict, choice)
    trajectory = await solve(llm, registry, "local_search", {"corpus": str(corpus)})
    assert "[1] Barn owl\nThe barn owl hunts voles." in observation(trajectory, llm)
    [step] = trajectory.steps
    assert step.result.candidates == ("barn owl hunts voles",)  # type: ignore[union-attr]
    assert trajectory.answer == "local_search found barn owl hunts voles.\n\nAnswer: barn owl hunts voles"
    assert "answers the question: barn owl hunts voles?" in llm.requests_for("m")[-1].messages[-1]["content"]


async def test_a_failing_search_is_a_visible_tool_error(llm: ScriptedOpenAIServer, registry: Registry) -> None:
    script_one_turn(llm, "google_search", {"query": "barn owl"}, "unknown")
    trajectory = await solve(llm, registry, "google_search", {"api_key_env": "NO_SUCH_KEY_VARIABLE_SET"})
    [step] = trajectory.steps
    assert "set the environment variable NO_SUCH_KEY_VARIABLE_SET" in step.result.error  # type: ignore[union-attr]
    assert trajectory.answer == "unknown"


def test_bad_settings_name_the_tool_and_key(registry: Registry) -> None:
    config = config_from_dict({"agent": {"tools": ["web_search"]}, "tools": {"web_search": {"ranker": "magic"}}})
    with pytest.raises(ConfigError, match=r"tools\.web_search: settings: ranker: "):
        Solver(config, registry=registry)
