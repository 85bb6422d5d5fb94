"""google_search (Google and Serper backends) and wikipedia_search over real HTTP.

Each API is played by a loopback server answering in the API's documented shape. One contract
suite runs every failure (bad key, rate limit, server error, timeout, non-JSON, refused
connection, wrong shape) against all three backends: each must become one ToolError line.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import attrs
import pytest

from agentflow_core import ToolContext, ToolError
from agentflow_tools.google_search import GoogleSearch
from agentflow_tools.wikipedia_search import WikipediaSearch
from tests.helpers import closed_port
from tests.search_payloads import GOOGLE_OK, SERPER_OK, wikipedia_handler
from tests.search_servers import Answer, LoopbackServer, Request, json_answer


@attrs.frozen
class Backend:
    """One search API as the contract suite sees it."""

    name: str
    make: Callable[[str, float], Any]
    ok: Callable[[Request], Answer]
    #: The API's error body for a status and message.
    error_body: Callable[[int, str], Any]
    key_env: str | None


def _google(url: str, timeout_s: float) -> GoogleSearch:
    settings = {"google_url": url + "/customsearch/v1", "timeout_s": timeout_s, "api_key_env": "TEST_GOOGLE_KEY"}
    return GoogleSearch(ToolContext(engine=None, settings={**settings, "cx_env": "TEST_GOOGLE_CX"}))


def _serper(url: str, timeout_s: float) -> GoogleSearch:
    settings = {"backend": "serper", "serper_url": url + "/search", "timeout_s": timeout_s}
    return GoogleSearch(ToolContext(engine=None, settings={**settings, "serper_api_key_env": "TEST_SERPER_KEY"}))


def _wikipedia(url: str, timeout_s: float, **more: Any) -> WikipediaSearch:
    settings = {"api_url": url + "/w/api.php", "page_url": "https://en.wikipedia.org/wiki/", "timeout_s": timeout_s}
    return WikipediaSearch(ToolContext(engine=None, settings={**settings, **more}))


BACKENDS = [
    Backend(
        "google",
        _google,
        lambda request: json_answer(GOOGLE_OK),
        lambda status, message: {"error": {"code": status, "message": message, "status": "UNAUTHENTICATED"}},
        "TEST_GOOGLE_KEY",
    ),
    Backend(
        "serper",
        _serper,
        lambda request: json_answer(SERPER_OK),
        lambda status, message: {"message": message, "statusCode": status},
        "TEST_SERPER_KEY",
    ),
    Backend(
        "wikipedia",
        _wikipedia,
        wikipedia_handler,
        lambda status, message: {"error": {"code": "http", "info": message}},
        None,
    ),
]


@pytest.fixture(autouse=True)
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_GOOGLE_KEY", "g-key-123")
    monkeypatch.setenv("TEST_GOOGLE_CX", "cx-456")
    monkeypatch.setenv("TEST_SERPER_KEY", "s-key-789")


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    with LoopbackServer() as server:
        yield server


@pytest.fixture(params=BACKENDS, ids=lambda b: b.name)
def backend(request: pytest.FixtureRequest) -> Backend:
    return request.param  # type: ignore[no-any-return]


# -- success shapes ----------------------------------------------------------------------------


async def test_google_sends_key_cx_query_and_lists_results(server: LoopbackServer) -> None:
    server.handler = lambda request: json_answer(GOOGLE_OK)
    output = await _google(server.url(), 5).run({"query": "barn owl", "num_results": 2})

    [request] = server.requests
    assert (request.method, request.path) == ("GET", "/customsearch/v1")
    assert request.query == {"key": "g-key-123", "cx": "cx-456", "q": "barn owl", "num": "2"}
    assert output.splitlines() == [
        "Results for 'barn owl':",
        "1. Barn owl - Wikipedia",
        "   https://en.wikipedia.org/wiki/Barn_owl",
        "   The barn owl is the most widely distributed species of owl.",
        "2. Barn Owl | Audubon",
        "   https://www.audubon.org/field-guide/bird/barn-owl",
        "   Barn owls hunt voles by sound.",
    ]


async def test_google_without_items_means_no_results(server: LoopbackServer) -> None:
    server.handler = lambda request: json_answer({"searchInformation": {"totalResults": "0"}})
    assert await _google(server.url(), 5).run({"query": "zzqx"}) == "No results for 'zzqx'."


async def test_serper_posts_with_key_header_and_shows_answer_box_first(server: LoopbackServer) -> None:
    server.handler = lambda request: json_answer(SERPER_OK)
    output = await _serper(server.url(), 5).run({"query": "barn owl", "num_results": 2})

    [request] = server.requests
    assert (request.method, request.path) == ("POST", "/search")
    assert request.headers["x-api-key"] == "s-key-789"
    assert request.json() == {"q": "barn owl", "num": 2}
    lines = output.splitlines()
    assert lines[1] == "Answer box: Tyto alba (Barn owl — https://en.wikipedia.org/wiki/Barn_owl)"
    assert lines[2].startswith("Knowledge graph: Barn owl (Bird): The barn owl is the most widely")
    assert "Scientific name: Tyto alba" in lines[2]
    assert lines[3:5] == ["1. Barn owl - Wikipedia", "   https://en.wikipedia.org/wiki/Barn_owl"]


@pytest.mark.parametrize("backend_name", ["google", "serper"])
async def test_missing_key_names_the_variable_and_sends_nothing(
    server: LoopbackServer, monkeypatch: pytest.MonkeyPatch, backend_name: str
) -> None:
    variable = {"google": "TEST_GOOGLE_KEY", "serper": "TEST_SERPER_KEY"}[backend_name]
    monkeypatch.delenv(variable)
    tool = _google(server.url(), 5) if backend_name == "google" else _serper(server.url(), 5)
    with pytest.raises(ToolError, match=f"set the environment variable {variable}"):
        await tool.run({"query": "barn owl"})
    assert server.requests == []


async def test_wikipedia_returns_the_relevant_passage_with_title_and_url(server: LoopbackServer) -> None:
    server.handler = wikipedia_handler
    tool = _wikipedia(server.url(), 5, passage_words=20)  # one section per passage
    output = await tool.run({"query": "What does the barn owl eat? diet voles"})

    search, *extracts = server.requests
    assert search.query["srsearch"] == "What does the barn owl eat? diet voles"
    assert {search.query["format"], search.query["formatversion"], search.query["action"]} == {"json", "2", "query"}
    assert sorted(r.query["titles"] for r in extracts) == ["Barn owl", "Owl"]
    assert all(r.query["prop"] == "extracts" and r.query["explaintext"] == "1" for r in extracts)
    assert "agentflow" in search.headers["user-agent"].lower()
    lines = output.splitlines()
    assert lines[1] == "[1] Barn owl — https://en.wikipedia.org/wiki/Barn_owl"
    assert lines[2:4] == [
        "Diet",
        "The diet of the barn owl consists mainly of small mammals such as voles, shrews and mice.",
    ]


async def test_wikipedia_with_no_hits_says_so(server: LoopbackServer) -> None:
    server.handler = lambda request: json_answer({"batchcomplete": True, "query": {"search": []}})
    output = await _wikipedia(server.url(), 5).run({"query": "zzqx"})
    assert output.startswith("No Wikipedia article matches 'zzqx'")


async def test_wikipedia_api_error_inside_a_200_reply(server: LoopbackServer) -> None:
    error = {"error": {"code": "srsearch-text-disabled", "info": "text search is disabled", "*": "See api.php"}}
    server.handler = lambda request: json_answer(error)
    with pytest.raises(ToolError, match=r"^Wikipedia: API error srsearch-text-disabled: text search is disabled$"):
        await _wikipedia(server.url(), 5).run({"query": "owl"})


# -- one contract, every backend ---------------------------------------------------------------


async def _failure(backend: Backend, server: LoopbackServer, answer: Answer, timeout_s: float = 5) -> str:
    server.handler = lambda request: answer
    with pytest.raises(ToolError) as info:
        await backend.make(server.url(), timeout_s).run({"query": "barn owl"})
    message = str(info.value)
    assert "\n" not in message
    assert "g-key-123" not in message and "s-key-789" not in message  # keys never leak into memory
    return message


async def test_the_success_shape_works(backend: Backend, server: LoopbackServer) -> None:
    server.handler = backend.ok
    output = await backend.make(server.url(), 5).run({"query": "barn owl"})
    assert "https://en.wikipedia.org/wiki/Barn_owl" in output


@pytest.mark.parametrize("status", [401, 403])
async def test_bad_key_names_the_variable(backend: Backend, server: LoopbackServer, status: int) -> None:
    answer = json_answer(backend.error_body(status, "API key not valid. Please pass a valid API key."), status)
    message = await _failure(backend, server, answer)
    assert f"HTTP {status} from 127.0.0.1: API key not valid" in message
    if backend.key_env:
        assert message.endswith(f"(check the key in {backend.key_env})")


async def test_rate_limit_says_to_wait(backend: Backend, server: LoopbackServer) -> None:
    message = await _failure(backend, server, json_answer(backend.error_body(429, "Quota exceeded"), 429))
    assert "HTTP 429" in message and "Quota exceeded" in message and "wait before searching again" in message


async def test_server_error(backend: Backend, server: LoopbackServer) -> None:
    message = await _failure(backend, server, json_answer(backend.error_body(500, "Backend Error"), 500))
    assert "HTTP 500" in message and "Backend Error" in message and "try again later" in message


async def test_plain_text_error_page_is_quoted(backend: Backend, server: LoopbackServer) -> None:
    message = await _failure(backend, server, Answer(502, b"upstream\nconnect error", "text/plain"))
    assert message.endswith("HTTP 502 from 127.0.0.1: upstream connect error (the service failed; try again later)")


async def test_timeout(backend: Backend, server: LoopbackServer) -> None:
    slow = attrs.evolve(backend.ok(Request("GET", "/", {"list": "search"}, {}, b"")), delay_s=3)
    message = await _failure(backend, server, slow, timeout_s=0.3)
    assert "no answer from 127.0.0.1 within 0.3 s" in message


async def test_non_json_body(backend: Backend, server: LoopbackServer) -> None:
    message = await _failure(backend, server, Answer(200, b"<html><body>Sign in</body></html>", "text/html"))
    assert "answered HTTP 200 with a body that is not JSON (text/html)" in message


async def test_wrong_shape(backend: Backend, server: LoopbackServer) -> None:
    message = await _failure(backend, server, json_answer(["not", "an", "object"]))
    assert ": unexpected answer: " in message


async def test_connection_refused(backend: Backend) -> None:
    tool = backend.make(f"http://127.0.0.1:{closed_port()}", 5)
    with pytest.raises(ToolError, match=r"cannot connect to 127\.0\.0\.1") as info:
        await tool.run({"query": "barn owl"})
    assert "\n" not in str(info.value)
