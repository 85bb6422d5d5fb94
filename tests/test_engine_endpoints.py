"""An engine table with several ``base_urls``: requests spread over real loopback servers, one killed mid-run.

Both HTTP engines (``openai:`` and ``litellm:``) go through the same :class:`EndpointPool`, so every
test runs on each. The pool's rules that need no server (dropping for good, ``min_live``) are
checked on the pool itself at the end.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from agentflow_core.config import config_from_dict
from agentflow_core.engine import Engine, EngineConfig, GenerationRequest, Message
from agentflow_core.engines.endpoints import EndpointPool, NoLiveEndpoint
from agentflow_core.engines.retry import CallFailure
from agentflow_core.errors import ConfigError, EngineError
from agentflow_core.registry import Registry
from agentflow_core.testing import Reply, ScriptedOpenAIServer, wait_until

MakeEngine = Callable[..., Engine]
MODEL = "m1"
ENGINE_MODELS = {"openai": f"openai:{MODEL}", "litellm": f"litellm:openai/{MODEL}"}
LOGGER = "agentflow_core.engines.endpoints"


def ask(text: str = "hello") -> GenerationRequest:
    return GenerationRequest(messages=(Message("user", text),))


@pytest.fixture
def servers() -> Iterator[tuple[ScriptedOpenAIServer, ScriptedOpenAIServer]]:
    with ScriptedOpenAIServer() as first, ScriptedOpenAIServer() as second:
        for server, name in ((first, "first"), (second, "second")):
            server.set_default_responder(lambda request, name=name: Reply(content=name))
        yield first, second


@pytest.fixture(params=sorted(ENGINE_MODELS))
async def make_engine(
    request: pytest.FixtureRequest, servers: tuple[ScriptedOpenAIServer, ...], registry: Registry
) -> AsyncIterator[MakeEngine]:
    made: list[Engine] = []

    def make(**options: Any) -> Engine:
        config = EngineConfig(
            model=ENGINE_MODELS[request.param],
            base_urls=tuple(server.base_url for server in servers),
            timeout_s=5.0,
            max_attempts=2,
            options={"retry_base_s": 0.01, **options},
        )
        engine = registry.engine(config.provider).factory(config)
        made.append(engine)
        return engine

    yield make
    for engine in made:
        await engine.aclose()


@pytest.fixture(autouse=True)
def _no_ambient_openai_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(variable, raising=False)


def warnings_about(caplog: pytest.LogCaptureFixture, url: str) -> list[str]:
    records = [r for r in caplog.records if r.name == LOGGER and r.levelno >= logging.WARNING]
    return [r.getMessage() for r in records if url in r.getMessage()]


async def ask_until(engine: Engine, done: Callable[[list[str]], bool], timeout_s: float = 10.0) -> list[str]:
    """Send requests one after another until ``done(texts so far)``: time passes by real requests, not sleeps."""
    texts: list[str] = []
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not done(texts):
        assert asyncio.get_running_loop().time() < deadline, texts[-5:]
        texts.append((await engine.generate(ask())).text)
    return texts


async def test_concurrent_requests_go_to_the_least_busy_server(
    make_engine: MakeEngine, servers: tuple[ScriptedOpenAIServer, ScriptedOpenAIServer]
) -> None:
    for server in servers:
        server.set_default_responder(lambda request: Reply(content="slow", delay_s=0.3))
    engine = make_engine()

    await asyncio.gather(*(engine.generate(ask(str(i))) for i in range(6)))

    assert [len(server.requests) for server in servers] == [3, 3]


async def test_one_at_a_time_takes_turns(
    make_engine: MakeEngine, servers: tuple[ScriptedOpenAIServer, ScriptedOpenAIServer]
) -> None:
    engine = make_engine()

    texts = [(await engine.generate(ask())).text for _ in range(4)]

    assert texts == ["first", "second", "first", "second"]


async def test_a_server_killed_mid_run_is_set_aside_and_its_requests_finish_on_the_other(
    make_engine: MakeEngine,
    servers: tuple[ScriptedOpenAIServer, ScriptedOpenAIServer],
    caplog: pytest.LogCaptureFixture,
) -> None:
    first, second = servers
    first.set_default_responder(lambda request: Reply(content="first", delay_s=30))
    second.set_default_responder(lambda request: Reply(content="second", delay_s=0.2))
    engine = make_engine(revive_after_s=60)
    caplog.set_level(logging.INFO, LOGGER)

    batch = asyncio.gather(*(engine.generate(ask(str(i))) for i in range(4)))
    await asyncio.to_thread(wait_until, lambda: len(first.requests) == 2, what="two requests held by the first")
    first.stop()  # drops the two connections it holds
    done = await batch

    assert [c.text for c in done] == ["second"] * 4
    [warning] = warnings_about(caplog, first.base_url)
    assert "setting" in warning and "aside" in warning and "60 s" in warning and "\n" not in warning
    assert len(second.requests) == 4
    later = [await engine.generate(ask("after")) for _ in range(3)]
    assert [c.text for c in later] == ["second"] * 3  # no request is sent to the first while it is aside
    assert len(warnings_about(caplog, first.base_url)) == 1


async def test_a_server_set_aside_gets_one_probe_when_due_and_is_back_once_it_answers(
    make_engine: MakeEngine,
    servers: tuple[ScriptedOpenAIServer, ScriptedOpenAIServer],
    caplog: pytest.LogCaptureFixture,
) -> None:
    first, _ = servers
    engine = make_engine(revive_after_s=0.3)
    caplog.set_level(logging.INFO, LOGGER)
    first.stop()

    assert (await engine.generate(ask())).text == "second"  # the refused request moved over
    assert len(warnings_about(caplog, first.base_url)) == 1
    # Requests keep going to the second until the probe is due; the probe is refused too, so the
    # first is set aside again, for twice as long. Every request on the way is answered.
    texts = await ask_until(engine, lambda _: len(warnings_about(caplog, first.base_url)) == 2)
    assert set(texts) == {"second"}
    assert "0.6 s" in warnings_about(caplog, first.base_url)[-1]

    first.start()  # the same port: a restarted replica
    texts = await ask_until(engine, lambda answered: "first" in answered)
    assert texts[-1] == "first" and set(texts[:-1]) <= {"second"}
    assert any("answers again" in r.getMessage() for r in caplog.records if r.name == LOGGER)
    assert [(await engine.generate(ask())).text for _ in range(2)] == ["second", "first"]  # both in turn again


async def test_every_server_down_is_one_engine_error_naming_them(
    make_engine: MakeEngine, servers: tuple[ScriptedOpenAIServer, ScriptedOpenAIServer]
) -> None:
    for server in servers:
        server.stop()
    engine = make_engine()

    with pytest.raises(EngineError) as info:
        await engine.generate(ask())

    message = str(info.value)
    assert "\n" not in message
    assert all(server.base_url in message for server in servers)


async def test_a_bad_request_is_not_sent_to_the_other_server(
    make_engine: MakeEngine, servers: tuple[ScriptedOpenAIServer, ScriptedOpenAIServer]
) -> None:
    for server in servers:
        server.set_default_responder(lambda request: Reply(status=400, error_message="prompt too long"))
    engine = make_engine()

    with pytest.raises(EngineError, match="prompt too long"):
        await engine.generate(ask())

    assert sorted(len(server.requests) for server in servers) == [0, 1]


async def test_one_server_error_moves_the_request_two_in_a_row_set_the_server_aside(
    make_engine: MakeEngine,
    servers: tuple[ScriptedOpenAIServer, ScriptedOpenAIServer],
    caplog: pytest.LogCaptureFixture,
) -> None:
    first, second = servers
    first.set_default_responder(lambda request: Reply(status=500, error_message="worker crashed"))
    engine = make_engine()

    assert (await engine.generate(ask())).text == "second"
    assert warnings_about(caplog, first.base_url) == []  # one 500 may be one request's bad luck
    assert (await engine.generate(ask())).text == "second"  # "second" was used last: "first" goes first
    [warning] = warnings_about(caplog, first.base_url)
    assert "HTTP 500: worker crashed" in warning
    assert [len(first.requests), len(second.requests)] == [2, 2]


def test_config_takes_base_urls_and_refuses_them_beside_base_url() -> None:
    table = {"model": "openai:m", "base_urls": ["http://a:1/v1", "http://b:2/v1"]}
    config = config_from_dict({"engines": {"planner": table}}, source="agentflow.toml")
    assert config.engines.planner is not None
    assert config.engines.planner.base_urls == ("http://a:1/v1", "http://b:2/v1")

    with pytest.raises(ConfigError) as info:
        config_from_dict({"engines": {"planner": {**table, "base_url": "http://c:3/v1"}}}, source="agentflow.toml")
    assert "agentflow.toml" in str(info.value) and "base_urls" in str(info.value)
    with pytest.raises(ConfigError, match="list of strings"):
        config_from_dict({"engines": {"planner": {**table, "base_urls": "http://a:1/v1"}}})


def test_a_url_named_twice_is_a_config_error(registry: Registry) -> None:
    config = EngineConfig(model="openai:m", base_urls=("http://a:1/v1", "http://a:1/v1"))
    with pytest.raises(ConfigError, match="more than once"):
        registry.engine("openai").factory(config)


# -- the pool alone: the fleet's settings --------------------------------------------------------


def refused(url: str) -> CallFailure:
    return CallFailure("connection", f"connection refused by {url}")


async def test_without_revival_a_dead_endpoint_is_dropped_and_min_live_is_enforced(
    caplog: pytest.LogCaptureFixture,
) -> None:
    pool = EndpointPool(["http://a", "http://b", "http://c"], name="rollout fleet", revive_after_s=None, min_live=2)
    dead = {"http://a"}

    async def send(url: str) -> str:
        if url in dead:
            raise refused(url)
        return url

    assert {await pool.call(send) for _ in range(4)} == {"http://b", "http://c"}
    assert pool.live() == ("http://b", "http://c")
    assert any("dropped http://a" in r.getMessage() for r in caplog.records)

    dead.add("http://b")
    with pytest.raises(NoLiveEndpoint) as info:
        for _ in range(3):
            await pool.call(send)
    message = str(info.value)
    assert message.startswith("rollout fleet: 1 of 3 endpoints answer, fewer than the 2 required")
    assert "http://a: connection refused by http://a" in message and "\n" not in message


async def test_a_cancelled_request_does_not_count_against_its_endpoint() -> None:
    pool = EndpointPool(["http://a", "http://b"], name="pool")
    started = asyncio.Event()

    async def hang(url: str) -> str:
        started.set()
        await asyncio.Event().wait()  # never set: only the cancellation ends it
        return url

    task = asyncio.ensure_future(pool.call(hang))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert pool.live() == ("http://a", "http://b")
    assert [pool.in_flight(url) for url in pool.urls] == [0, 0]
