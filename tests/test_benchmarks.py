"""Loading the shipped test sets, seeded samples, the registry, and `agentflow data download`."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

import agentflow_rl.plugin
from agentflow_core import UsageError
from agentflow_core.plugins import load_registry
from agentflow_rl.benchmarks import ALL_BENCHMARKS, PAPER_BENCHMARKS, DataMissing, sample
from agentflow_rl.benchmarks.download import DownloadError, Hosts, download
from tests.eval_support import COUNTS, DATA_DIR, needs_data, run_agentflow

BY_NAME = {b.name: b for b in ALL_BENCHMARKS}


@needs_data
@pytest.mark.parametrize("name", list(COUNTS))
def test_every_shipped_file_loads_whole(name: str) -> None:
    items = BY_NAME[name].load(DATA_DIR)
    assert len(items) == COUNTS[name]
    assert len({item.id for item in items}) == len(items)
    for item in items:
        assert item.benchmark == name
        assert item.question.strip() and "When ready, output the final answer" not in item.question
        assert item.answers and all(isinstance(a, str) and a.strip() for a in item.answers)


@needs_data
def test_medqa_options_become_choices_and_the_gold_names_one() -> None:
    items = BY_NAME["medqa"].load(DATA_DIR)
    for item in items:
        text, letter = item.answers
        assert set(item.choices) == {"A", "B", "C", "D"} and item.choices[letter] == text
        assert item.question.count("\nA. ") == 1 and item.question.endswith(f"D. {item.choices['D']}")


@needs_data
def test_game24_numbers_go_to_extra() -> None:
    first = BY_NAME["gameof24"].load(DATA_DIR)[0]
    assert first.extra["numbers"] == [1, 1, 1, 8] and first.answers == ("(1+1+1)×8",)
    assert first.question.startswith("Using the numbers [1, 1, 1, 8]")


@needs_data
def test_samples_are_fixed_by_the_seed_and_nested() -> None:
    items = BY_NAME["musique"].load(DATA_DIR)
    ids = lambda xs: [x.id for x in xs]  # noqa: E731
    assert ids(sample(items, 20, 0, name="musique")) == ids(sample(items, 20, 0, name="musique"))
    assert ids(sample(items, 20, 0, name="musique")) != ids(sample(items, 20, 1, name="musique"))
    assert set(ids(sample(items, 10, 3, name="musique"))) < set(ids(sample(items, 30, 3, name="musique")))
    assert len(sample(items, 1000, 0, name="musique")) == 200


def test_gated_sets_load_from_their_own_layouts(tmp_path: Path) -> None:
    gaia = [
        {"task_id": "t1", "Question": "How many?", "Final answer": "17", "Level": 1, "file_name": ""},
        {"task_id": "t2", "Question": "See the file", "Final answer": "x", "Level": 2, "file_name": "a.xlsx"},
    ]
    (tmp_path / "gaia.json").write_text("\n".join(json.dumps(r) for r in gaia))  # JSON lines, as the hub has it
    gpqa = [{"pid": "0", "question": "Q?", "choices": ["A. 0.9", "B. 0.7"], "answer": "B. 0.7"}]
    (tmp_path / "gpqa.json").write_text(json.dumps(gpqa))
    [only] = BY_NAME["gaia"].load(tmp_path)  # the item that needs an attachment is left out
    assert (only.id, only.question, only.answers, only.extra["level"]) == ("t1", "How many?", ("17",), "1")
    [question] = BY_NAME["gpqa"].load(tmp_path)
    assert question.choices == {"A": "0.9", "B": "0.7"} and question.answers == ("0.7", "B")
    assert BY_NAME["gpqa"].score(question, "B").correct and not BY_NAME["gpqa"].score(question, "0.9").correct


def test_a_missing_file_is_one_line_naming_it_and_the_fix(tmp_path: Path) -> None:
    with pytest.raises(DataMissing) as info:
        BY_NAME["bamboogle"].load(tmp_path)
    message = str(info.value)
    assert str(tmp_path / "bamboogle.json") in message and "agentflow data download" in message
    assert "\n" not in message
    (tmp_path / "amc23.json").write_text('[{"question": "q"}]')
    with pytest.raises(UsageError, match="record 0 is malformed"):
        BY_NAME["amc23"].load(tmp_path)


def test_the_plugin_registers_every_set() -> None:
    registry = load_registry(entry_points=False, extra=[agentflow_rl.plugin])
    assert list(registry.benchmarks) == [b.name for b in ALL_BENCHMARKS]
    assert {b.name for b in PAPER_BENCHMARKS} == set(COUNTS)
    bench = registry.benchmark("medqa").factory()
    assert (bench.name, bench.category) == ("medqa", "science")


# -- download, against a loopback server standing in for both hosts ------------------------------

GPQA_CSV = (
    "Record ID,Question,Correct Answer,Incorrect Answer 1,Incorrect Answer 2,Incorrect Answer 3\n"
    'rec1,"What is 2+2?",4,3,5,22\n'
)


class _Files(BaseHTTPRequestHandler):
    files: ClassVar[dict[str, bytes]] = {}
    token = "hf_secret"

    def do_GET(self) -> None:
        body = self.files.get(self.path)
        gated = "/datasets/" in self.path
        status = (
            404
            if body is None
            else 401
            if gated and self.headers.get("Authorization") != f"Bearer {self.token}"
            else 200
        )
        self.send_response(status)
        self.send_header("Content-Length", str(len(body or b"")) if status == 200 else "0")
        self.end_headers()
        if status == 200:
            self.wfile.write(body or b"")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def hosts() -> Iterator[str]:
    _Files.files = {
        "/raw/test/bamboogle/data/data.json": json.dumps([{"question": "q?", "answer": ["a"]}]).encode(),
        "/hub/datasets/Idavidrein/gpqa/resolve/main/gpqa_diamond.csv": GPQA_CSV.encode(),
    }
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Files)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_download_fetches_converts_and_loads(tmp_path: Path, hosts: str) -> None:
    urls = Hosts(raw=f"{hosts}/raw", hub=f"{hosts}/hub", token="hf_secret")
    written = download(["bamboogle", "gpqa"], tmp_path, urls, report=lambda _: None)
    assert [p.name for p in written] == ["bamboogle.json", "gpqa.json"]
    assert BY_NAME["bamboogle"].load(tmp_path)[0].answers == ("a",)
    [item] = BY_NAME["gpqa"].load(tmp_path)
    assert item.answers[0] == "4" and sorted(item.choices.values()) == ["22", "3", "4", "5"]
    assert not list(tmp_path.glob("*.part"))


def test_download_errors_say_what_to_do(tmp_path: Path, hosts: str) -> None:
    with pytest.raises(DownloadError, match=r"gated on Hugging Face.*HF_TOKEN"):
        download(["gpqa"], tmp_path, Hosts(raw=hosts, hub=f"{hosts}/hub", token=None))
    with pytest.raises(DownloadError, match=r"HTTP 401.*terms accepted"):
        download(["gpqa"], tmp_path, Hosts(raw=hosts, hub=f"{hosts}/hub", token="wrong"))
    with pytest.raises(DownloadError, match="HTTP 404"):
        download(["musique"], tmp_path, Hosts(raw=f"{hosts}/raw"))
    with pytest.raises(UsageError, match="no download source for nope"):
        download(["nope"], tmp_path, Hosts())


def test_download_cli_offline_is_one_line(tmp_path: Path) -> None:
    result = run_agentflow(
        "data",
        "download",
        "--benchmarks",
        "bamboogle",
        "--dest",
        str(tmp_path),
        "--source-url",
        "http://127.0.0.1:9",
        cwd=tmp_path,
    )
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "Error: bamboogle: cannot reach 127.0.0.1:9" in result.stderr and "network access" in result.stderr


def test_download_cli_writes_into_the_data_dir(tmp_path: Path, hosts: str) -> None:
    result = run_agentflow(
        "data",
        "download",
        "--benchmarks",
        "bamboogle",
        "--source-url",
        f"{hosts}/raw",
        cwd=tmp_path,
        env={"AGENTFLOW_DATA": str(tmp_path / "data")},
    )
    assert result.returncode == 0, result.stderr
    assert "bamboogle: 1 records" in result.stderr
    assert (tmp_path / "data" / "bamboogle.json").is_file()
