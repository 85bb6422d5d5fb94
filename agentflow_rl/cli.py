"""``agentflow eval ...`` and ``agentflow data download``, added through ``register_commands``.

The engine flags are those of ``agentflow solve`` so that a configuration tried on one question
is evaluated with the same command line. Library errors become one ``Error:`` line in the core's
CLI group; nothing here prints a traceback.
"""

from __future__ import annotations

import contextlib
import shlex
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from agentflow_core import EngineConfig, UsageError
from agentflow_core.inert import inert
from agentflow_core.records import MODULE_ROLES
from agentflow_rl.adapters_cli import adapters_command
from agentflow_rl.eval.trained.serving import VLLM_PYTHON_VARIABLE, Serve
from agentflow_rl.flow_grpo.cli import train_command
from agentflow_rl.view.cli import view_command

if TYPE_CHECKING:
    from agentflow_core.registry import Registry
    from agentflow_rl.eval.trained.training_run import TrainingRun

PAPER_SETS = "bamboogle,2wiki,hotpotqa,musique,gameof24,aime24,amc23,medqa"


def _engine_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The engine and agent flags of ``agentflow solve``."""
    options = [
        click.option("--config", "config_path", type=click.Path(dir_okay=False), help="agentflow.toml to read."),
        click.option("--engine", help="Engine for every module without its own, as provider:model."),
        *(click.option(f"--{role}-engine", help=f"Engine of the {role}.") for role in MODULE_ROLES),
        click.option("--tool-engine", multiple=True, metavar="TOOL=ENGINE", help="Engine of one tool (repeatable)."),
        click.option("--base-url", help="Base URL for OpenAI-compatible engines that have none configured."),
        click.option("--tools", "tool_names", metavar="A,B", help="Comma-separated tools to enable."),
        click.option("--max-steps", type=int, help="Most plan/execute/verify turns."),
        click.option(
            "--no-adapters",
            is_flag=True,
            envvar="AGENTFLOW_NO_ADAPTERS",
            show_envvar=True,
            help="Run every module on the bare model, without its LoRA adapter.",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _split(value: str | None, flag: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    names = tuple(n.strip() for n in value.split(",") if n.strip())
    if not names:
        raise UsageError(f"{flag} needs at least one name")
    return names


def build_config(flags: dict[str, Any]) -> Any:
    """The config file with the command-line flags on top, exactly as ``agentflow solve`` does."""
    from agentflow_core.config import load_config, with_overrides

    engines: dict[str, str | None] = {"default": flags["engine"], **{r: flags[f"{r}_engine"] for r in MODULE_ROLES}}
    tool_engines = {}
    for value in flags["tool_engine"]:
        tool, sep, engine = value.partition("=")
        if not sep or not tool or not engine:
            raise UsageError(f"--tool-engine expects TOOL=provider:model, got {value!r}")
        tool_engines[tool] = engine
    return with_overrides(
        load_config(flags["config_path"]),
        engines={role: model for role, model in engines.items() if model},
        tools=_split(flags["tool_names"], "--tools"),
        tool_engines=tool_engines,
        max_steps=flags["max_steps"],
        base_url=flags["base_url"],
        no_adapters=flags["no_adapters"],
    )


def _judge(model: str | None, base_url: str | None) -> EngineConfig | None:
    if model is None:
        return None
    from agentflow_core.engine import split_model

    try:
        provider, _ = split_model(model)
    except ValueError as exc:
        raise UsageError(f"--judge-engine: {exc}") from None
    return EngineConfig(model=model, base_url=base_url if provider in ("openai", "litellm") else None)


def _sample_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """What is asked and how it is scored and paced: the options every eval run takes."""
    options = [
        click.option(
            "--benchmarks",
            default=PAPER_SETS,
            show_default=True,
            metavar="A,B",
            help="Sets to run; 'all' for every registered one.",
        ),
        click.option(
            "--data-dir", type=click.Path(file_okay=False), help="Where <name>.json files are [env AGENTFLOW_DATA]."
        ),
        click.option("--limit", type=click.IntRange(min=1), help="A fixed seeded sample of N items per set."),
        click.option("--seed", type=int, default=0, show_default=True, help="Seed of the sample."),
        click.option(
            "--concurrency", type=click.IntRange(min=1), default=8, show_default=True, help="Queries in flight."
        ),
        click.option("--judge-engine", metavar="PROVIDER:MODEL", help="Also score with an LLM judge on this engine."),
        click.option(
            "--judge-base-url", help="Base URL of the judge's OpenAI-compatible server (default: --base-url)."
        ),
        click.option(
            "--stop-after-failures",
            type=click.IntRange(min=0),
            default=8,
            show_default=True,
            metavar="N",
            help="Stop when N queries in a row end without a usable result (an engine or module failure); 0: never.",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _request(flags: dict[str, Any], run_dir: Path, mode: Any, registry: Registry) -> Any:
    """The ``EvalRequest`` of ``_sample_options``' flags, for ``run_dir``."""
    from agentflow_rl.benchmarks.loaders import default_data_dir
    from agentflow_rl.eval.pipeline import EvalRequest

    names = _split(flags["benchmarks"], "--benchmarks") or ()
    if names == ("all",):
        names = tuple(registry.benchmarks)
    return EvalRequest(
        benchmarks=names,
        data_dir=Path(flags["data_dir"]) if flags["data_dir"] else default_data_dir(),
        run_dir=run_dir,
        mode=mode,
        limit=flags["limit"],
        seed=flags["seed"],
        concurrency=flags["concurrency"],
        judge=_judge(flags["judge_engine"], flags["judge_base_url"] or flags["base_url"]),
        stop_after_failures=flags["stop_after_failures"],
    )


