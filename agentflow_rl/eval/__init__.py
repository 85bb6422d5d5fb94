"""The evaluation runner: many queries in flight, resumable run directories, summaries and plots.

``evaluate(config, EvalRequest(...), registry)`` is what ``agentflow eval`` runs; it returns an
``EvalOutcome`` whose ``shortfall()`` says which queries still lack a usable result. The pieces
(``run_tasks``, ``RunDir``, ``summarize``) are usable on their own, e.g. by the training loop.
"""

from agentflow_rl.eval.outcome import EvalOutcome
from agentflow_rl.eval.pipeline import EvalRequest, evaluate, finish, load_tasks
from agentflow_rl.eval.records import EvalRecord, Failure, Mode, RunInfo
from agentflow_rl.eval.rundir import RunDir, new_run_dir
from agentflow_rl.eval.runner import EvalTask, evaluate_one, pending, run_tasks
from agentflow_rl.eval.summary import BenchmarkSummary, RunSummary, summarize

__all__ = [
    "BenchmarkSummary",
    "EvalOutcome",
    "EvalRecord",
    "EvalRequest",
    "EvalTask",
    "Failure",
    "Mode",
    "RunDir",
    "RunInfo",
    "RunSummary",
    "evaluate",
    "evaluate_one",
    "finish",
    "load_tasks",
    "new_run_dir",
    "pending",
    "run_tasks",
    "summarize",
]
