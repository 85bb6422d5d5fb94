"""``agentflow mcp serve --http`` and ``agentflow view`` bound beyond loopback (0.0.0.0) and on another
loopback address (127.0.0.2), as real servers in subprocesses: no token, no entry; the SDK's own
streamable-HTTP client gets in with the token; a forged ``Host`` or ``Origin`` is refused on every
address; starting beyond loopback says so and prints the token it made."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import attrs
import pytest

from agentflow_core.access import Access, bearer, server_access
from agentflow_core.errors import UsageError
from agentflow_core.testing import ScriptedOpenAIServer, wait_until
from tests.mcp_support import scripted_server
from tests.test_mcp_cli import write_config

#: The addresses a server is bound to in these tests, and the one a client on this machine dials.
ADDRESSES = {"0.0.0.0": "127.0.0.1", "127.0.0.2": "127.0.0.2", "127.0.0.1": "127.0.0.1"}
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}},
}


# -- the rules, without a server -----------------------------------------------------------------


def test_the_host_and_origin_rules() -> None:
    everywhere = Access(bound=frozenset({"0.0.0.0"}), token="t", allowed_hosts=frozenset({"proxy.lan"}))
    for host in ("127.0.0.1:8811", "localhost:8811", "[::1]:8811", "192.168.1.20:8811", "proxy.lan", "PROXY.LAN:80"):
        assert everywhere.host_allowed(host), host
    for host in ("attacker.example:8811", "127.0.0.1.attacker.example", "", None, "localhost.attacker.example"):
        assert not everywhere.host_allowed(host), host
    one = Access(bound=frozenset({"192.168.1.20"}), token="t")
    assert one.host_allowed("192.168.1.20:8811") and one.host_allowed("127.0.0.1:8811")
    assert not one.host_allowed("10.0.0.3:8811")  # another machine's address: only a wildcard bind takes any
    assert one.origin_allowed(None) and one.origin_allowed("http://192.168.1.20:8811")
    for origin in ("null", "http://attacker.example", "file://", "ftp://192.168.1.20", "http://[bad"):
        assert not one.origin_allowed(origin), origin


def test_the_token_rules() -> None:
    access, made = server_access(["127.0.0.1"], variable="T", environ={})
    assert access.token is None and not made and access.token_matches(None)
    access, made = server_access(["0.0.0.0"], variable="T", environ={})
    assert made and access.token is not None and len(access.token) >= 40
    assert not access.token_matches(None) and not access.token_matches("") and not access.token_matches("x")
    assert not access.token_matches("é")  # not ASCII: refused, not a TypeError from compare_digest
    assert access.token_matches(access.token)
    access, made = server_access(["127.0.0.2"], variable="T", environ={"T": "chosen-token"})
    assert access.token == "chosen-token" and not made and not access.beyond_loopback
    with pytest.raises(UsageError, match="T may use only letters"):
        server_access(["0.0.0.0"], variable="T", environ={"T": "has space"})
    assert bearer("Bearer abc") == "abc" and bearer("bearer  abc ") == "abc"
    assert bearer("Basic abc") is None and bearer(None) is None and bearer("Bearer") is None


# -- real servers ----------------------------------------------------------------------------------


@attrs.frozen
class Started:
    process: subprocess.Popen[str]
    #: What the server has printed so far, line by line, on each stream.
    printed: dict[str, list[str]]
    url: str

    def lines(self, stream: str, count: int) -> list[str]:
        """The first ``count`` lines of ``stream``, once they are there."""
        wait_until(
            lambda: len(self.printed[stream]) >= count or self.process.poll() is not None,
            what=f"{count} lines on {stream}",
        )
        assert len(self.printed[stream]) >= count, self.printed
        return self.printed[stream][:count]


@contextlib.contextmanager
def started(command: list[str], *, cwd: Path, env: Mapping[str, str], url_on: str) -> Iterator[Started]:
    """A server in a subprocess, once it has printed its URL (first line of ``url_on``)."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "AGENTFLOW_"))}
    process = subprocess.Popen(
        command,
        cwd=cwd,
        env={**environ, **env},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    printed: dict[str, list[str]] = {"stdout": [], "stderr": []}
    readers = [
        threading.Thread(target=lambda s=stream, into=into: into.extend(iter(s.readline, "")), daemon=True)
        for stream, into in ((process.stdout, printed["stdout"]), (process.stderr, printed["stderr"]))
    ]
    for reader in readers:
        reader.start()
    try:
        serving = Started(process, printed, "")
        [first] = serving.lines(url_on, 1)
        found = re.search(r"http://\S+", first)
        assert found, printed
        yield attrs.evolve(serving, url=found.group(0))
    finally:
        process.terminate()
        process.wait(timeout=30)
        for reader in readers:
            reader.join(timeout=10)


def request(
    url: str, *, headers: Mapping[str, str] | None = None, body: object = None
) -> tuple[int, dict[str, str], str]:
    """One request (POST with a JSON ``body``, else GET), redirects not followed."""
    data = None if body is None else json.dumps(body).encode()
    accept = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    all_headers = {**accept, **(headers or {})}
    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(urllib.request.Request(url, data=data, headers=all_headers), timeout=30) as response:
            return response.status, _lower(response.headers.items()), response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, _lower(error.headers.items()), error.read().decode()


def _lower(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    return {name.lower(): value for name, value in headers}


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


@pytest.fixture
def server():
    with ScriptedOpenAIServer() as server:
        yield server


def mcp_serve(
    tmp_path: Path, server: ScriptedOpenAIServer, address: str, *, env: Mapping[str, str]
) -> contextlib.AbstractContextManager[Started]:
    config = write_config(tmp_path / "agentflow.toml", server, ["t.echo"], {"t": scripted_server()})
    command = [sys.executable, "-m", "agentflow_core", "mcp", "serve", "--config", str(config), "--expose-tools"]
    command += ["--http", f"{address}:0"]
    return started(command, cwd=tmp_path, env=env, url_on="stderr")


def dialled(url: str, address: str) -> str:
    """``url`` with the bound address replaced by the one a client here dials."""
    return url.replace(f"//{address}:", f"//{ADDRESSES[address]}:")


async def echo_with_the_sdk_client(url: str, token: str | None) -> str:
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        create_mcp_http_client(headers=headers) as http,
        Client(streamable_http_client(url, http_client=http)) as client,
    ):
        names = [tool.name for tool in (await client.list_tools()).tools]
        assert names == ["solve", "t.echo"]
        result = await client.call_tool("t.echo", {"text": "through the gate"})
    return result.content[0].text  # type: ignore[union-attr]


def test_mcp_serve_beyond_loopback_needs_the_token_it_prints(tmp_path: Path, server: ScriptedOpenAIServer) -> None:
    with mcp_serve(tmp_path, server, "0.0.0.0", env={}) as serving:
        url = dialled(serving.url, "0.0.0.0")
        warning, token_line = serving.lines("stderr", 3)[1:]
        assert warning.startswith("warning: --http 0.0.0.0:0 is reachable beyond loopback; every request must carry")
        found = re.fullmatch(r"token for this run: (\S+) \(set AGENTFLOW_MCP_TOKEN to choose it\)\n", token_line)
        assert found, token_line
        token = found.group(1)

        status, headers, _ = request(url, body=INITIALIZE)
        assert status == 401 and headers["www-authenticate"] == "Bearer"
        assert request(url, body=INITIALIZE, headers={"Authorization": "Bearer wrong"})[0] == 401
        assert request(url, body=INITIALIZE, headers={"Authorization": f"Basic {token}"})[0] == 401
        assert request(url, body=INITIALIZE, headers={"Authorization": f"Bearer {token}x"})[0] == 401
        with pytest.raises(Exception):  # noqa: B017 -- whatever the SDK makes of a 401, it gets nowhere
            asyncio.run(asyncio.wait_for(echo_with_the_sdk_client(url, None), 60))
        assert asyncio.run(echo_with_the_sdk_client(url, token)) == "through the gate"


def test_mcp_serve_takes_its_token_from_the_environment(tmp_path: Path, server: ScriptedOpenAIServer) -> None:
    env = {"AGENTFLOW_MCP_TOKEN": "my-own.token~1"}
    with mcp_serve(tmp_path, server, "127.0.0.2", env=env) as serving:
        assert serving.lines("stderr", 2)[1] == "token: the value of AGENTFLOW_MCP_TOKEN\n"  # not echoed, no warning
        assert request(serving.url, body=INITIALIZE)[0] == 401
        assert asyncio.run(echo_with_the_sdk_client(serving.url, "my-own.token~1")) == "through the gate"


@pytest.mark.parametrize("address", list(ADDRESSES))
def test_mcp_serve_refuses_a_forged_host_or_origin_on_every_address(
    tmp_path: Path, server: ScriptedOpenAIServer, address: str
) -> None:
    env = {"AGENTFLOW_MCP_TOKEN": "t0ken"}
    with mcp_serve(tmp_path, server, address, env=env) as serving:
        url = dialled(serving.url, address)
        port = url.split(":")[2].split("/")[0]
        auth = {"Authorization": "Bearer t0ken"}
        status, _, text = request(url, body=INITIALIZE, headers={**auth, "Host": f"attacker.example:{port}"})
        assert status == 421 and "attacker.example" in text
        origin = {**auth, "Origin": f"http://attacker.example:{port}"}
        assert request(url, body=INITIALIZE, headers=origin)[0] == 403
        assert request(url, body=INITIALIZE, headers={**auth, "Origin": "null"})[0] == 403
        allowed = {**auth, "Origin": f"http://localhost:{port}", "Host": f"localhost:{port}"}
        assert request(url, body=INITIALIZE, headers=allowed)[0] == 200


def test_mcp_serve_answers_to_the_names_it_is_told(tmp_path: Path, server: ScriptedOpenAIServer) -> None:
    config = write_config(tmp_path / "agentflow.toml", server, ["t.echo"], {"t": scripted_server()})
    command = [sys.executable, "-m", "agentflow_core", "mcp", "serve", "--config", str(config), "--http"]
    command += ["127.0.0.2:0", "--allow-host", "agentflow.lan"]
    with started(command, cwd=tmp_path, env={}, url_on="stderr") as serving:
        port = serving.url.split(":")[2].split("/")[0]
        assert request(serving.url, body=INITIALIZE, headers={"Host": f"agentflow.lan:{port}"})[0] == 200
        assert request(serving.url, body=INITIALIZE, headers={"Host": f"other.lan:{port}"})[0] == 421


# -- the viewer ------------------------------------------------------------------------------------


@pytest.fixture
def training_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "train"
    folder.mkdir()
    (folder / "metrics.jsonl").write_text('{"step": 1, "train/reward": 0.5}\n')
    return folder


def view(folder: Path, host: str, *, env: Mapping[str, str]) -> contextlib.AbstractContextManager[Started]:
    command = [sys.executable, "-m", "agentflow_core", "view", str(folder), "--host", host, "--port", "0"]
    return started(command, cwd=folder.parent, env=env, url_on="stdout")


def test_the_viewer_beyond_loopback_hands_its_token_to_a_browser_once(training_dir: Path) -> None:
    with view(training_dir, "0.0.0.0", env={}) as serving:
        [warning] = serving.lines("stderr", 1)
        assert warning == "warning: --host 0.0.0.0 is reachable beyond loopback; the page needs its token\n"
        found = re.fullmatch(r"(http://0\.0\.0\.0:\d+/)\?token=(\S+)", serving.url)
        assert found, serving.url
        base, token = dialled(found.group(1), "0.0.0.0"), found.group(2)

        for path in ("", "api/sources", "static/app.js"):
            status, headers, text = request(base + path)
            assert status == 401 and "open the link that `agentflow view` printed" in text, path
            assert headers["content-security-policy"].startswith("default-src 'none'")
        assert request(base + "?token=wrong")[0] == 401
        assert request(base + "api/sources", headers={"Authorization": f"Bearer {token}"})[0] == 200

        status, headers, _ = request(f"{base}?token={token}")
        assert status == 303 and headers["location"] == "/"  # the token leaves the address bar
        cookie = headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
        pair = cookie.split(";")[0]
        status, _, text = request(base + "api/sources", headers={"Cookie": pair})
        assert status == 200 and json.loads(text)[0]["kind"] == "train"
        assert request(base + "api/sources", headers={"Cookie": pair + "x"})[0] == 401
        forged = {"Cookie": pair, "Host": "attacker.example"}
        assert request(base + "api/sources", headers=forged)[0] == 421


@pytest.mark.parametrize("address", list(ADDRESSES))
def test_the_viewer_refuses_a_forged_host_or_origin_on_every_address(training_dir: Path, address: str) -> None:
    with view(training_dir, address, env={"AGENTFLOW_VIEW_TOKEN": "t0ken"}) as serving:
        base = dialled(serving.url, address)
        assert "token" not in base  # a token of the user's own is not printed
        auth = {"Authorization": "Bearer t0ken"}
        assert request(base + "api/sources", headers=auth)[0] == 200
        assert request(base + "api/sources")[0] == 401
        assert request(base + "api/sources", headers={**auth, "Host": "attacker.example:80"})[0] == 421
        assert request(base + "api/sources", headers={**auth, "Origin": "http://attacker.example"})[0] == 403
