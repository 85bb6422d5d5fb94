"""Shared pieces for the solver and CLI tests."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator, Mapping
from typing import Any

from agentflow_core import ToolError, ToolSpec, hookimpl
from agentflow_core.config import Config, config_from_dict
from agentflow_core.testing import ScriptedOpenAIServer


def engine_table(server: ScriptedOpenAIServer, model: str) -> dict[str, Any]:
    return {
        "model": f"openai:{model}",
        "base_url": server.base_url,
        "max_attempts": 2,
        "timeout_s": 10,
        "options": {"retry_base_s": 0.01},
    }


def config_for(
    server: ScriptedOpenAIServer,
    *,
    tools: tuple[str, ...] = ("base_generator",),
    agent: Mapping[str, Any] | None = None,
    **models: str,
) -> Config:
    """A config whose modules (and ``tool`` for base_generator) use the given server models."""
    tool_model = models.pop("tool", None)
    data: dict[str, Any] = {
        "agent": {"tools": list(tools), **(agent or {})},
        "engines": {role: engine_table(server, model) for role, model in models.items()},
    }
    if tool_model:
        data["tools"] = {"base_generator": {"engine": engine_table(server, tool_model)}}
    return config_from_dict(data)


def _spec(name: str) -> ToolSpec:
    return ToolSpec(
        name=name,
        description=f"test tool {name}",
        input_schema={"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]},
        output="text",
    )


class TestTools:
    """A plugin with misbehaving tools, registered only by the tests that use it."""

    __test__ = False

    @hookimpl
    def register_tools(self, register: Any) -> None:
        register(_spec("sleepy"), lambda ctx: _Tool(_spec("sleepy"), self._sleep))
        register(_spec("crashy"), lambda ctx: _Tool(_spec("crashy"), self._crash))
        register(_spec("failing"), lambda ctx: _Tool(_spec("failing"), self._fail))
        register(_spec("upper"), lambda ctx: _Tool(_spec("upper"), self._upper))

    @staticmethod
    async def _sleep(args: Mapping[str, Any]) -> str:
        await asyncio.Event().wait()  # never set: the call outlives any time limit until it is cancelled
        return "woke up"

    @staticmethod
    async def _crash(args: Mapping[str, Any]) -> str:
        return {"not": "text"}["missing"]

    @staticmethod
    async def _fail(args: Mapping[str, Any]) -> str:
        raise ToolError("the backend said no (HTTP 503)")

    @staticmethod
    async def _upper(args: Mapping[str, Any]) -> str:
        return str(args["text"]).upper()


class _Tool:
    def __init__(self, spec: ToolSpec, run: Any) -> None:
        self.spec, self._run = spec, run

    async def run(self, arguments: Mapping[str, Any]) -> str:
        result: str = await self._run(arguments)
        return result

    async def aclose(self) -> None:
        pass


@contextlib.contextmanager
def silent_port() -> Iterator[int]:
    """A loopback port that accepts connections (the kernel's backlog does) and never answers a byte."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        yield int(sock.getsockname()[1])


def closed_port() -> int:
    """A loopback port nothing listens on now: for 'connection refused', or for a server to take next."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class BrokenModules:
    """A plugin whose modules crash the way buggy plugins do: ``[modules] ROLE = "broken"`` selects one."""

    __test__ = False

    @hookimpl
    def register_modules(self, register: Any) -> None:
        register("verifier", "broken", lambda context: _BrokenVerifier())
        register("generator", "broken", lambda context: _BrokenGenerator())
        register("planner", "unmakeable", _unmakeable)


class _BrokenVerifier:
    async def check(self, state: Any) -> Any:
        raise IndexError("list index out of range\n  (while reading the memory)")


class _BrokenGenerator:
    async def final_answer(self, state: Any) -> Any:
        raise AttributeError("'NoneType' object has no attribute 'text'")

    async def direct_answer(self, state: Any) -> Any:
        raise AttributeError("unused")


def _unmakeable(context: Any) -> Any:
    raise TypeError("__init__() missing 1 required positional argument: 'tokenizer'")
