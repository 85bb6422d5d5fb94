"""Training questions with gold answers, and the seeded order in which the trainer reads them.

Files are JSONL (one object a line) or parquet. Field names vary between sources, so a record
takes its question from the first of ``question``/``query``/``problem``/``prompt``, its gold
answers from ``answers`` (a list) or ``answer``/``result``/``gold`` (one value), and its gold tool
(the tool the planner should pick first, for the ``tool_choice`` reward) from ``tool`` or
``gold_tool``. A row needs a gold answer, a gold tool, or both; ``id`` is optional::

    {"id": "q1", "question": "What is 37 * 41?", "answers": ["1517"], "tool": "python_coder"}
    {"question": "Where was Ada Lovelace born?", "tool": "wikipedia_search"}
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import attrs

from agentflow_core import ConfigError

_QUESTION_KEYS = ("question", "query", "problem", "prompt")
_ANSWER_KEYS = ("answers", "answer", "result", "gold")
_TOOL_KEYS = ("tool", "gold_tool")


@attrs.frozen
class TrainRecord:
    id: str
    question: str
    #: Every accepted gold answer (may be empty when the record has a gold tool).
    answers: tuple[str, ...]
    #: The tool the planner should choose first, when the record says.
    tool: str | None = None


def bundled_sample() -> Path:
    """A small JSONL of synthetic questions shipped with the package, for examples and tests."""
    return Path(str(resources.files("agentflow_rl.flow_grpo.tasks") / "data" / "synthetic_sample.jsonl"))


def load_records(path: str | Path) -> list[TrainRecord]:
    """Read a JSONL or parquet file; errors name the file and the line."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"training data {path} does not exist")
    rows = _parquet_rows(path) if path.suffix == ".parquet" else _jsonl_rows(path)
    return [_record(row, f"{path}:{n}") for n, row in rows]


def _jsonl_rows(path: Path) -> Iterator[tuple[int, Any]]:
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                yield n, json.loads(line)
            except ValueError as exc:
                raise ConfigError(f"{path}:{n}: not JSON: {exc}") from None


def _parquet_rows(path: Path) -> Iterator[tuple[int, Any]]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise ConfigError(f"{path}: reading parquet needs pyarrow: pip install pyarrow") from None
    yield from enumerate(pq.read_table(path).to_pylist(), 1)


def _record(row: Any, where: str) -> TrainRecord:
    if not isinstance(row, Mapping):
        raise ConfigError(f"{where}: expected an object, got {type(row).__name__}")
    question = next((row[k] for k in _QUESTION_KEYS if isinstance(row.get(k), str)), None)
    if question is None:
        raise ConfigError(f"{where}: no question; give one of {', '.join(_QUESTION_KEYS)}")
    raw = next((row[k] for k in _ANSWER_KEYS if row.get(k) is not None), None)
    tool = next((row[k] for k in _TOOL_KEYS if row.get(k) is not None), None)
    if tool is not None and (not isinstance(tool, str) or not tool.strip()):
        raise ConfigError(f"{where}: the gold tool must be a tool name, got {tool!r}")
    if raw is None and tool is None:
        raise ConfigError(f"{where}: no gold answer or gold tool; give one of {', '.join(_ANSWER_KEYS + _TOOL_KEYS)}")
    answers = () if raw is None else tuple(str(a) for a in raw) if isinstance(raw, list | tuple) else (str(raw),)
    return TrainRecord(id=str(row.get("id", where.rpartition(":")[2])), question=question, answers=answers, tool=tool)


def write_records(records: Sequence[TrainRecord], path: str | Path) -> None:
    lines = [
        json.dumps(
            {"id": r.id, "question": r.question, "answers": list(r.answers), **({"tool": r.tool} if r.tool else {})}
        )
        for r in records
    ]
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")


class RecordStream:
    """Endless batches: each epoch a fresh seeded shuffle, so a position number fixes the order.

    The trainer checkpoints ``position`` (records handed out so far); a resumed run continues
    with exactly the questions the killed one would have seen next.
    """

    def __init__(self, records: Sequence[TrainRecord], seed: int) -> None:
        if not records:
            raise ConfigError("no training questions")
        self._records = list(records)
        self._seed = seed
        self._epoch_order: tuple[int, list[int]] = (-1, [])
        self.position = 0

    def _order(self, epoch: int) -> list[int]:
        if self._epoch_order[0] != epoch:
            order = list(range(len(self._records)))
            random.Random(self._seed * 1_000_003 + epoch).shuffle(order)
            self._epoch_order = (epoch, order)
        return self._epoch_order[1]

    def next_batch(self, size: int) -> list[TrainRecord]:
        batch = []
        for _ in range(size):
            epoch, index = divmod(self.position, len(self._records))
            batch.append(self._records[self._order(epoch)[index]])
            self.position += 1
        return batch

    def state_dict(self) -> dict[str, int]:
        return {"position": self.position}

    def load_state_dict(self, state: Mapping[str, int]) -> None:
        self.position = int(state["position"])