@click.group("eval", invoke_without_command=True)
@click.option("--run-dir", type=click.Path(file_okay=False), help="Results go here; the same dir resumes a run.")
@click.option(
    "--mode",
    type=click.Choice(["agent", "base"]),
    default="agent",
    show_default=True,
    help="agent: the full loop; base: the generator's engine alone, no tools.",
)
@click.option(
    "--new-run",
    is_flag=True,
    help="Start a new run: in RUN_DIR if it holds none, else in the first free RUN_DIR-2, RUN_DIR-3, ...",
)
@_sample_options
@_engine_options
@click.pass_context
def eval_command(ctx: click.Context, **flags: Any) -> None:
    """Run benchmarks and score them; `agentflow eval compare A B` compares two runs.

    Each finished query is appended to RUN_DIR/results.jsonl at once; running the same command
    again resumes where a killed run stopped, and asks again the queries that failed for want of an
    engine or module. It exits non-zero while any query has no usable result.
    """
    if ctx.invoked_subcommand is not None:
        return
    from agentflow_core.plugins import load_registry
    from agentflow_rl.eval.pipeline import evaluate
    from agentflow_rl.eval.records import Mode
    from agentflow_rl.eval.report import markdown
    from agentflow_rl.eval.rundir import new_run_dir

    registry = load_registry()
    mode = Mode(flags["mode"])
    run_dir = Path(flags["run_dir"] or f"runs/{mode.value}-{time.strftime('%Y%m%d-%H%M%S')}")
    config = build_config(flags)
    if flags["new_run"]:
        run_dir = new_run_dir(run_dir)
    resume = shlex.join(["agentflow", "eval", *_options_given(ctx, ("run_dir", "new_run")), "--run-dir", str(run_dir)])
    request = _request(flags, run_dir, mode, registry)
    announce = _announcer(bool(flags["run_dir"]) and not flags["new_run"], resume)
    result = evaluate(config, request, registry, announce=announce)
    click.echo(inert(markdown(result.summary), keep_lines=True))
    click.echo(f"wrote {run_dir}/summary.md, summary.json, accuracy.png", err=True)
    shortfall = result.shortfall()
    if shortfall is not None:
        raise UsageError(f"{shortfall}; results so far are kept; to ask those queries again run: {resume}")


def _announcer(same: bool, resume: str) -> Callable[[str], None]:
    """Prints the line that opens a run dir, with how to resume it: the same command, or ``resume``."""

    def announce(line: str) -> None:
        click.echo(
            inert(line + (" (the same command resumes it if stopped)" if same else f"; to resume: {resume}")), err=True
        )

    return announce


def _options_given(ctx: click.Context, leave_out: tuple[str, ...] = ()) -> list[str]:
    """The options given on this command line, as words to run it again with (but those in ``leave_out``)."""
    words: list[str] = []
    for param in ctx.command.params:
        name = param.name
        if not isinstance(param, click.Option) or name is None or name in leave_out or name not in ctx.params:
            continue
        if ctx.get_parameter_source(name) is not click.core.ParameterSource.COMMANDLINE:
            continue
        flag, value = max(param.opts, key=len), ctx.params[name]
        if param.is_flag:
            words += [flag] if value else []
            continue
        for one in value if param.multiple else (value,):
            words += [flag, str(one)]
    return words


