"""``agentflow tools | engines | plugins``: what is installed, and which package it came from.

Names and descriptions come from plugins and MCP servers, so each line goes through ``inert``.
"""

from __future__ import annotations

import click

from agentflow_core.config import Config, load_config
from agentflow_core.inert import inert, inert_json
from agentflow_core.plugins import load_registry, make_plugin_manager, plugin_source
from agentflow_core.registrar import Registered
from agentflow_core.registry import Registry
from agentflow_core.tool_sources import ToolSources


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the tool specs as JSON.")
@click.option(
    "--config", "config_path", type=click.Path(dir_okay=False), help="agentflow.toml whose tool sources to open."
)
def tools(as_json: bool, config_path: str | None) -> None:
    """List installed tools, and those of the config's tool sources (MCP servers), which are started to ask."""
    import asyncio

    from agentflow_core.serde import to_json

    registry = asyncio.run(_with_source_tools(load_config(config_path), load_registry()))
    if as_json:
        click.echo(inert_json(to_json([t.spec for t in registry.tools.values()], indent=2)))
        return
    for name in sorted(registry.tools):
        item = registry.tools[name]
        click.echo(inert(f"{name:<20} {_first_line(item.spec.description)}  [{_provenance(item)}]"))


@click.command()
def engines() -> None:
    """List engine providers (use them as provider:model)."""
    registry = load_registry()
    for provider in sorted(registry.engines):
        item = registry.engines[provider]
        click.echo(inert(f"{provider:<10} {item.description}  [{_provenance(item)}]"))


@click.command()
def plugins() -> None:
    """List loaded plugins and the hooks each implements."""
    pm = make_plugin_manager()
    lines = []
    for plugin in pm.get_plugins():
        hooks = sorted(c.name for c in pm.get_hookcallers(plugin) or [])
        lines.append(f"{plugin_source(pm, plugin)}: {', '.join(hooks) or '(no hooks)'}")
    for line in sorted(lines):
        click.echo(inert(line))


def _provenance(item: Registered) -> str:
    return f"{item.source}, replacing {item.replaces}" if item.replaces else item.source


COMMANDS = (tools, engines, plugins)


async def _with_source_tools(config: Config, registry: Registry) -> Registry:
    sources = ToolSources(config, registry)
    try:
        return await sources.open(registry, wanted=None)
    finally:
        await sources.aclose()


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""
