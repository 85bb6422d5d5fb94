"""The benchmarks AgentFlow ships: each one a data file, a record reader and a scorer.

The paper's eight test sets ship through the reference repository; GAIA and GPQA are gated on
Hugging Face (``agentflow data download`` fetches them with ``HF_TOKEN``). GAIA items that need an
attached file are left out, as in the paper's text-only subset.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import attrs

from agentflow_core import BenchmarkItem, Score
from agentflow_rl.benchmarks import loaders
from agentflow_rl.benchmarks.choice import score_choice
from agentflow_rl.benchmarks.game24 import score_game24
from agentflow_rl.benchmarks.math import score_math
from agentflow_rl.benchmarks.qa import score_qa

Scorer = Callable[[BenchmarkItem, str], Score]


@attrs.frozen
class FileBenchmark:
    """A :class:`agentflow_core.Benchmark` read from ``<data dir>/<file>``."""

    name: str
    category: str
    file: str
    reader: loaders.RecordReader = attrs.field(repr=False)
    scorer: Scorer = attrs.field(repr=False)
    #: Drops records the agent cannot attempt (GAIA items with attachments).
    keep: Callable[[BenchmarkItem], bool] | None = attrs.field(default=None, repr=False)

    def load(self, data_dir: Path) -> Sequence[BenchmarkItem]:
        items = loaders.load_file(self.name, Path(data_dir) / self.file, self.reader)
        return items if self.keep is None else [item for item in items if self.keep(item)]

    def score(self, item: BenchmarkItem, answer: str) -> Score:
        return self.scorer(item, answer)


def _without_attachment(item: BenchmarkItem) -> bool:
    return not item.extra.get("file_name")


#: The paper's eight test sets, in the order of its tables.
PAPER_BENCHMARKS: tuple[FileBenchmark, ...] = (
    FileBenchmark("bamboogle", "search", "bamboogle.json", loaders.record_qa, score_qa),
    FileBenchmark("2wiki", "search", "2wiki.json", loaders.record_qa, score_qa),
    FileBenchmark("hotpotqa", "search", "hotpotqa.json", loaders.record_qa, score_qa),
    FileBenchmark("musique", "search", "musique.json", loaders.record_qa, score_qa),
    FileBenchmark("gameof24", "math", "gameof24.json", loaders.record_game24, score_game24),
    FileBenchmark("aime24", "math", "aime24.json", loaders.record_qa, score_math),
    FileBenchmark("amc23", "math", "amc23.json", loaders.record_qa, score_math),
    FileBenchmark("medqa", "science", "medqa.json", loaders.record_choice, score_choice),
)

#: Gated sets: the user downloads them with their own Hugging Face token.
GATED_BENCHMARKS: tuple[FileBenchmark, ...] = (
    FileBenchmark("gaia", "agentic", "gaia.json", loaders.record_gaia, score_qa, keep=_without_attachment),
    FileBenchmark("gpqa", "science", "gpqa.json", loaders.record_choice, score_choice),
)

ALL_BENCHMARKS = PAPER_BENCHMARKS + GATED_BENCHMARKS