@eval_command.command("summary")
@click.argument("run_dir", type=click.Path(file_okay=False, exists=True))
@click.option("--rescore", is_flag=True, help="Score the recorded replies again with the current scorers.")
@click.option("--data-dir", type=click.Path(file_okay=False), help="Data for --rescore [env AGENTFLOW_DATA].")
def summary_command(run_dir: str, rescore: bool, data_dir: str | None) -> None:
    """Rebuild summary.md, summary.json and accuracy.png of RUN_DIR (also while it runs)."""
    from agentflow_core.plugins import load_registry
    from agentflow_rl.benchmarks.loaders import default_data_dir
    from agentflow_rl.eval.pipeline import finish
    from agentflow_rl.eval.report import markdown
    from agentflow_rl.eval.rundir import RunDir

    rescore_with = (load_registry(), Path(data_dir) if data_dir else default_data_dir()) if rescore else None
    click.echo(inert(markdown(finish(RunDir(run_dir), rescore_with=rescore_with)), keep_lines=True))


@eval_command.command("compare")
@click.argument("run_a", type=click.Path(file_okay=False, exists=True))
@click.argument("run_b", type=click.Path(file_okay=False, exists=True))
@click.option("--out", type=click.Path(dir_okay=False), help="PNG of the difference [default: RUN_B/compare.png].")
@click.option("--rescore", is_flag=True, help="Score the recorded replies of both runs with the current scorers.")
@click.option("--data-dir", type=click.Path(file_okay=False), help="Data for --rescore [env AGENTFLOW_DATA].")
def compare_command(run_a: str, run_b: str, out: str | None, rescore: bool, data_dir: str | None) -> None:
    """Accuracy of RUN_A and RUN_B per benchmark, with B - A, as a table and a PNG."""
    from agentflow_core.plugins import load_registry
    from agentflow_rl.benchmarks.loaders import default_data_dir
    from agentflow_rl.eval.plot import plot_compare
    from agentflow_rl.eval.report import compare_markdown
    from agentflow_rl.eval.rescore import rescore as score_again
    from agentflow_rl.eval.rundir import RunDir
    from agentflow_rl.eval.summary import summarize

    summaries = []
    for path in (run_a, run_b):
        run = RunDir(path)
        records = list(run.read().values())
        if not records:
            raise UsageError(f"{path} has no results.jsonl records")
        if rescore:
            records = score_again(records, load_registry(), Path(data_dir) if data_dir else default_data_dir())
        summaries.append(summarize(records, run.read_info(strict=False)))
    labels = (Path(run_a).name, Path(run_b).name)
    click.echo(inert(compare_markdown(summaries[0], summaries[1], labels), keep_lines=True))
    png = Path(out) if out else Path(run_b) / "compare.png"
    plot_compare(summaries[0], summaries[1], png, labels=labels)
    click.echo(f"wrote {png}", err=True)


@eval_command.command("trained")
@click.argument("training_run", type=click.Path(file_okay=False))
@click.option(
    "--run-dir",
    type=click.Path(file_okay=False),
    help="Both runs and their comparison go here [default: TRAINING_RUN/eval]; the same dir resumes them.",
)
@click.option(
    "--new-run",
    is_flag=True,
    help="Start anew: in RUN_DIR if it holds no run, else in the first free RUN_DIR-2, RUN_DIR-3, ...",
)
@click.option(
    "--serve",
    type=click.Choice([s.value for s in Serve]),
    default=Serve.VLLM.value,
    show_default=True,
    help="vllm: servers started for the eval; hf: transformers in this process.",
)
@click.option("--base-model", help="The model the run trained (a folder or hub id), if the run's own is not here.")
@click.option(
    "--vllm-python", metavar="PATH", help=f"An interpreter with vLLM [env {VLLM_PYTHON_VARIABLE}; default: this one]."
)
@click.option(
    "--vllm-args", metavar="ARGS", help="More `vllm serve` arguments, one quoted string: '--max-model-len 4096'."
)
@_sample_options
@_engine_options
@click.pass_context
def trained_command(ctx: click.Context, training_run: str, **flags: Any) -> None:
    """Evaluate a finished `agentflow train` run: its modules untrained and trained, side by side.

    Two eval runs of one agent, OUT/base and OUT/trained, differ only in the trained modules'
    weights; every other module keeps its engine from --config, else from the agent config the
    run trained in. OUT/compare.md compares them. The same command resumes both.
    """
    from agentflow_core.plugins import load_registry
    from agentflow_rl.eval.pipeline import load_tasks
    from agentflow_rl.eval.records import Mode
    from agentflow_rl.eval.rundir import new_run_dir
    from agentflow_rl.eval.trained.side_by_side import BASE_RUN, TRAINED_RUN, evaluate_side_by_side
    from agentflow_rl.eval.trained.training_run import read_training_run

    run = read_training_run(training_run, base_model=flags["base_model"])
    config = _trained_config(flags, run)
    registry = load_registry()
    out = Path(flags["run_dir"]) if flags["run_dir"] else run.path / "eval"
    if flags["new_run"]:
        out = new_run_dir(out, runs=(BASE_RUN, TRAINED_RUN))
    request = _request(flags, out, Mode.AGENT, registry)
    serving = _serving(flags, run, config, out)
    # Every data file read before any server starts: a missing one is one line, not a minute later.
    load_tasks([registry.benchmark(n).factory() for n in request.benchmarks], request.data_dir, None, 0)
    words = [*_options_given(ctx, ("run_dir", "new_run")), "--run-dir", str(out)]
    resume = shlex.join(["agentflow", "eval", "trained", training_run, *words])
    if Serve(flags["serve"]) is Serve.VLLM:
        click.echo(
            inert(f"starting vLLM for {', '.join(run.roles)} on {run.base_model} (logs in {out}/servers)"), err=True
        )
    with serving as engines:
        announce = _announcer(not flags["new_run"], resume)
        result = evaluate_side_by_side(config, run, engines, request, registry, announce=announce)
    click.echo(inert(result.comparison, keep_lines=True))
    click.echo(
        inert(
            f"wrote {out}/base and {out}/trained (each with summary.md), {out}/compare.md and compare.png; "
            f"browse both with: agentflow view {out}/base {out}/trained"
        ),
        err=True,
    )
    shortfall = result.shortfall()
    if shortfall is not None:
        raise UsageError(f"{shortfall}; results so far are kept; to ask those queries again run: {resume}")


