"""google_search: Google results through the Custom Search JSON API or Serper.

Two backends because each has a catch: Google's own API needs a key *and* a Programmable
Search Engine id (``cx``) and answers at most 10 results a request; Serper needs one key and
adds Google's answer box and knowledge graph, which often hold the answer itself. Both give
titles, links and snippets, which is what the planner needs to decide what to read next.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Literal

import attrs

from agentflow_core import ToolContext, ToolSpec, structure_settings
from agentflow_core.tool import query_input
from agentflow_tools.search.http import Service, malformed, request_json, require_env
from agentflow_tools.search.passages import clip

SPEC = ToolSpec(
    name="google_search",
    description=(
        "Searches the web with Google; use it for current events, facts beyond Wikipedia, or to find pages to read. "
        "Returns numbered results with title, link and snippet."
    ),
    input_schema=query_input(
        "the search terms, as you would type them",
        num_results={
            "type": "integer",
            "minimum": 1,
            "maximum": 10,
            "description": "how many results to return (default from the settings, usually 5)",
        },
    ),
    output=(
        "numbered results, each with title, link and snippet; with the Serper backend an answer box and a "
        "knowledge-graph summary first when Google shows them"
    ),
    limitations=(
        "Snippets are short excerpts and may be out of date or out of context; they are not the full page.",
        "At most 10 results per search.",
        "Needs an API key in the environment; without it every call fails.",
    ),
    best_practices=(
        "Use short keyword queries with the distinctive names or terms, not whole sentences.",
        "If a snippet is not enough, pass the link and your question to web_search to read the page.",
        "Rephrase and search again rather than trusting one weak result.",
    ),
)


DEFAULT_CX_ENV = "GOOGLE_CSE_ID"
#: The engine-id variable earlier versions read; still honoured when ``GOOGLE_CSE_ID`` is unset.
LEGACY_CX_ENV = "GOOGLE_CX"


@attrs.frozen
class Settings:
    #: ``google``: Custom Search JSON API (key and engine id); ``serper``: serper.dev (one key).
    backend: Literal["google", "serper"] = "google"
    #: Results per search when the call does not say; both APIs give at most 10.
    num_results: int = attrs.field(default=5, validator=[attrs.validators.ge(1), attrs.validators.le(10)])
    #: Seconds to wait for the API's answer.
    timeout_s: float = attrs.field(default=15.0, validator=attrs.validators.gt(0))
    #: Longest snippet shown, in characters.
    max_snippet_chars: int = attrs.field(default=400, validator=attrs.validators.ge(20))
    #: Address of the Custom Search JSON API (another one for a proxy or a test server).
    google_url: str = "https://www.googleapis.com/customsearch/v1"
    #: Environment variable holding the Custom Search API key.
    api_key_env: str = "GOOGLE_API_KEY"
    #: Environment variable holding the Programmable Search Engine id (``cx``); when left at this default
    #: and unset, ``GOOGLE_CX`` (the name read before) is used instead.
    cx_env: str = DEFAULT_CX_ENV
    #: Address of Serper's search API (another one for a proxy or a test server).
    serper_url: str = "https://google.serper.dev/search"
    #: Environment variable holding the Serper API key.
    serper_api_key_env: str = "SERPER_API_KEY"


@attrs.frozen
class Result:
    title: str
    link: str
    snippet: str


@attrs.frozen
class Results:
    items: tuple[Result, ...]
    #: Extra lines shown before the results (Serper's answer box and knowledge graph).
    highlights: tuple[str, ...] = ()


class GoogleSearch:
    spec = SPEC

    def __init__(self, context: ToolContext) -> None:
        self._settings = structure_settings(Settings, context.settings, where="settings")

    async def run(self, arguments: Mapping[str, Any]) -> str:
        query = str(arguments["query"]).strip()
        count = int(arguments.get("num_results") or self._settings.num_results)
        if self._settings.backend == "serper":
            results = await search_serper(self._settings, query, count)
        else:
            results = await search_google(self._settings, query, count)
        return render(query, results, self._settings.max_snippet_chars)

    async def aclose(self) -> None:
        """Each search opens and closes its own connection; nothing is held."""


async def search_google(settings: Settings, query: str, count: int) -> Results:
    """``GET customsearch/v1?key&cx&q&num``; the answer's ``items`` is absent when nothing matched."""
    key = require_env(settings.api_key_env, "Google API key", "api_key_env")
    cx_env = settings.cx_env
    if (
        cx_env == DEFAULT_CX_ENV
        and not os.environ.get(cx_env, "").strip()
        and os.environ.get(LEGACY_CX_ENV, "").strip()
    ):
        cx_env = LEGACY_CX_ENV
    cx = require_env(cx_env, "Programmable Search Engine id (cx)", "cx_env")
    service = Service("Google Custom Search", settings.timeout_s, key_env=settings.api_key_env)
    params: dict[str, str | int] = {"key": key, "cx": cx, "q": query, "num": count}
    payload = await request_json(service, "GET", settings.google_url, params=params)
    if not isinstance(payload, Mapping) or not ("items" in payload or "searchInformation" in payload):
        raise malformed(service, "neither 'items' nor 'searchInformation' in the reply")
    return Results(_results(service, payload.get("items", []), "items")[:count])


