"""Reading benchmark files into ``BenchmarkItem`` records, whatever their field names.

Each file is a JSON list (or JSON lines) of records as the paper's repository ships them
(``<data dir>/<name>.json``). The ``record_*`` functions below are the only code that knows those
field names: questions lose the answer-format instruction some files append ("When ready, output
the final answer enclosed in <answer> ... tags"), gold answers become a tuple of strings with
every alias, options become ``choices`` and Game of 24's numbers go to ``extra``.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from agentflow_core import BenchmarkItem, UsageError

#: A record of the source file and the item id the loader chose for it.
RecordReader = Callable[[str, str, Mapping[str, Any]], BenchmarkItem]

_INSTRUCTION = re.compile(r"\s*When ready, output the final answer enclosed in <answer>.*\Z", re.S)
_OPTION = re.compile(r"^\s*([A-Z])[.)]\s*(.*)$", re.S)


class DataMissing(UsageError):
    """A benchmark file is not in the data directory; the message names it and the fix."""


def default_data_dir(env: Mapping[str, str] | None = None) -> Path:
    """``AGENTFLOW_DATA``, else ``$XDG_CACHE_HOME/agentflow/benchmarks`` (``~/.cache/...``)."""
    env = os.environ if env is None else env
    if env.get("AGENTFLOW_DATA"):
        return Path(env["AGENTFLOW_DATA"]).expanduser()
    cache = Path(env.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "agentflow" / "benchmarks"


def read_records(name: str, path: Path) -> list[Mapping[str, Any]]:
    """The records of one file; a missing or unreadable file is one line naming it and the fix."""
    if not path.is_file():
        raise DataMissing(
            f"benchmark {name}: {path} not found; run `agentflow data download --benchmarks {name} "
            f"--dest {path.parent}` (or set AGENTFLOW_DATA / --data-dir to where the files are)"
        )
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text) if text.lstrip().startswith("[") else [json.loads(x) for x in text.splitlines() if x]
    except ValueError as exc:
        raise UsageError(f"benchmark {name}: {path} is not JSON or JSON lines: {exc}") from None
    if not isinstance(data, list) or not all(isinstance(r, Mapping) for r in data):
        raise UsageError(f"benchmark {name}: {path} must hold a list of JSON objects")
    return data


def item_ids(records: Sequence[Mapping[str, Any]]) -> list[str]:
    """The file's ``pid`` where it is unique, else the row number (MedQA repeats pids)."""
    pids = [str(r.get("pid", "")) for r in records]
    if all(pids) and len(set(pids)) == len(pids):
        return pids
    return [str(row) for row in range(len(records))]


def load_file(name: str, path: Path, reader: RecordReader) -> list[BenchmarkItem]:
    records = read_records(name, path)
    items = []
    for item_id, record in zip(item_ids(records), records, strict=True):
        try:
            items.append(reader(name, item_id, record))
        except (KeyError, TypeError, ValueError) as exc:
            raise UsageError(f"benchmark {name}: {path}: record {item_id} is malformed: {exc!r}") from None
    return items


def strip_instruction(question: str) -> str:
    return _INSTRUCTION.sub("", question).strip()


def gold_strings(answer: Any) -> tuple[str, ...]:
    """A gold answer, or a list of aliases, as strings (numbers written plainly)."""
    values = answer if isinstance(answer, list | tuple) else [answer]
    golds = tuple(str(v).strip() for v in values if v is not None and str(v).strip())
    if not golds:
        raise ValueError("no gold answer")
    return golds


def _question(record: Mapping[str, Any]) -> str:
    question = record.get("question") or record.get("query") or record.get("Question")
    if not isinstance(question, str) or not question.strip():
        raise ValueError("no question")
    return strip_instruction(question)


def record_qa(name: str, item_id: str, record: Mapping[str, Any]) -> BenchmarkItem:
    """Search QA and math sets: ``question``/``query`` and ``answer`` (a string, number or alias list)."""
    return BenchmarkItem(name, item_id, _question(record), gold_strings(record["answer"]))


def parse_options(options: Sequence[str]) -> dict[str, str]:
    """``["A. Rome", "B. Paris"]`` -> ``{"A": "Rome", "B": "Paris"}``."""
    choices = {}
    for option in options:
        found = _OPTION.match(option)
        if not found:
            raise ValueError(f"option {option!r} is not 'X. text'")
        choices[found.group(1)] = found.group(2).strip()
    return choices


def record_choice(name: str, item_id: str, record: Mapping[str, Any]) -> BenchmarkItem:
    """MedQA (``options``, answer text) and GPQA (``choices``, answer ``"A. text"``).

    The question is the stem followed by the options once (MedQA's ``question`` field repeats them).
    """
    choices = parse_options(record.get("options") or record["choices"])
    stem = re.split(r"\n\s*A[.)]\s", _question(record), maxsplit=1)[0].strip()
    question = stem + "\n" + "\n".join(f"{letter}. {text}" for letter, text in choices.items())
    answer = str(record["answer"]).strip()
    labelled = _OPTION.match(answer)
    if labelled and labelled.group(1) in choices:
        answer = labelled.group(2).strip()
    letters = [letter for letter, text in choices.items() if text == answer]
    if not letters:
        raise ValueError(f"the answer {answer!r} is none of the options")
    return BenchmarkItem(name, item_id, question, (answer, letters[0]), choices=choices)


def record_game24(name: str, item_id: str, record: Mapping[str, Any]) -> BenchmarkItem:
    """Game of 24: ``question`` is the number list and ``query`` the task; ``answer`` lists known solutions."""
    numbers = [int(n) for n in record["question"]]
    task = record.get("query") or f"Using the numbers {numbers}, create an expression that equals 24."
    return BenchmarkItem(
        name, item_id, strip_instruction(task), gold_strings(record["answer"]), extra={"numbers": numbers}
    )


def record_gaia(name: str, item_id: str, record: Mapping[str, Any]) -> BenchmarkItem:
    """GAIA, from the paper's ``data.json`` or Hugging Face's ``metadata.jsonl`` field names."""
    answer = record.get("answer", record.get("Final answer"))
    extra = {
        "level": str(record.get("Level", "")),
        "task_id": str(record.get("task_id", "")),
        "file_name": str(record.get("file_name") or ""),
    }
    return BenchmarkItem(
        name, str(record.get("task_id") or item_id), _question(record), gold_strings(answer), extra=extra
    )
