"""Two eval runs of one agent, its trained modules without and with their training, and one comparison.

``OUT/base`` and ``OUT/trained`` are ordinary eval run directories (locked while they run, resumed
by the same command, refusing other settings): the same sample, tools, limits and engines, except
that each trained module runs on the untrained base in one and on its trained weights in the other.
``OUT/compare.md`` and ``OUT/compare.png`` are ``agentflow eval compare``'s table and plot of the two.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from pathlib import Path

import attrs

from agentflow_core import Config, EngineConfig, UsageError
from agentflow_core.files import write_atomic
from agentflow_core.records import ModuleRole
from agentflow_core.registry import Registry
from agentflow_rl.eval.outcome import EvalOutcome
from agentflow_rl.eval.pipeline import EvalRequest, evaluate
from agentflow_rl.eval.plot import plot_compare
from agentflow_rl.eval.report import compare_markdown
from agentflow_rl.eval.trained.serving import TrainedEngines
from agentflow_rl.eval.trained.training_run import TrainingRun

BASE_RUN, TRAINED_RUN = "base", "trained"
COMPARE_MD, COMPARE_PNG = "compare.md", "compare.png"


@attrs.frozen
class SideBySide:
    base: EvalOutcome
    trained: EvalOutcome
    #: The comparison table, as written to ``compare.md``.
    comparison: str

    def shortfall(self) -> str | None:
        """One line naming each run that has queries without a usable result, or ``None``."""
        runs = ((BASE_RUN, self.base.shortfall()), (TRAINED_RUN, self.trained.shortfall()))
        return "; ".join(f"{name}: {line}" for name, line in runs if line) or None


def evaluate_side_by_side(
    config: Config,
    run: TrainingRun,
    engines: TrainedEngines,
    request: EvalRequest,
    registry: Registry,
    *,
    announce: Callable[[str], None] | None = None,
) -> SideBySide:
    """Evaluate ``request`` twice under ``request.run_dir`` (``base``, then ``trained``), then compare.

    ``config`` is the agent; only the trained modules' engines differ between the two runs.
    """
    out = request.run_dir
    outcomes = {}
    for name, chosen, weights in (
        (BASE_RUN, engines.base, {role: f"untrained {run.base_model}" for role in run.roles}),
        (TRAINED_RUN, engines.trained, {role: run.digest(role) for role in run.roles}),
    ):
        one = attrs.evolve(
            request,
            run_dir=out / name,
            identity={f"{role}.weights": value for role, value in weights.items()},
        )
        said = (lambda line, name=name: announce(f"{name}: {line}")) if announce else None
        outcomes[name] = evaluate(_with_engines(config, chosen), one, registry, announce=said)
    base, trained = outcomes[BASE_RUN], outcomes[TRAINED_RUN]
    return SideBySide(base, trained, _compare(base, trained, run, out))


def _with_engines(config: Config, chosen: Mapping[ModuleRole, EngineConfig]) -> Config:
    return attrs.evolve(config, engines=config.engines.replacing(chosen))


def _compare(base: EvalOutcome, trained: EvalOutcome, run: TrainingRun, out: Path) -> str:
    """``compare.md`` (what was compared, then the table) and ``compare.png``, written beside the runs."""
    modules = ", ".join(run.roles)
    text = (
        f"{BASE_RUN}: {modules} on the untrained base ({run.base_model}); "
        f"{TRAINED_RUN}: {modules} as trained in {run.path}. Every other setting is the same.\n\n"
        + compare_markdown(base.summary, trained.summary, (BASE_RUN, TRAINED_RUN))
    )
    write_atomic(out / COMPARE_MD, text)
    try:
        plot_compare(base.summary, trained.summary, out / COMPARE_PNG, labels=(BASE_RUN, TRAINED_RUN))
    except UsageError as exc:  # no matplotlib, or nothing in common yet: the table matters more
        warnings.warn(f"no comparison plot: {exc}", stacklevel=2)
    return text
