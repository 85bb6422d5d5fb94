"""local_search: BM25 over a local passage corpus, such as the Wikipedia dump Search-R1 uses.

No network and no key: the corpus is a JSONL file (format in ``search.local_index``), indexed
on first use or ahead of time with ``build_index``, and memory-mapped afterwards. Results are
reproducible, which is what training and benchmark runs want from a search tool.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from agentflow_core import Fit, ToolContext, ToolError, ToolFit, ToolOutput, ToolSpec, structure_settings
from agentflow_core.tool import QUESTION_INPUT, query_input
from agentflow_tools.search.answer_spans import answer_spans
from agentflow_tools.search.local_index import Hit, LoadedIndex, build_index, default_index_dir, open_index, search
from agentflow_tools.search.names import names_all_in, names_in
from agentflow_tools.search.passages import clip

__all__ = ["SPEC", "LocalSearch", "Settings", "build_index"]

SPEC = ToolSpec(
    name="local_search",
    description=(
        "Searches a local collection of encyclopedia-style passages by keywords; use it to look up facts. "
        "Returns the best-matching passages with their titles."
    ),
    input_schema=query_input(
        "keywords or a short question",
        question=QUESTION_INPUT,
        top_k={
            "type": "integer",
            "minimum": 1,
            "maximum": 20,
            "description": "how many passages to return (default from the settings, usually 5)",
        },
    ),
    output="numbered passages, each with its title, best match first; a line saying so when nothing matches",
    limitations=(
        "Knows only the passages in its collection, as of when the collection was made.",
        "Matches words, not meaning: synonyms and paraphrases that share no word with a passage are missed.",
    ),
    best_practices=(
        "Use the distinctive names and terms the passage would contain.",
        "If nothing relevant comes back, search again with different words rather than repeating the query.",
    ),
)


@attrs.frozen
class Settings:
    #: Path of the JSONL corpus (``{"id": ..., "contents": "\"Title\"\ntext"}`` per line).
    corpus: str
    #: Folder of the saved index; default: ``<corpus>.bm25s`` next to the corpus.
    index_dir: str | None = None
    #: Passages returned when the call does not say.
    top_k: int = attrs.field(default=5, validator=[attrs.validators.ge(1), attrs.validators.le(20)])
    #: Longest passage shown, in characters.
    max_passage_chars: int = attrs.field(default=1000, validator=attrs.validators.ge(50))


class LocalSearch:
    spec = SPEC

    def __init__(self, context: ToolContext) -> None:
        self._settings = structure_settings(Settings, context.settings, where="settings")
        self._corpus = Path(self._settings.corpus).expanduser()
        if not self._corpus.is_file():
            raise ToolError(f"settings: corpus: {self._corpus} is not a file")
        index_dir = self._settings.index_dir
        self._index_dir = Path(index_dir).expanduser() if index_dir else default_index_dir(self._corpus)
        self._index: LoadedIndex | None = None
        self._lock = asyncio.Lock()

    @property
    def index(self) -> LoadedIndex | None:
        """The loaded index, once the first search has opened it."""
        return self._index

    async def run(self, arguments: Mapping[str, Any]) -> ToolOutput:
        query = str(arguments["query"]).strip()
        k = int(arguments.get("top_k") or self._settings.top_k)
        hits = await self._search(query, k)
        # The best passage's spans, less the question's own words: a shortlist the generator chooses from.
        asked = str(arguments.get("question") or query)
        candidates = answer_spans(hits[0].text, asked) if hits else ()
        return ToolOutput(self._render(query, hits), candidates=candidates)

    async def fit(self, question: str, found: tuple[str, ...] = ()) -> ToolFit:
        """Claims a question whose names (``agentflow_tools.search.names``) its best passage for it has, all of them.

        "How old would Dov Kesante be in 2030?" is the collection's when a passage names Dov Kesante;
        a question that names nothing (arithmetic, "what is a prime?") gets no opinion.
        """
        names = names_in(question)
        if not names:
            return ToolFit()
        hits = await self._search(question, 1)
        if hits and names_all_in(names, f"{hits[0].title}\n{hits[0].text}"):
            return ToolFit(Fit.CLAIMS, f"a passage names {' '.join(names)}")
        return ToolFit(why=f"no passage names {' '.join(names)}")

    async def _search(self, query: str, k: int) -> list[Hit]:
        async with self._lock:  # one build at a time; bm25s's corpus reader is not thread-safe either
            if self._index is None:
                self._index = await asyncio.to_thread(open_index, self._corpus, self._index_dir)
            return await asyncio.to_thread(search, self._index, query, k)

    async def aclose(self) -> None:
        index, self._index = self._index, None
        if index is not None:
            index.documents.close()

    def _render(self, query: str, hits: list[Hit]) -> str:
        if not hits:
            return f"No passage in the collection matches {query!r}. Try other words."
        lines = [f"Passages for {query!r}:"]
        for number, hit in enumerate(hits, 1):
            lines.append(f"[{number}] {hit.title or '(untitled)'}")
            lines.append(clip(hit.text, self._settings.max_passage_chars))
        return "\n".join(lines)
