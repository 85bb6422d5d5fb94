"""The evaluation runner: many queries in flight, resumable run directories, summaries and plots.

``evaluate(config, EvalRequest(...), registry)`` is what ``agentflow eval`` runs; the pieces
(``run_tasks``, ``RunDir``, ``summarize``) are usable on their own, e.g. by the training loop.
"""

from agentflow_rl.eval.pipeline import EvalRequest, evaluate, finish, load_tasks
from agentflow_rl.eval.records import EvalRecord, Mode, RunInfo
from agentflow_rl.eval.rundir import RunDir
from agentflow_rl.eval.runner import EvalTask, evaluate_one, pending, run_tasks
from agentflow_rl.eval.summary import BenchmarkSummary, RunSummary, summarize

__all__ = [
    "BenchmarkSummary",
    "EvalRecord",
    "EvalRequest",
    "EvalTask",
    "Mode",
    "RunDir",
    "RunInfo",
    "RunSummary",
    "evaluate",
    "evaluate_one",
    "finish",
    "load_tasks",
    "pending",
    "run_tasks",
    "summarize",
]