def _trained_config(flags: dict[str, Any], run: TrainingRun) -> Any:
    """The agent the trained modules are evaluated in: ``--config``, else the one the run trained in."""
    import attrs

    for role in run.roles:
        if flags[f"{role}_engine"]:
            raise UsageError(f"--{role}-engine: the {role} is what {run.path} trained; its engine is the trained one")
    path = flags["config_path"] or run.agent_config
    if path is None and not run.records_task:
        raise UsageError(
            f"{run.path} trained in the synthetic task, whose agent answers only its own questions; "
            "give --config agentflow.toml, the agent to evaluate the trained modules in"
        )
    if flags["config_path"] is None and path is not None and not Path(path).is_file():
        raise UsageError(f"{run.path} trained in the agent of {path}, which is not there; give it with --config")
    config = build_config({**flags, "config_path": path})
    if flags["config_path"] is None:  # the run's own agent: with the modules whose prompts it trained
        config = attrs.evolve(config, modules=attrs.evolve(config.modules, **run.modules))
    return config


def _serving(flags: dict[str, Any], run: TrainingRun, config: Any, out: Path) -> contextlib.AbstractContextManager[Any]:
    """The trained modules' engines for both runs, on what ``--serve`` asks for: checked now, started when entered."""
    from agentflow_rl.eval.trained.serving import hf_engines, vllm_engines, vllm_python

    configured = {role: config.engines.for_module(role) for role in run.roles}
    if Serve(flags["serve"]) is Serve.HF:
        return contextlib.nullcontext(hf_engines(run, configured))
    python = vllm_python(flags["vllm_python"])
    try:
        extra = shlex.split(flags["vllm_args"] or "")
    except ValueError as exc:
        raise UsageError(f"--vllm-args: {exc}") from None
    return vllm_engines(run, configured, python=python, extra_args=extra, log_dir=out / "servers")


@click.group("data")
def data_command() -> None:
    """Benchmark data files."""


@data_command.command("download")
@click.option(
    "--benchmarks",
    default=PAPER_SETS,
    show_default=True,
    metavar="A,B",
    help="Sets to fetch; gaia and gpqa need HF_TOKEN.",
)
@click.option("--dest", type=click.Path(file_okay=False), help="Target directory [default: the data dir].")
@click.option("--source-url", help="Base URL of the reference repository's raw files [env AGENTFLOW_DATA_SOURCE].")
@click.option("--hub-url", help="Base URL of the Hugging Face hub [env HF_ENDPOINT].")
@click.option("--timeout", type=float, default=60.0, show_default=True, help="Seconds per request.")
def download_command(
    benchmarks: str, dest: str | None, source_url: str | None, hub_url: str | None, timeout: float
) -> None:
    """Fetch test sets from their public sources into the data directory."""
    from agentflow_rl.benchmarks.download import Hosts, download
    from agentflow_rl.benchmarks.loaders import default_data_dir

    hosts = Hosts.from_env(raw=source_url, hub=hub_url, timeout_s=timeout)
    target = Path(dest) if dest else default_data_dir()
    names = _split(benchmarks, "--benchmarks") or ()
    download(names, target, hosts, report=lambda line: click.echo(inert(line), err=True))


COMMANDS = (eval_command, data_command, train_command, view_command, adapters_command)
