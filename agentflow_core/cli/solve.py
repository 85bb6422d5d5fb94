"""``agentflow solve QUERY``."""

from __future__ import annotations

import click

from agentflow_core.cli import render
from agentflow_core.config import load_config, with_overrides
from agentflow_core.errors import UsageError, naming_storage_errors
from agentflow_core.records import MODULE_ROLES


def _tool_engines(values: tuple[str, ...]) -> dict[str, str]:
    pairs = {}
    for value in values:
        tool, sep, engine = value.partition("=")
        if not sep or not tool or not engine:
            raise UsageError(f"--tool-engine expects TOOL=provider:model, got {value!r}")
        pairs[tool] = engine
    return pairs


def _tool_list(value: str | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    names = tuple(n.strip() for n in value.split(",") if n.strip())
    if not names:
        raise UsageError("--tools needs at least one tool name")
    return names


@click.command()
@click.argument("query")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="agentflow.toml to read.")
@click.option("--engine", help="Engine for every module without its own, as provider:model.")
@click.option("--planner-engine", help="Engine of the planner.")
@click.option("--executor-engine", help="Engine of the executor.")
@click.option("--verifier-engine", help="Engine of the verifier.")
@click.option("--generator-engine", help="Engine of the generator.")
@click.option("--tool-engine", multiple=True, metavar="TOOL=ENGINE", help="Engine of one tool (repeatable).")
@click.option("--base-url", help="Base URL for OpenAI-compatible engines that have none configured.")
@click.option("--tools", "tool_names", metavar="A,B", help="Comma-separated tools to enable.")
@click.option("--max-steps", type=int, help="Most plan/execute/verify turns.")
@click.option(
    "--no-adapters",
    is_flag=True,
    envvar="AGENTFLOW_NO_ADAPTERS",
    show_envvar=True,
    help="Run every module on the bare model, without its LoRA adapter.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the whole trajectory as JSON on stdout.")
@click.option("--quiet", is_flag=True, help="No live view on stderr.")
def solve(
    query: str,
    config_path: str | None,
    engine: str | None,
    planner_engine: str | None,
    executor_engine: str | None,
    verifier_engine: str | None,
    generator_engine: str | None,
    tool_engine: tuple[str, ...],
    base_url: str | None,
    tool_names: str | None,
    max_steps: int | None,
    no_adapters: bool,
    as_json: bool,
    quiet: bool,
) -> None:
    """Answer QUERY with the planner, executor, verifier and generator."""
    from agentflow_core.inert import inert, inert_json
    from agentflow_core.serde import to_json
    from agentflow_core.solver import Solver

    if not query.strip():
        raise UsageError("the query is empty; pass the question as the first argument")
    chosen = (planner_engine, executor_engine, verifier_engine, generator_engine)
    flags: dict[str, str | None] = {"default": engine, **dict(zip(MODULE_ROLES, chosen, strict=True))}
    engines = {role: model for role, model in flags.items() if model}
    config = with_overrides(
        load_config(config_path),
        engines=engines,
        tools=_tool_list(tool_names),
        tool_engines=_tool_engines(tool_engine),
        max_steps=max_steps,
        base_url=base_url,
        no_adapters=no_adapters,
    )
    with Solver(config) as solver:
        if not quiet:
            for name, why in solver.tools.left_out.items():
                click.echo(f"note: {name} is off: {why}", err=True)
        trajectory = solver.solve(query, observe=None if quiet or as_json else render.show)
    with naming_storage_errors("stdout"):  # `> file` on a full disk: say so, not "a bug"
        if as_json:
            click.echo(inert_json(to_json(trajectory, indent=2)))
        elif trajectory.final_answer:
            click.echo(inert(trajectory.final_answer.text, keep_lines=True))
    if trajectory.error:
        raise click.ClickException(trajectory.error)
    if not as_json and not quiet:
        click.echo(render.summary(trajectory), err=True)
