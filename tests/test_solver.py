"""The loop end to end over real HTTP: each module on its own model of a scripted server."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import attrs
import pytest

import agentflow_tools.plugin
from agentflow_core import ConfigError, PluginError, Solver, StopReason, ToolFailure, ToolSuccess, Trajectory
from agentflow_core.config import Config, ModulesConfig, config_from_dict, load_config, with_overrides
from agentflow_core.plugins import load_registry
from agentflow_core.records import ToolErrorKind
from agentflow_core.registry import Registry
from agentflow_core.serde import from_json, to_json
from agentflow_core.testing import RecordedRequest, Reply, ScriptedOpenAIServer, registry_with, scripted_json
from tests.helpers import BrokenModules, TestTools, config_for, engine_table

MODELS = {"planner": "m-plan", "executor": "m-exec", "verifier": "m-verify", "generator": "m-gen", "tool": "m-tool"}


@pytest.fixture
def server():
    with ScriptedOpenAIServer() as server:
        yield server


def step(tool: str = "base_generator", sub_goal: str = "What is 6 times 7?") -> Reply:
    return scripted_json({"tool": tool, "question": sub_goal})


def args(**arguments: object) -> Reply:
    return scripted_json({"arguments": arguments})


def verdict(decision: str) -> Reply:
    return scripted_json({"analysis": "looks fine", "decision": decision})


async def test_one_turn_each_module_on_its_own_model(server: ScriptedOpenAIServer) -> None:
    registry = registry_with(TestTools())
    server.enqueue("m-plan", Reply("Needs arithmetic; base_generator can do it."), step(), step("upper", "say hi"))
    server.enqueue("m-exec", args(text="hi"))
    server.enqueue("m-tool", Reply("The product is 42."))
    server.enqueue("m-verify", verdict("CONTINUE"), verdict("STOP"))
    server.enqueue("m-gen", scripted_json({"reasoning": "The tool multiplied them.", "answer": "42"}))
    config = config_for(server, tools=("base_generator", "upper"), **MODELS)
    async with Solver(config, registry=registry) as solver:
        trajectory = await solver.asolve("What is 6 times 7?")

    assert trajectory.error is None
    assert trajectory.stop_reason is StopReason.VERIFIER_STOP
    assert trajectory.answer == "The tool multiplied them.\n\nAnswer: 42"
    first, second = trajectory.steps
    assert first.decision.tool == "base_generator"
    # base_generator takes a request: the sub-goal is its query as it stands, with no executor call.
    assert first.tool_call.arguments == {"query": "What is 6 times 7?"} and first.tool_call.call is None
    assert first.result == ToolSuccess("The product is 42.", first.result.elapsed_s)
    assert second.tool_call.arguments == {"text": "hi"} and second.result.output == "HI"  # type: ignore[union-attr]
    assert [(c.role, c.purpose, c.engine) for c in trajectory.module_calls()] == [
        ("planner", "analyze", "openai:m-plan"),
        ("planner", "next_step", "openai:m-plan"),
        ("verifier", "check", "openai:m-verify"),
        ("planner", "next_step", "openai:m-plan"),
        ("executor", "command", "openai:m-exec"),
        ("verifier", "check", "openai:m-verify"),
        ("generator", "final_answer", "openai:m-gen"),
    ]
    assert all(c.parse_error is None for c in trajectory.module_calls())
    assert trajectory.engines["tool:base_generator"] == "openai:m-tool"
    # What the tool returned reaches the verifier and the generator.
    assert "The product is 42." in server.requests_for("m-verify")[0].messages[-1]["content"]
    assert "The product is 42." in server.requests_for("m-gen")[0].messages[-1]["content"]
    # Every module call went to its own model; the tool's call to the tool's model.
    assert [len(server.requests_for(m)) for m in MODELS.values()] == [3, 1, 2, 1, 1]
    assert from_json(to_json(trajectory), Trajectory) == trajectory


async def test_structured_calls_send_json_schemas(server: ScriptedOpenAIServer) -> None:
    server.enqueue("m-plan", Reply("analysis"), step("upper", "say q"))
    server.enqueue("m-exec", args(text="q"))
    server.enqueue("m-verify", verdict("STOP"))
    server.enqueue("m-gen", Reply("done"))
    config = config_for(server, tools=("base_generator", "upper"), **MODELS)
    async with Solver(config, registry=registry_with(TestTools())) as solver:
        await solver.asolve("q")

    analyze, next_step = server.requests_for("m-plan")
    assert analyze.response_format is None
    schema = next_step.response_format["json_schema"]["schema"]
    assert next_step.response_format["type"] == "json_schema"
    assert list(schema["properties"]) == ["tool", "question"]  # the choice first, constrained
    assert schema["properties"]["tool"]["enum"] == ["base_generator", "upper"]
    command = server.requests_for("m-exec")[0].response_format["json_schema"]["schema"]
    assert command["properties"]["arguments"]["required"] == ["text"]
    check = server.requests_for("m-verify")[0].response_format["json_schema"]["schema"]
    assert check["properties"]["decision"]["enum"] == ["STOP", "CONTINUE"]
    answer = server.requests_for("m-gen")[0].response_format["json_schema"]["schema"]
    assert list(answer["properties"]) == ["reasoning", "answer"]


async def test_tool_error_is_visible_and_the_loop_goes_on(server: ScriptedOpenAIServer) -> None:
    registry = load_registry(entry_points=False, extra=[agentflow_tools.plugin, TestTools()])
    server.enqueue(
        "m",
        Reply("analysis"),
        step("failing"),
        args(text="x"),
        verdict("CONTINUE"),
        step("upper", "shout hello"),
        args(text="hello"),
        verdict("STOP"),
        Reply("HELLO"),
    )
    config = config_for(server, tools=("failing", "upper"), default="m")
    async with Solver(config, registry=registry) as solver:
        trajectory = await solver.asolve("shout hello")

    first, second = trajectory.steps
    assert first.result == ToolFailure(ToolErrorKind.FAILED, "the backend said no (HTTP 503)", first.result.elapsed_s)
    assert second.result.output == "HELLO"  # type: ignore[union-attr]
    planner_turn_2 = server.requests_for("m")[4].messages[-1]["content"]
    assert "TOOL ERROR (failed): the backend said no (HTTP 503)" in planner_turn_2
    assert trajectory.answer == "HELLO"


async def test_garbage_from_the_model_is_survived(server: ScriptedOpenAIServer, registry: Registry) -> None:
    server.set_default_responder(lambda request: Reply("I am a tiny model and I like turtles."))
    config = config_for(server, agent={"max_steps": 2}, default="m")
    async with Solver(config, registry=registry) as solver:
        trajectory = await solver.asolve("What is the capital of France?")

    assert trajectory.stop_reason is StopReason.MAX_STEPS
    assert len(trajectory.steps) == 2
    for turn in trajectory.steps:
        assert turn.decision.tool == "base_generator"  # the only enabled tool, chosen as fallback
        assert turn.decision.call is not None and turn.decision.call.parse_error
        assert turn.tool_call.arguments == {"query": turn.decision.sub_goal}
        assert isinstance(turn.result, ToolSuccess)
        assert turn.verdict is not None and turn.verdict.call is not None and turn.verdict.call.parse_error
    assert trajectory.answer == "I am a tiny model and I like turtles."


async def test_unknown_tool_and_bad_arguments_become_tool_errors(server: ScriptedOpenAIServer) -> None:
    server.enqueue(
        "m",
        Reply("analysis"),
        step("upper", "say hi"),
        scripted_json({"arguments": {"q": 1}}),
        verdict("STOP"),
        Reply("no idea"),
    )
    config = config_for(server, tools=("upper",), default="m")
    async with Solver(config, registry=registry_with(TestTools())) as solver:
        trajectory = await solver.asolve("q")
    [only] = trajectory.steps
    assert isinstance(only.result, ToolFailure) and only.result.kind is ToolErrorKind.BAD_ARGUMENTS


async def test_time_limit_still_writes_an_answer(server: ScriptedOpenAIServer) -> None:
    registry = load_registry(entry_points=False, extra=[TestTools()])
    server.enqueue("m", Reply("analysis"), step("sleepy"), args(text="zzz"))
    server.enqueue("m-gen", Reply("ran out of time"))
    config = config_for(server, tools=("sleepy",), agent={"max_time_s": 1.0}, default="m", generator="m-gen")
    async with Solver(config, registry=registry) as solver:
        trajectory = await solver.asolve("q")
    assert trajectory.stop_reason is StopReason.MAX_TIME
    assert trajectory.answer == "ran out of time"
    assert trajectory.elapsed_s < 5


async def test_token_budget_stops_the_loop(server: ScriptedOpenAIServer, registry: Registry) -> None:
    big = {"prompt_tokens": 600, "completion_tokens": 10}
    server.enqueue(
        "m",
        Reply("analysis", **big),
        Reply(json.dumps({"tool": "base_generator", "question": "s"}), **big),
        Reply("tool says hi", **big),
        verdict("CONTINUE"),
        Reply("answer"),
    )
    config = config_for(server, agent={"max_tokens": 1000, "max_steps": 5}, default="m")
    async with Solver(config, registry=registry) as solver:
        trajectory = await solver.asolve("q")
    assert trajectory.stop_reason is StopReason.MAX_TOKENS
    assert len(trajectory.steps) == 1


async def test_engine_failure_ends_with_a_one_line_error(server: ScriptedOpenAIServer, registry: Registry) -> None:
    server.enqueue("m-plan", Reply(status=401, error_message="Incorrect API key provided"))
    server.enqueue("m-gen", Reply("fallback answer"))
    async with Solver(config_for(server, default="m-plan", generator="m-gen"), registry=registry) as solver:
        trajectory = await solver.asolve("q")
    assert trajectory.stop_reason is StopReason.ENGINE_ERROR
    assert trajectory.error is not None and "401" in trajectory.error and "m-plan" in trajectory.error
    assert "\n" not in trajectory.error
    assert trajectory.answer == "fallback answer"


def _echo_flow(request: RecordedRequest) -> Reply:
    """Answers every call of a one-turn flow, repeating the query so leaks between solves show."""
    prompt = request.messages[-1]["content"]
    found = re.search(r"^Question: (.*)$", prompt, re.M)
    query = found.group(1) if found else prompt
    name = (request.response_format or {}).get("json_schema", {}).get("name")
    if name == "next_step":
        return step(sub_goal=query)
    if name == "verification":
        return verdict("STOP")
    return Reply(f"about {query}")


async def test_concurrent_solves_have_separate_memory(server: ScriptedOpenAIServer, registry: Registry) -> None:
    server.set_default_responder(_echo_flow)
    async with Solver(config_for(server, default="m"), registry=registry) as solver:
        queries = [f"query number {i}" for i in range(8)]
        trajectories = await asyncio.gather(*(solver.asolve(q) for q in queries))
    for query, trajectory in zip(queries, trajectories, strict=True):
        assert len(trajectory.steps) == 1
        assert trajectory.steps[0].result.output == f"about {query}"  # type: ignore[union-attr]
        for call in trajectory.module_calls():
            others = [q for q in queries if q != query]
            text = json.dumps([m.content for m in call.messages])
            assert not any(f"{other}\\n" in text or f'{other}"' in text for other in others)


def test_two_solvers_in_one_process_share_nothing(server: ScriptedOpenAIServer, registry: Registry) -> None:
    server.set_default_responder(_echo_flow)
    one = Solver(config_for(server, default="m"), registry=registry)
    two = Solver(config_from_dict({"engines": {"default": engine_table(server, "other")}}), registry=registry)
    try:
        first = one.solve("alpha")
        second = two.solve("beta")
        again = one.solve("gamma")  # the sync wrapper reuses its loop, so connections survive
    finally:
        one.close()
        two.close()
    assert [len(t.steps) for t in (first, second, again)] == [1, 1, 1]
    assert {c.engine for c in second.module_calls()} == {"openai:other"}
    assert one.toolset is not two.toolset
    assert again.steps[0].result.output == "about gamma"  # type: ignore[union-attr]


def test_bad_tool_settings_name_file_tool_and_key(registry: Registry) -> None:
    config = config_from_dict({"tools": {"base_generator": {"max_tokens": "lots", "colour": 1}}}, source="a.toml")
    with pytest.raises(ConfigError) as info:
        Solver(config, registry=registry)
    assert str(info.value).startswith("a.toml: tools.base_generator: settings: ")
    assert "max_tokens: expected an integer" in str(info.value) and "colour" in str(info.value)


def broken(server: ScriptedOpenAIServer, **modules: str) -> tuple[Registry, Config]:
    config = config_for(server, default="m")
    return registry_with(BrokenModules()), attrs.evolve(config, modules=ModulesConfig(**modules))


async def test_a_module_that_raises_ends_the_loop_not_the_solve(server: ScriptedOpenAIServer) -> None:
    registry, config = broken(server, verifier="broken")
    server.enqueue("m", Reply("analysis"), step(), Reply("42"), Reply("It is 42."))
    async with Solver(config, registry=registry) as solver:
        trajectory = await solver.asolve("What is 6 times 7?")

    assert trajectory.stop_reason is StopReason.MODULE_ERROR
    assert trajectory.error == (
        "verifier module 'broken' (tests.helpers.BrokenModules) failed: IndexError: list index out of range "
        "(while reading the memory)"
    )
    [only] = trajectory.steps  # the turn the verifier broke on is kept, with its tool result
    assert only.result.output == "42" and only.verdict is None  # type: ignore[union-attr]
    assert trajectory.answer == "It is 42."  # the generator still wrote the answer
    assert from_json(to_json(trajectory), Trajectory) == trajectory


async def test_a_generator_that_raises_leaves_the_steps_and_says_so(server: ScriptedOpenAIServer) -> None:
    registry, config = broken(server, generator="broken")
    server.enqueue("m", Reply("analysis"), step(), Reply("tool"), verdict("STOP"))
    async with Solver(config, registry=registry) as solver:
        trajectory = await solver.asolve("q")
    assert trajectory.stop_reason is StopReason.MODULE_ERROR and trajectory.final_answer is None
    assert len(trajectory.steps) == 1
    assert trajectory.error == (
        "generator module 'broken' (tests.helpers.BrokenModules) failed: AttributeError: "
        "'NoneType' object has no attribute 'text'"
    )


def test_a_module_factory_that_raises_is_one_line_naming_it(server: ScriptedOpenAIServer) -> None:
    registry, config = broken(server, planner="unmakeable")
    with pytest.raises(PluginError) as info:
        Solver(config, registry=registry)
    assert str(info.value) == (
        "planner module 'unmakeable' (tests.helpers.BrokenModules) could not be made: TypeError: "
        "__init__() missing 1 required positional argument: 'tokenizer'"
    )


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        (
            '[agent]\ntools = ["base_generator", "serch"]\n',
            "{file}: agent.tools: unknown tool 'serch'; installed tools: ",
        ),
        ("[tools.pyhton_coder]\nimage = 'x'\n", "{file}: tools.pyhton_coder: unknown tool 'pyhton_coder'; "),
        (
            '[engines]\nplanner = "opnai:gpt-4o"\n',
            "{file}: engines.planner: unknown engine provider 'opnai'; installed: ",
        ),
        ('[engines]\ndefault = "opnai:gpt-4o"\n', "{file}: engines.default: unknown engine provider 'opnai'; "),
        (
            '[tools.base_generator]\nengine = "olama:x"\n',
            "{file}: tools.base_generator.engine: unknown engine provider",
        ),
        (
            '[modules]\nverifier = "strict"\n',
            "{file}: modules.verifier: unknown verifier module 'strict'; installed: default",
        ),
    ],
)
def test_unknown_names_in_a_config_file_name_the_file_and_the_key(
    tmp_path: Path, registry: Registry, toml: str, message: str
) -> None:
    path = tmp_path / "agentflow.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError) as info:
        Solver(load_config(path), registry=registry)
    assert str(info.value).startswith(message.format(file=path)), str(info.value)


def test_an_unknown_name_from_a_flag_names_the_flag(tmp_path: Path, registry: Registry) -> None:
    (tmp_path / "agentflow.toml").write_text('[engines]\nplanner = "openai:m"\n')
    config = with_overrides(load_config(tmp_path / "agentflow.toml"), engines={"planner": "opnai:m"}, tools=("x",))
    with pytest.raises(ConfigError, match=r"^--tools: unknown tool 'x'"):
        Solver(config, registry=registry)
    config = with_overrides(load_config(tmp_path / "agentflow.toml"), engines={"planner": "opnai:m"})
    with pytest.raises(ConfigError, match=r"^--planner-engine: unknown engine provider 'opnai'"):
        Solver(config, registry=registry)


async def test_an_engine_failure_mid_turn_keeps_the_calls_that_happened(server: ScriptedOpenAIServer) -> None:
    # "upper" takes arguments the executor must write (a request tool would skip the executor).
    server.enqueue("m-plan", Reply("Needs arithmetic."), step("upper", "What is 6 times 7?"))
    server.enqueue("m-exec", Reply(status=401, error_message="Incorrect API key provided"))
    server.enqueue("m-gen", Reply("fallback answer"))
    models = {"planner": "m-plan", "executor": "m-exec", "verifier": "m-verify", "generator": "m-gen"}
    config = config_for(server, tools=("upper",), **models)
    async with Solver(config, registry=registry_with(TestTools())) as solver:
        trajectory = await solver.asolve("What is 6 times 7?")

    assert trajectory.stop_reason is StopReason.ENGINE_ERROR
    assert trajectory.error is not None and "m-exec" in trajectory.error and "401" in trajectory.error
    # The planner's decision of the broken turn is kept, before the error; no step was completed.
    assert trajectory.steps == ()
    assert trajectory.unfinished is not None and trajectory.unfinished.index == 1
    assert trajectory.unfinished.decision.sub_goal == "What is 6 times 7?"
    assert trajectory.unfinished.tool_call is None
    assert [(c.role, c.purpose) for c in trajectory.module_calls()] == [
        ("planner", "analyze"),
        ("planner", "next_step"),
        ("generator", "final_answer"),
    ]
    assert from_json(to_json(trajectory), Trajectory) == trajectory


async def test_a_second_turn_that_fails_keeps_its_own_calls_not_the_first_turns(
    server: ScriptedOpenAIServer,
) -> None:
    server.enqueue("m-plan", Reply("analysis"), step("upper", "first"), step("upper", "second"))
    server.enqueue("m-exec", args(text="first"), Reply(status=400, error_message="context length exceeded"))
    server.enqueue("m-verify", verdict("CONTINUE"))
    server.enqueue("m-gen", Reply("answer"))
    config = config_for(server, tools=("upper",), **MODELS)
    async with Solver(config, registry=registry_with(TestTools())) as solver:
        trajectory = await solver.asolve("q")
    assert len(trajectory.steps) == 1 and trajectory.steps[0].decision.sub_goal == "first"
    assert trajectory.unfinished is not None
    assert (trajectory.unfinished.index, trajectory.unfinished.decision.sub_goal) == (2, "second")
    assert trajectory.unfinished.tool_call is None


async def test_a_modules_own_output_is_cut_before_memory_prompts_and_the_trajectory(
    server: ScriptedOpenAIServer, registry: Registry
) -> None:
    huge = "y" * 2_000_000  # a server that ignores max_tokens
    server.enqueue("m-plan", Reply(huge), step("upper", "s" * 1_000_000))
    server.enqueue("m-exec", args(text="q" * 1_000_000))
    server.enqueue("m-verify", verdict("STOP"))
    server.enqueue("m-gen", Reply("z" * 1_000_000))
    config = config_for(server, tools=("upper",), agent={"max_module_output_chars": 1000}, **MODELS)
    async with Solver(config, registry=registry_with(TestTools())) as solver:
        trajectory = await solver.asolve("q")

    def cut(text: str, total: int) -> bool:
        return text == text[:1000] + f" … [cut: {total - 1000} of {total} characters not shown]"

    [only] = trajectory.steps
    assert trajectory.analysis is not None and cut(trajectory.analysis.text, 2_000_000)
    assert trajectory.analysis.call is not None and cut(trajectory.analysis.call.response, 2_000_000)
    assert cut(only.decision.sub_goal, 1_000_000)
    assert cut(only.tool_call.arguments["text"], 1_000_000)
    assert trajectory.answer is not None and cut(trajectory.answer, 1_000_000)
    # Later prompts and the tool got the cut texts, and the whole trajectory stays small.
    assert max(len(m["content"]) for r in server.requests[1:] for m in r.messages) < 10_000
    assert only.result.output.count("Q") < 1100  # type: ignore[union-attr]
    assert len(to_json(trajectory)) < 60_000


def test_an_engine_option_the_engine_refuses_names_the_file_and_the_key(registry: Registry) -> None:
    engine = {"model": "openai:x", "base_url": "http://127.0.0.1:9/v1", "options": {"retry_base_s": -1}}
    config = config_from_dict({"engines": {"executor": engine}}, source="a.toml")
    with pytest.raises(ConfigError) as info:
        Solver(config, registry=registry)
    assert str(info.value) == (
        "a.toml: engines.executor: engine openai:x: option retry_base_s must be a non-negative number of seconds, "
        "got -1"
    )