def _cx_env(settings: Settings) -> str:
    """``cx_env``; at its default and unset, the variable earlier versions read, if that one is set."""
    unset = not os.environ.get(settings.cx_env, "").strip()
    if settings.cx_env == DEFAULT_CX_ENV and unset and os.environ.get(LEGACY_CX_ENV, "").strip():
        return LEGACY_CX_ENV
    return settings.cx_env


async def search_serper(settings: Settings, query: str, count: int) -> Results:
    """``POST /search`` with ``X-API-KEY``; results in ``organic``, extras in ``answerBox``/``knowledgeGraph``."""
    key = require_env(settings.serper_api_key_env, "Serper API key", "serper_api_key_env")
    service = Service("Serper", settings.timeout_s, key_env=settings.serper_api_key_env)
    headers = {"X-API-KEY": key}
    payload = await request_json(service, "POST", settings.serper_url, body={"q": query, "num": count}, headers=headers)
    if not isinstance(payload, Mapping) or "organic" not in payload:
        raise malformed(service, "no 'organic' results in the reply")
    highlights = tuple(
        line
        for line in (_answer_box(payload.get("answerBox")), _knowledge_graph(payload.get("knowledgeGraph")))
        if line
    )
    return Results(_results(service, payload["organic"], "organic")[:count], highlights)


def _results(service: Service, items: Any, field: str) -> tuple[Result, ...]:
    if not isinstance(items, list):
        raise malformed(service, f"'{field}' is {type(items).__name__}, not a list")
    return tuple(
        Result(_text(item.get("title")), _text(item.get("link")), _text(item.get("snippet")))
        for item in items
        if isinstance(item, Mapping) and item.get("link")
    )


def _answer_box(box: Any) -> str:
    if not isinstance(box, Mapping):
        return ""
    answer = _text(box.get("answer") or box.get("snippet"))
    if not answer:
        return ""
    source = " — ".join(_text(box.get(k)) for k in ("title", "link") if box.get(k))
    return f"Answer box: {answer}" + (f" ({source})" if source else "")


def _knowledge_graph(graph: Any) -> str:
    if not isinstance(graph, Mapping) or not graph.get("title"):
        return ""
    head = _text(graph["title"]) + (f" ({_text(graph['type'])})" if graph.get("type") else "")
    parts = [_text(graph.get("description"))]
    attributes = graph.get("attributes")
    if isinstance(attributes, Mapping):
        parts.extend(f"{_text(k)}: {_text(v)}" for k, v in attributes.items())
    body = "; ".join(p for p in parts if p)
    return f"Knowledge graph: {head}" + (f": {body}" if body else "")


def render(query: str, results: Results, max_snippet_chars: int) -> str:
    """The observation: highlights, then numbered results with title, link and snippet."""
    if not results.items and not results.highlights:
        return f"No results for {query!r}."
    lines = [f"Results for {query!r}:", *results.highlights]
    for number, item in enumerate(results.items, 1):
        lines.append(f"{number}. {item.title or '(no title)'}\n   {item.link}")
        if item.snippet:
            lines.append(f"   {clip(item.snippet, max_snippet_chars)}")
    return "\n".join(lines)


def _text(value: Any) -> str:
    return " ".join(str(value).split()) if value is not None else ""
