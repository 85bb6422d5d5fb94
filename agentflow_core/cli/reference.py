"""``agentflow config reference``: every table and key of ``agentflow.toml``, generated from the code.

The core's tables come from its config classes; each tool's ``[tools.NAME]`` keys and each tool
source's section from the settings class its plugin registered, so an installed plugin's settings
are documented the same way as the built-ins'. ``docs/config-reference.md`` is this command's output
with the built-in plugins only.
"""

from __future__ import annotations

import click

from agentflow_core.config import Config
from agentflow_core.config_reference import Reference, render
from agentflow_core.engine import EngineConfig
from agentflow_core.plugins import load_registry
from agentflow_core.registry import Registry

#: The command that writes the committed page; tests/test_config_reference.py names it when the page is stale.
REGENERATE = "agentflow config reference --builtin-only > docs/config-reference.md"

INTRO = f"""\
# `agentflow.toml` reference

Every table and key of `agentflow.toml`, generated from the classes the file is read into: each key's
meaning is the `#:` comment above its field, and each tool's keys come from the settings class its
plugin registered. Do not edit this page; change the comment, then regenerate it:

```bash
{REGENERATE}
```

`agentflow config reference` (without `--builtin-only`) prints the same page for what is installed,
third-party tools included. The file is `--config`, else `AGENTFLOW_CONFIG`, else `./agentflow.toml`;
command-line flags override it. An unknown key, a wrong type or a value out of range is refused when
the file is read, with the key and the file named. How the pieces fit together: [concepts.md](concepts.md);
the training TOML: [training-config-reference.md](training-config-reference.md).

Types are TOML's: a *number* takes an integer too; *unset* means the key is left out (TOML has no
null). Bounds after a type are checked when the file is read.
"""

TOOLS = "## Tools\n\nThe keys of each tool's `[tools.NAME]` table, by the plugin that registered it.\n"
SOURCES = (
    "## Tool sources\n\nEvery other top-level table belongs to the tool source of that name, which reads it "
    "when a solver starts.\n"
)


def agentflow_toml_reference(registry: Registry) -> str:
    """The Markdown page: the core's tables, then each tool's and each tool source's settings."""
    core = Reference({EngineConfig: "engines.ROLE"})
    core.add(Config, "")
    tools, sources = Reference(), Reference()
    for name, tool in sorted(registry.tools.items()):
        if tool.settings is not None:
            tools.add(tool.settings, f"tools.{name}", note=_tool_doc(tool.spec.uses_engine, tool.source))
    for name, source in sorted(registry.tool_sources.items()):
        if source.settings is not None:
            path = f"{name}.{source.settings_key}" if source.settings_key else name
            sources.add(source.settings, path, note=f"From {source.source}: {source.description}.")
    parts = [INTRO, render(core.tables)]
    if tools.tables:
        parts += [TOOLS, render(tools.tables, level=3)]
    if sources.tables:
        parts += [SOURCES, render(sources.tables, level=3)]
    return "\n".join(parts)


def _tool_doc(uses_engine: bool, source: str) -> str:
    engine = " It calls a model: `engine` sets which ([`[tools.NAME]`](#toolsname))." if uses_engine else ""
    return f"From {source}.{engine}"


@click.group()
def config() -> None:
    """What agentflow.toml can hold."""


@config.command()
@click.option(
    "--builtin-only",
    is_flag=True,
    help="Document only agentflow's own tools and tool sources, not those of installed plugins (as the docs do).",
)
def reference(builtin_only: bool) -> None:
    """Print the agentflow.toml reference (Markdown): each table and key, its type, default and meaning."""
    click.echo(agentflow_toml_reference(load_registry(entry_points=not builtin_only)), nl=False)
