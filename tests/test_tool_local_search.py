"""local_search on a small Search-R1-style corpus written by each test."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from agentflow_core import ToolContext, ToolError
from agentflow_tools.local_search import LocalSearch, build_index
from agentflow_tools.search import local_index

TOWNS = ["Ashford", "Brayton", "Calder", "Dunmore", "Elswick", "Fenwick", "Garth", "Hollin"]
TRADES = ["wool", "cheese", "pottery", "timber", "salt", "glass"]
CURIE = (
    "Marie Curie was a physicist and chemist who conducted pioneering research on radioactivity. "
    "She won the Nobel Prize in Physics in 1903 and the Nobel Prize in Chemistry in 1911."
)


def write_corpus(path: Path, extra: list[dict[str, str]] | None = None) -> Path:
    """48 filler passages about market towns, plus two that queries are meant to find."""
    records = [
        {"id": str(i), "contents": f'"{TOWNS[i % 8]} {i}"\n{TOWNS[i % 8]} is a market town known for its '
         f"{TRADES[i % 6]} trade and a river crossing built in the year {1200 + i}."}
        for i in range(48)
    ]  # fmt: skip
    records.append({"id": "curie", "contents": f'"Marie Curie"\n{CURIE}'})
    records.append({"id": "owl", "contents": '"Barn owl"\nThe barn owl hunts voles and nests in old barns.'})
    path.write_text("".join(json.dumps(r) + "\n" for r in [*records, *(extra or [])]), encoding="utf-8")
    return path


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    return write_corpus(tmp_path / "wiki.jsonl")


def tool(corpus: Path, **settings: object) -> LocalSearch:
    return LocalSearch(ToolContext(engine=None, settings={"corpus": str(corpus), **settings}))


async def test_first_search_builds_the_index_and_finds_the_passage(corpus: Path) -> None:
    search = tool(corpus, top_k=3)
    output = await search.run({"query": "Which Nobel Prizes did Marie Curie win?"})
    await search.aclose()

    lines = output.text.splitlines()
    assert lines[:3] == ["Passages for 'Which Nobel Prizes did Marie Curie win?':", "[1] Marie Curie", CURIE]
    # The best passage's names, numbers and phrases, less the question's words: the generator's shortlist.
    assert output.candidates[:4] == ("physicist", "chemist", "conducted pioneering research", "radioactivity")
    assert {"1903", "1911", "Physics", "Chemistry"} <= set(output.candidates)
    assert not {"Marie Curie", "Nobel", "She"} & set(output.candidates)
    assert (corpus.parent / "wiki.jsonl.bm25s" / local_index.MANIFEST).is_file()


async def test_a_second_instance_loads_the_saved_index_memory_mapped(
    corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = tool(corpus)
    await first.run({"query": "barn owl"})
    await first.aclose()
    manifest = corpus.parent / "wiki.jsonl.bm25s" / local_index.MANIFEST
    built_at = manifest.stat().st_mtime_ns

    builds: list[Path] = []
    monkeypatch.setattr(local_index, "build_index", lambda corpus, index_dir=None: builds.append(corpus))
    second = tool(corpus)
    output = await second.run({"query": "what do barn owls hunt", "top_k": 1})

    assert builds == [] and manifest.stat().st_mtime_ns == built_at
    assert output.text.splitlines()[1:] == ["[1] Barn owl", "The barn owl hunts voles and nests in old barns."]
    assert second.index is not None
    assert isinstance(second.index.retriever.scores["data"], np.memmap)
    assert type(second.index.documents).__name__ == "JsonlCorpus"  # passages read from disk on demand
    await second.aclose()


async def test_a_changed_corpus_is_reindexed(corpus: Path) -> None:
    first = tool(corpus)
    await first.run({"query": "barn owl"})
    await first.aclose()
    heron = {"id": "heron", "contents": '"Grey heron"\nThe grey heron wades in shallow water to catch fish.'}
    write_corpus(corpus, extra=[heron])
    later = os.stat(corpus).st_mtime_ns + 2_000_000_000
    os.utime(corpus, ns=(later, later))  # coarse file-system clocks could otherwise hide the change

    second = tool(corpus)
    output = await second.run({"query": "grey heron", "top_k": 1})
    await second.aclose()
    assert output.text.splitlines()[1] == "[1] Grey heron"


async def test_build_index_ahead_of_time_into_a_chosen_folder(
    corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = build_index(corpus, tmp_path / "indexes" / "wiki")
    assert folder == tmp_path / "indexes" / "wiki"
    monkeypatch.setattr(local_index, "build_index", lambda *args: pytest.fail("rebuilt a fresh index"))

    output = await tool(corpus, index_dir=str(folder)).run({"query": "salt trade Brayton", "top_k": 2})
    assert output.text.splitlines()[1].startswith("[1] Brayton ")
    assert not (corpus.parent / "wiki.jsonl.bm25s").exists()


async def test_no_match_says_so(corpus: Path) -> None:
    output = await tool(corpus).run({"query": "zeppelin quasar"})
    assert output.text == "No passage in the collection matches 'zeppelin quasar'. Try other words."
    assert output.candidates == ()


@pytest.mark.parametrize(
    ("line", "error"),
    [
        ('{"id": "x", "contents": "\\"T\\"\\ntext"', r"wiki\.jsonl line 3: not valid JSON"),
        ('["a", "list"]', r"wiki\.jsonl line 3: expected a JSON object, got list"),
        ('{"id": "x", "body": "text"}', r'wiki\.jsonl line 3: no "contents" string'),
    ],
)
async def test_a_malformed_line_is_named(tmp_path: Path, line: str, error: str) -> None:
    good = json.dumps({"id": "1", "contents": '"Owl"\nOwls hunt at night.'})
    corpus = tmp_path / "wiki.jsonl"
    corpus.write_text(f"{good}\n{good}\n{line}\n{good}\n", encoding="utf-8")
    with pytest.raises(ToolError, match=error):
        await tool(corpus).run({"query": "owl"})
    assert not (tmp_path / "wiki.jsonl.bm25s").exists()


def test_title_and_text_fields_are_read_too(tmp_path: Path) -> None:
    corpus = tmp_path / "c.jsonl"
    corpus.write_text(json.dumps({"id": 7, "title": "Owl", "text": "Owls hunt."}) + "\n\n", encoding="utf-8")
    assert local_index.read_corpus(corpus) == [{"id": "7", "title": "Owl", "text": "Owls hunt."}]


def test_split_contents() -> None:
    assert local_index.split_contents('"Barn owl"\nThe barn owl.\nMore.') == ("Barn owl", "The barn owl.\nMore.")
    assert local_index.split_contents("no title line") == ("", "no title line")


def test_a_missing_corpus_fails_at_construction(tmp_path: Path) -> None:
    with pytest.raises(ToolError, match=r"corpus: .*missing\.jsonl is not a file"):
        tool(tmp_path / "missing.jsonl")
