"""Benchmarks: loaders that normalise the paper's files into ``BenchmarkItem`` records, and scorers.

Scorers are deterministic and need no model: normalised exact match and token F1 for QA
(:mod:`.qa`), symbolic equivalence for math (:mod:`.math`), option letter or text for multiple
choice (:mod:`.choice`) and an exact checker for Game of 24 (:mod:`.game24`). The sets themselves
are registered through the ``register_benchmarks`` hook by :mod:`agentflow_rl.plugin`.
"""

from agentflow_rl.benchmarks.catalog import ALL_BENCHMARKS, GATED_BENCHMARKS, PAPER_BENCHMARKS, FileBenchmark
from agentflow_rl.benchmarks.loaders import DataMissing, default_data_dir
from agentflow_rl.benchmarks.sampling import sample

__all__ = [
    "ALL_BENCHMARKS",
    "GATED_BENCHMARKS",
    "PAPER_BENCHMARKS",
    "DataMissing",
    "FileBenchmark",
    "default_data_dir",
    "sample",
]
