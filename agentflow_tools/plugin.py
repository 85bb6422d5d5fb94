"""The built-in tools' plugin module, published under the ``agentflow`` entry-point group."""

from __future__ import annotations

from typing import TYPE_CHECKING

from agentflow_core import hookimpl
from agentflow_core.registry import ToolRegistrar, ToolSourceRegistrar

if TYPE_CHECKING:
    import click


@hookimpl
def register_tools(register: ToolRegistrar) -> None:
    # Tool modules import only attrs and the core at the top; docker, httpx, bm25s, trafilatura
    # and torch are imported when a tool runs, so listing tools stays cheap.
    from agentflow_tools import base_generator, google_search, local_search, python_coder, web_search, wikipedia_search

    register(base_generator.SPEC, base_generator.BaseGenerator, settings=base_generator.Settings, default=True)
    register(
        python_coder.SPEC, python_coder.PythonCoder, settings=python_coder.Settings, default=python_coder.readiness
    )
    register(google_search.SPEC, google_search.GoogleSearch, settings=google_search.Settings)
    register(wikipedia_search.SPEC, wikipedia_search.WikipediaSearch, settings=wikipedia_search.Settings)
    register(web_search.SPEC, web_search.WebSearch, settings=web_search.Settings)
    register(local_search.SPEC, local_search.LocalSearch, settings=local_search.Settings)


@hookimpl
def register_tool_sources(register: ToolSourceRegistrar) -> None:
    from agentflow_tools.mcp.settings import ServerSettings
    from agentflow_tools.mcp.source import McpToolSource

    register(
        "mcp",
        McpToolSource,
        description="the tools of MCP servers, one [mcp.NAME] table per server",
        settings=ServerSettings,
        settings_key="NAME",
    )


@hookimpl
def register_commands(cli: click.Group) -> None:
    from agentflow_tools.mcp.cli import mcp
    from agentflow_tools.sandbox.cli import sandbox

    cli.add_command(sandbox)
    cli.add_command(mcp)
