"""web_search: read one web page and answer a question from its most relevant passages.

The page is fetched with the guards of ``search.safe_fetch`` (public addresses only, limited
size, time and redirects), its main text extracted, cut into passages and ranked against the
question; the tool's own engine then answers from the top passages only. The observation holds
the answer *and* those passages, so the verifier can check the answer against its source.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import attrs

from agentflow_core import (
    Engine,
    GenerationRequest,
    Message,
    ToolContext,
    ToolError,
    ToolSpec,
    structure_settings,
)
from agentflow_tools.search.passages import clip, split_passages
from agentflow_tools.search.rank import Ranker, arank
from agentflow_tools.search.safe_fetch import FetchLimits, Page, fetch_page

SPEC = ToolSpec(
    name="web_search",
    description=(
        "Reads the web page at a given URL and answers a question from it; use it after a search found a "
        "promising link. Returns the answer and the page passages it is based on."
    ),
    input_schema={
        "type": "object",
        "properties": {
            "url": {"type": "string", "minLength": 1, "description": "full http:// or https:// address of the page"},
            "question": {
                "type": "string",
                "minLength": 1,
                "description": "what to find out from the page, as a complete question",
            },
        },
        "required": ["url", "question"],
        "additionalProperties": False,
    },
    output="an answer drawn from the page, then the URL and the numbered passages used",
    limitations=(
        "Reads one page per call and only its text: no images, no PDFs, no content that needs JavaScript.",
        "Only public http(s) addresses; large pages are cut off and slow pages time out.",
        "The answer is only as good as the passages found; check them when it matters.",
    ),
    best_practices=(
        "Use a URL from an earlier search result rather than guessing one.",
        "Ask one specific question per call.",
        "If the answer says the page does not say, try another result instead of asking again.",
    ),
    uses_engine=True,
)

SYSTEM = (
    "You answer a question using only the numbered excerpts of one web page. Quote numbers, names and dates "
    "exactly as the excerpts give them. If the excerpts do not contain the answer, say that the page does not "
    "say. Answer in at most a few sentences."
)


@attrs.frozen
class Settings:
    #: ``bm25`` (word overlap) or ``embeddings`` (meaning; needs the ``embeddings`` extra).
    ranker: Ranker = "bm25"
    #: Passages given to the model and shown in the observation.
    passages: int = attrs.field(default=4, validator=attrs.validators.ge(1))
    #: Size of a passage, in words.
    passage_words: int = attrs.field(default=120, validator=attrs.validators.ge(10))
    #: Longest passage quoted in the observation, in characters (the model sees them whole).
    max_passage_chars: int = attrs.field(default=700, validator=attrs.validators.ge(50))
    #: Longest answer, in tokens.
    max_tokens: int = attrs.field(default=512, validator=attrs.validators.ge(1))
    #: Deadline of the whole fetch, redirects included, in seconds.
    timeout_s: float = attrs.field(default=20.0, validator=attrs.validators.gt(0))
    #: Bytes of the body read at most; the rest of a larger page is ignored.
    max_bytes: int = attrs.field(default=2_000_000, validator=attrs.validators.ge(1024))
    #: Redirects followed at most; each new address is checked like the first.
    max_redirects: int = attrs.field(default=5, validator=attrs.validators.ge(0))
    #: Allow loopback, private and link-local addresses: for intranets and tests, never for open use.
    allow_private_addresses: bool = False
    #: The ``User-Agent`` header of each page request.
    user_agent: str = "AgentFlow-web_search/0.1 (tool-using agent framework)"


class WebSearch:
    spec = SPEC

    def __init__(self, context: ToolContext) -> None:
        if context.engine is None:
            raise ToolError("web_search needs an engine")
        self._engine: Engine = context.engine
        self._settings = structure_settings(Settings, context.settings, where="settings")

    async def run(self, arguments: Mapping[str, Any]) -> str:
        question = str(arguments["question"]).strip()
        page = await fetch_page(str(arguments["url"]), self._limits())
        passages = await self._passages(page)
        order = await arank(question, passages, self._settings.passages, self._settings.ranker)
        chosen = [passages[i] for i in order]
        answer = await self._answer(question, page.url, chosen)
        return self._render(answer, page, chosen)

    async def aclose(self) -> None:
        """The engine belongs to the solver's pool; fetches hold no connection between calls."""

    def _limits(self) -> FetchLimits:
        s = self._settings
        return FetchLimits(s.timeout_s, s.max_bytes, s.max_redirects, s.allow_private_addresses, s.user_agent)

    async def _passages(self, page: Page) -> list[str]:
        if page.kind == "html":
            from agentflow_tools.search.html_text import main_text

            text = await asyncio.to_thread(main_text, page.text, page.url)
        else:
            text = page.text
        passages = split_passages(text, max_words=self._settings.passage_words)
        if not passages:
            raise ToolError(f"{page.url} has no readable text")
        return passages

    async def _answer(self, question: str, url: str, passages: list[str]) -> str:
        excerpts = "\n\n".join(f"[{n}] {text}" for n, text in enumerate(passages, 1))
        prompt = f"Page: {url}\n\nExcerpts:\n{excerpts}\n\nQuestion: {question}"
        request = GenerationRequest(
            messages=(Message("system", SYSTEM), Message("user", prompt)), max_tokens=self._settings.max_tokens
        )
        completion = await self._engine.generate(request)
        return completion.text.strip() or "(the model gave no answer)"

    def _render(self, answer: str, page: Page, passages: list[str]) -> str:
        note = f" (only the first {self._settings.max_bytes} bytes were read)" if page.truncated else ""
        lines = [f"Answer: {answer}", f"Source: {page.url}{note}", "Passages used:"]
        lines += [f"[{n}] {clip(text, self._settings.max_passage_chars)}" for n, text in enumerate(passages, 1)]
        return "\n".join(lines)
