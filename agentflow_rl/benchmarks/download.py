"""``agentflow data download``: fetch the test sets from their public sources into a data directory.

The paper's eight sets are the reference repository's ``test/<name>/data/data.json`` files; GAIA
and GPQA are gated Hugging Face datasets, fetched with the user's ``HF_TOKEN`` after they accepted
the terms on the dataset page, and converted to the same list-of-records layout. Both hosts can be
redirected (``--source-url`` / ``AGENTFLOW_DATA_SOURCE``, ``--hub-url`` / ``HF_ENDPOINT``), which is
how the tests serve them from 127.0.0.1. Files are written atomically, so an interrupted download
never leaves a half file that the loader would trip over.
"""

from __future__ import annotations

import csv
import io
import json
import os
import random
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from agentflow_core import UsageError

REFERENCE_RAW = "https://raw.githubusercontent.com/lupantech/AgentFlow/main"
HUB = "https://huggingface.co"
GAIA_PAGE = "https://huggingface.co/datasets/gaia-benchmark/GAIA"
GPQA_PAGE = "https://huggingface.co/datasets/Idavidrein/gpqa"


class DownloadError(UsageError):
    """A set could not be fetched; the message names the set, the URL and what to do."""


@attrs.frozen
class Source:
    name: str
    #: ``raw``: the reference repository; ``hub``: a gated Hugging Face dataset.
    host: str
    path: str
    #: Turns the downloaded bytes into the records the loader reads.
    convert: Callable[[bytes], list[dict[str, Any]]]
    page: str = ""


def _json_list(data: bytes) -> list[dict[str, Any]]:
    records = json.loads(data)
    if not isinstance(records, list):
        raise ValueError("expected a JSON list of records")
    return records


def gaia_records(data: bytes) -> list[dict[str, Any]]:
    """GAIA's ``metadata.jsonl`` (validation split: the answers are public there)."""
    rows = [json.loads(line) for line in data.decode("utf-8").splitlines() if line.strip()]
    return [
        {
            "pid": str(i),
            "task_id": row["task_id"],
            "question": row["Question"],
            "answer": row["Final answer"],
            "Level": row.get("Level"),
            "file_name": row.get("file_name", ""),
        }
        for i, row in enumerate(rows)
    ]


def gpqa_records(data: bytes) -> list[dict[str, Any]]:
    """GPQA's CSV: the correct answer and three distractors, shuffled with a per-question seed."""
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8"))))
    records = []
    for i, row in enumerate(rows):
        options = [row["Correct Answer"], *(row[f"Incorrect Answer {k}"] for k in (1, 2, 3))]
        options = [" ".join(o.split()) for o in options]
        correct = options[0]
        random.Random(row.get("Record ID") or str(i)).shuffle(options)
        choices = [f"{letter}. {text}" for letter, text in zip("ABCD", options, strict=True)]
        answer = choices[options.index(correct)]
        records.append({"pid": str(i), "question": row["Question"].strip(), "choices": choices, "answer": answer})
    return records


SOURCES: Mapping[str, Source] = {
    **{
        name: Source(name, "raw", f"test/{name}/data/data.json", _json_list)
        for name in ("bamboogle", "2wiki", "hotpotqa", "musique", "gameof24", "aime24", "amc23", "medqa")
    },
    "gaia": Source(
        "gaia",
        "hub",
        "datasets/gaia-benchmark/GAIA/resolve/main/2023/validation/metadata.jsonl",
        gaia_records,
        GAIA_PAGE,
    ),
    "gpqa": Source("gpqa", "hub", "datasets/Idavidrein/gpqa/resolve/main/gpqa_diamond.csv", gpqa_records, GPQA_PAGE),
}


@attrs.frozen
class Hosts:
    raw: str = REFERENCE_RAW
    hub: str = HUB
    token: str | None = None
    timeout_s: float = 60.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Hosts:
        env = os.environ if env is None else env
        given = {k: v for k, v in overrides.items() if v is not None}
        return cls(
            raw=given.get("raw") or env.get("AGENTFLOW_DATA_SOURCE") or REFERENCE_RAW,
            hub=given.get("hub") or env.get("HF_ENDPOINT") or HUB,
            token=given.get("token") or env.get("HF_TOKEN") or env.get("HUGGING_FACE_HUB_TOKEN"),
            timeout_s=given.get("timeout_s", 60.0),
        )


def download(names: Sequence[str], dest: Path, hosts: Hosts, *, report: Callable[[str], None] = print) -> list[Path]:
    unknown = [n for n in names if n not in SOURCES]
    if unknown:
        raise UsageError(f"no download source for {', '.join(unknown)}; known: {', '.join(SOURCES)}")
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for name in names:
        records = fetch(SOURCES[name], hosts)
        path = dest / f"{name}.json"
        tmp = path.with_suffix(".json.part")
        tmp.write_text(json.dumps(records, ensure_ascii=False, indent=1), encoding="utf-8")
        tmp.replace(path)
        report(f"{name}: {len(records)} records -> {path}")
        written.append(path)
    return written


def fetch(source: Source, hosts: Hosts) -> list[dict[str, Any]]:
    base = hosts.raw if source.host == "raw" else hosts.hub
    url = f"{base.rstrip('/')}/{source.path}"
    headers = {"User-Agent": "agentflow-data-download"}
    if source.host == "hub":
        if not hosts.token:
            raise DownloadError(
                f"{source.name} is gated on Hugging Face: accept its terms at {source.page}, "
                "then export HF_TOKEN=<a token with read access> and run again"
            )
        headers["Authorization"] = f"Bearer {hosts.token}"
    data = _get(source.name, url, headers, hosts.timeout_s, source.page)
    try:
        return source.convert(data)
    except (ValueError, KeyError, UnicodeDecodeError) as exc:
        raise DownloadError(f"{source.name}: {url} did not return the expected data: {exc!r}") from None


def _get(name: str, url: str, headers: Mapping[str, str], timeout_s: float, page: str) -> bytes:
    request = urllib.request.Request(url, headers=dict(headers))
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return bytes(response.read())
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 403) and page:
            raise DownloadError(
                f"{name}: HTTP {exc.code} from {url}: is HF_TOKEN valid, and were the terms accepted at {page}?"
            ) from None
        raise DownloadError(f"{name}: HTTP {exc.code} from {url}") from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        host = urllib.parse.urlsplit(url).netloc
        raise DownloadError(
            f"{name}: cannot reach {host} ({reason}); `agentflow data download` needs network access, "
            "or copy the files into the data directory by hand"
        ) from None
