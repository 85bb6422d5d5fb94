"""wikipedia_search: the passages of Wikipedia's best-matching articles that answer a query.

Three steps over the MediaWiki action API: a full-text search for the top pages, their plain-text
extracts (one request per page: TextExtracts returns whole-page extracts only one at a time),
then BM25 over the pages' passages, because the answer to a question is usually one paragraph
deep inside an article, not in its introduction or in the search snippet.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import attrs

from agentflow_core import ToolContext, ToolError, ToolSpec, structure_settings
from agentflow_core.tool import query_input
from agentflow_tools.search.http import Service, error_text, malformed, request_json
from agentflow_tools.search.passages import clip, split_passages
from agentflow_tools.search.rank import Ranker, arank

SPEC = ToolSpec(
    name="wikipedia_search",
    description=(
        "Searches Wikipedia and returns the passages of the best-matching articles most relevant to the query, "
        "with article titles and URLs; use it for encyclopedic facts about people, places, things and events."
    ),
    input_schema=query_input(
        "what to look up: the entity's name, optionally with the fact wanted",
    ),
    output="numbered passages, each headed by its article title and URL, best match first",
    limitations=(
        "Only English Wikipedia by default, as of the time of the request; no news and no other sites.",
        "Reads only the few top-ranked articles; an answer in a less prominent article is missed.",
        "Passages are chosen by shared words, so a question worded very differently from the article may miss.",
    ),
    best_practices=(
        "Name the entity in the query rather than describing it.",
        "Ask about one entity per call; for a comparison, search each entity separately.",
    ),
)


@attrs.frozen
class Settings:
    #: The wiki's ``api.php``; another language or wiki works the same way.
    api_url: str = "https://en.wikipedia.org/w/api.php"
    #: Prefix of article URLs shown in the results (title appended, spaces as underscores).
    page_url: str = "https://en.wikipedia.org/wiki/"
    #: Top search hits whose text is read.
    pages: int = attrs.field(default=3, validator=[attrs.validators.ge(1), attrs.validators.le(10)])
    #: Passages returned.
    passages: int = attrs.field(default=4, validator=attrs.validators.ge(1))
    #: Size of a passage, in words.
    passage_words: int = attrs.field(default=120, validator=attrs.validators.ge(10))
    #: Longest passage shown, in characters.
    max_passage_chars: int = attrs.field(default=1000, validator=attrs.validators.ge(50))
    #: How passages are ranked against the query: ``bm25`` (word overlap) or ``embeddings`` (meaning;
    #: needs the ``embeddings`` extra).
    ranker: Ranker = "bm25"
    #: Seconds to wait for each API answer.
    timeout_s: float = attrs.field(default=15.0, validator=attrs.validators.gt(0))
    #: Wikimedia asks API clients to identify themselves; add a contact address for heavy use.
    user_agent: str = "AgentFlow-wikipedia_search/0.1 (tool-using agent framework)"


@attrs.frozen
class Article:
    title: str
    url: str
    text: str


@attrs.frozen
class Passage:
    article: Article
    text: str


class WikipediaSearch:
    spec = SPEC

    def __init__(self, context: ToolContext) -> None:
        self._settings = structure_settings(Settings, context.settings, where="settings")
        self._service = Service("Wikipedia", self._settings.timeout_s)

    async def run(self, arguments: Mapping[str, Any]) -> str:
        query = str(arguments["query"]).strip()
        titles = await self._search(query)
        if not titles:
            return f"No Wikipedia article matches {query!r}. Try other or fewer words."
        articles = await asyncio.gather(*(self._article(title) for title in titles))
        words = self._settings.passage_words
        passages = [Passage(a, text) for a in articles for text in split_passages(a.text, max_words=words)]
        if not passages:
            return f"The Wikipedia articles found for {query!r} ({', '.join(titles)}) have no text."
        order = await arank(query, [f"{p.article.title}\n{p.text}" for p in passages], self._settings.passages)
        return self._render(query, [passages[i] for i in order])

    async def aclose(self) -> None:
        """Each request opens and closes its own connection; nothing is held."""

    async def _search(self, query: str) -> list[str]:
        params: dict[str, str | int] = {
            "list": "search",
            "srsearch": query,
            "srlimit": self._settings.pages,
            "srprop": "",
        }
        hits = _field(self._service, await self._query(params), "search")
        return [str(hit["title"]) for hit in hits if isinstance(hit, Mapping) and hit.get("title")]

    async def _article(self, title: str) -> Article:
        params: dict[str, str | int] = {"prop": "extracts", "explaintext": 1, "redirects": 1, "titles": title}
        pages = _field(self._service, await self._query(params), "pages")
        page = next((p for p in pages if isinstance(p, Mapping) and not p.get("missing")), None)
        if page is None:
            return Article(title, self._url(title), "")
        name = str(page.get("title") or title)
        return Article(name, self._url(name), str(page.get("extract") or ""))

    async def _query(self, params: Mapping[str, str | int]) -> Mapping[str, Any]:
        base: dict[str, str | int] = {"action": "query", "format": "json", "formatversion": 2}
        headers = {"User-Agent": self._settings.user_agent}
        payload = await request_json(
            self._service, "GET", self._settings.api_url, params={**base, **params}, headers=headers
        )
        if isinstance(payload, Mapping) and "error" in payload:
            # MediaWiki reports most errors with HTTP 200 and an "error" object.
            code = payload["error"].get("code", "error") if isinstance(payload["error"], Mapping) else "error"
            raise ToolError(f"Wikipedia: API error {code}: {error_text(payload)}")
        if not isinstance(payload, Mapping) or not isinstance(payload.get("query"), Mapping):
            raise malformed(self._service, "no 'query' object in the reply")
        return payload["query"]

    def _url(self, title: str) -> str:
        return self._settings.page_url + quote(title.replace(" ", "_"), safe="/:(),'!*")

    def _render(self, query: str, passages: list[Passage]) -> str:
        lines = [f"Wikipedia passages for {query!r}:"]
        for number, passage in enumerate(passages, 1):
            lines.append(f"[{number}] {passage.article.title} — {passage.article.url}")
            lines.append(clip(passage.text, self._settings.max_passage_chars))
        return "\n".join(lines)


def _field(service: Service, query: Mapping[str, Any], name: str) -> list[Any]:
    value = query.get(name, [])
    if not isinstance(value, list):
        raise malformed(service, f"query.{name} is {type(value).__name__}, not a list")
    return value
