"""A BM25 index over a JSONL passage corpus: built once, saved, then memory-mapped.

The corpus format is the one Search-R1 and FlashRAG ship their Wikipedia dumps in, one JSON
object per line::

    {"id": "12", "contents": "\\"Barn owl\\"\\nThe barn owl is the most widely distributed owl..."}

``contents`` is the title in double quotes, a newline, then the passage text. Lines with
separate ``"title"`` and ``"text"`` fields are read as well. The index lives in a folder
(by default ``<corpus>.bm25s/`` next to the corpus) holding bm25s's arrays, a copy of the
passages, and ``agentflow-index.json``, which records the corpus's size and modification time:
when either changes, the next use rebuilds. Loading maps the arrays and passages from disk
(``mmap=True``), so a corpus of millions of passages costs little memory after the one build.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs

from agentflow_core import ToolError
from agentflow_tools.search.bm25 import STEMMER, query_terms, tokenize_corpus
from agentflow_tools.search.extras import need

MANIFEST = "agentflow-index.json"
#: Bumped when what is saved changes; an index of another format is rebuilt.
FORMAT = 1


@attrs.frozen
class Hit:
    id: str
    title: str
    text: str
    score: float


@attrs.frozen
class LoadedIndex:
    #: A ``bm25s.BM25`` whose score arrays are memory-mapped.
    retriever: Any
    #: The passages, indexable by document number (bm25s's memory-mapped ``JsonlCorpus``).
    documents: Any
    stemmer: str | None
    directory: Path


def default_index_dir(corpus: Path) -> Path:
    """``wiki.jsonl`` -> ``wiki.jsonl.bm25s``, next to the corpus."""
    return corpus.with_name(corpus.name + ".bm25s")


def build_index(corpus: str | os.PathLike[str], index_dir: str | os.PathLike[str] | None = None) -> Path:
    """Index ``corpus`` into ``index_dir`` (default: next to it) and return the folder.

    Safe to call from a script before the agent runs, so that the first search is fast. The
    new index is written to a staging folder and swapped in at the end, so a crash midway
    leaves the old index (or none), never half of one.
    """
    bm25s = need("bm25s")
    corpus, target = Path(corpus), Path(index_dir) if index_dir else default_index_dir(Path(corpus))
    stat = _corpus_stat(corpus)
    documents = read_corpus(corpus)
    tokens = tokenize_corpus([f"{doc['title']}\n{doc['text']}" for doc in documents])
    if not tokens.vocab:
        raise ToolError(f"{corpus}: no passage has a searchable word (only stop words or punctuation)")
    retriever = bm25s.BM25()
    retriever.index(tokens, show_progress=False)
    staging = target.with_name(f".{target.name}.building-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    retriever.save(staging, corpus=documents, show_progress=False)
    manifest = {
        "format": FORMAT,
        "corpus": str(corpus.resolve()),
        "corpus_bytes": stat.st_size,
        "corpus_mtime_ns": stat.st_mtime_ns,
        "documents": len(documents),
        "stemmer": STEMMER,
    }
    (staging / MANIFEST).write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    _swap_in(staging, target)
    return target


def is_fresh(corpus: Path, index_dir: Path) -> bool:
    """Whether ``index_dir`` holds an index of ``corpus`` as it is now."""
    manifest = _read_manifest(index_dir)
    stat = _corpus_stat(corpus)
    return (
        manifest is not None
        and manifest.get("format") == FORMAT
        and manifest.get("corpus_bytes") == stat.st_size
        and manifest.get("corpus_mtime_ns") == stat.st_mtime_ns
    )


def load_index(index_dir: Path) -> LoadedIndex:
    """Open a saved index with its arrays and passages memory-mapped."""
    bm25s = need("bm25s")
    manifest = _read_manifest(index_dir)
    if manifest is None:
        raise ToolError(f"{index_dir} is not an index built by build_index (no {MANIFEST})")
    retriever = bm25s.BM25.load(index_dir, load_corpus=True, mmap=True, show_progress=False, verbosity=0)
    return LoadedIndex(retriever, retriever.corpus, manifest.get("stemmer"), index_dir)


def open_index(corpus: Path, index_dir: Path | None = None) -> LoadedIndex:
    """Load the index of ``corpus``, building it first if it is missing or older than the corpus."""
    index_dir = index_dir or default_index_dir(corpus)
    if not is_fresh(corpus, index_dir):
        build_index(corpus, index_dir)
    return load_index(index_dir)


def search(index: LoadedIndex, query: str, k: int) -> list[Hit]:
    """The ``k`` best passages for ``query``; fewer, or none, when fewer contain a query word."""
    terms = query_terms(query, index.retriever.vocab_dict, index.stemmer)
    if not terms:
        return []
    k = min(k, int(index.retriever.scores["num_docs"]))
    # The index was loaded with its passages, so bm25s hands back the passages themselves.
    documents, scores = index.retriever.retrieve([terms], k=k, show_progress=False)
    return [
        Hit(str(doc["id"]), str(doc["title"]), str(doc["text"]), float(score))
        for doc, score in zip(documents[0], scores[0], strict=True)
        if score > 0
    ]


# -- the corpus ---------------------------------------------------------------------------


def read_corpus(corpus: Path) -> list[dict[str, str]]:
    """Every passage of ``corpus`` as ``{"id", "title", "text"}``; errors name the line."""
    documents = [_parse_line(line, number, corpus) for number, line in _lines(corpus) if line.strip()]
    if not documents:
        raise ToolError(f"{corpus}: the corpus has no passages")
    return documents


def split_contents(contents: str) -> tuple[str, str]:
    """``'"Title"\\ntext'`` -> ``("Title", "text")``; without a newline there is no title."""
    first, newline, rest = contents.partition("\n")
    if not newline:
        return "", contents.strip()
    title = first.strip()
    if len(title) >= 2 and title[0] == title[-1] == '"':
        title = title[1:-1]
    return title, rest.strip()


def _lines(corpus: Path) -> Iterator[tuple[int, str]]:
    number = 0
    try:
        with corpus.open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, 1):
                yield number, line
    except UnicodeDecodeError:
        raise ToolError(f"{corpus} line {number + 1}: not UTF-8 text") from None
    except OSError as exc:
        raise ToolError(f"cannot read the corpus {corpus}: {exc.strerror}") from None


def _parse_line(line: str, number: int, corpus: Path) -> dict[str, str]:
    where = f"{corpus} line {number}"
    try:
        record = json.loads(line)
    except ValueError as exc:
        raise ToolError(f"{where}: not valid JSON ({exc})") from None
    if not isinstance(record, dict):
        raise ToolError(f"{where}: expected a JSON object, got {type(record).__name__}")
    if isinstance(record.get("contents"), str):
        title, text = split_contents(record["contents"])
    elif isinstance(record.get("text"), str):
        title, text = str(record.get("title") or ""), record["text"]
    else:
        raise ToolError(f'{where}: no "contents" string; expected {{"id": ..., "contents": "\\"Title\\"\\ntext"}}')
    return {"id": str(record.get("id", number)), "title": title, "text": text}


def _corpus_stat(corpus: Path) -> os.stat_result:
    try:
        return corpus.stat()
    except FileNotFoundError:
        raise ToolError(f"the corpus {corpus} does not exist") from None


def _read_manifest(index_dir: Path) -> dict[str, Any] | None:
    try:
        manifest = json.loads((index_dir / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None


def _swap_in(staging: Path, target: Path) -> None:
    """Replace ``target`` by ``staging``; a folder cannot be renamed over a non-empty one."""
    old = target.with_name(f".{target.name}.old-{os.getpid()}")
    if target.exists():
        target.rename(old)
    staging.rename(target)
    shutil.rmtree(old, ignore_errors=True)
