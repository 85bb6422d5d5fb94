"""What a benchmark is, as far as the plugin API is concerned.

The evaluation runner (``agentflow_rl``) drives benchmarks; the core only defines the contract
so that a third-party package can register one through ``register_benchmarks``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import attrs


@attrs.frozen
class BenchmarkItem:
    """One question, normalised whatever the source file's field names were."""

    benchmark: str
    id: str
    question: str
    #: Every accepted gold answer (aliases included); scorers accept any of them.
    answers: tuple[str, ...]
    #: Multiple-choice options, letter to text.
    choices: Mapping[str, str] = attrs.field(factory=dict)
    #: Source fields that scorers may need (e.g. Game of 24's numbers).
    extra: Mapping[str, Any] = attrs.field(factory=dict)


@attrs.frozen
class Score:
    correct: bool
    #: A graded value in [0, 1] where the method has one (token F1); else 0 or 1.
    value: float
    #: Which scorer decided, e.g. ``exact_match``, ``math_verify``, ``game24``, ``llm_judge``.
    method: str
    #: The part of the answer that was compared.
    extracted: str = ""


class Benchmark(Protocol):
    name: str
    #: ``search``, ``agentic``, ``math`` or ``science``, for grouping in reports.
    category: str

    def load(self, data_dir: Path) -> Sequence[BenchmarkItem]: ...

    def score(self, item: BenchmarkItem, answer: str) -> Score: ...


class BenchmarkFactory(Protocol):
    def __call__(self) -> Benchmark: ...
