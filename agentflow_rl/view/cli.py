"""``agentflow view PATH [PATH_B]``: serve a run, a trajectory or a training run as a local page.

Two evaluation runs open on their comparison. ``--export DIR`` writes the page and its data as
static files instead of serving them. Bound beyond loopback, the page needs a token (see
``server``): ``AGENTFLOW_VIEW_TOKEN``, or one made for the run and carried by the printed link.
"""

from __future__ import annotations

import asyncio
import socket
import sys
import threading
import webbrowser
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from agentflow_core import UsageError
from agentflow_core.access import Access, server_access
from agentflow_core.inert import inert

if TYPE_CHECKING:
    from agentflow_rl.view.api import ViewData

DEFAULT_PORT = 8765
#: The viewer's token; without it, one is made when bound beyond loopback.
TOKEN_VARIABLE = "AGENTFLOW_VIEW_TOKEN"


@click.command("view")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind; beyond loopback needs a token.")
@click.option("--port", type=click.IntRange(0, 65535), default=DEFAULT_PORT, show_default=True, help="0: any.")
@click.option(
    "--allow-host", "allowed_hosts", multiple=True, metavar="NAME", help="Also answer to this Host name (repeatable)."
)
@click.option("--open", "open_browser", is_flag=True, help="Open the page in the default browser.")
@click.option("--export", "export_dir", type=click.Path(path_type=Path), help="Write a static site instead.")
def view_command(
    paths: tuple[Path, ...],
    host: str,
    port: int,
    allowed_hosts: tuple[str, ...],
    open_browser: bool,
    export_dir: Path | None,
) -> None:
    """Look at an evaluation run, a `solve --json` trajectory or a Flow-GRPO output dir in the browser.

    Give two evaluation runs to compare them item by item. While `agentflow eval` or a training
    run is still writing, the page picks up new results by itself. Beyond loopback the page
    needs a token: AGENTFLOW_VIEW_TOKEN, or one made and put in the printed link.
    """
    from agentflow_rl.view.api import ViewData
    from agentflow_rl.view.sources import open_source

    data = ViewData([open_source(path) for path in paths])
    if export_dir is not None:
        from agentflow_rl.view.export import export_site

        count = export_site(data, export_dir)
        click.echo(inert(f"wrote {export_dir / 'index.html'} and {count} data files; open it in a browser"))
        return
    access, made = server_access(_addresses(host), variable=TOKEN_VARIABLE, allowed_hosts=(host, *allowed_hosts))
    try:
        asyncio.run(_serve(data, host, port, access, made=made, open_browser=open_browser))
    except KeyboardInterrupt:
        click.echo("stopped", err=True)


async def _serve(data: ViewData, host: str, port: int, access: Access, *, made: bool, open_browser: bool) -> None:
    from aiohttp import web

    from agentflow_rl.view.server import TOKEN_PARAMETER, make_app

    runner = web.AppRunner(make_app(data, access), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise UsageError(f"cannot listen on {host}:{port} ({exc.strerror}); pass another --port, or --port 0") from None
    # The first read of a big results.jsonl takes seconds; start it now (the page shows the rows
    # read so far meanwhile), on a daemon thread so that Ctrl-C does not wait for it.
    threading.Thread(target=data.warm, name="agentflow-view-read", daemon=True).start()
    url = _url(runner.addresses)
    link = url + (f"?{TOKEN_PARAMETER}={access.token}" if access.token else "")
    shown = link if made else url  # a token of the user's own is not echoed into logs
    click.echo(inert(f"AgentFlow view of {_names(data.sources)} at {shown}  (Ctrl-C stops it)"))
    sys.stdout.flush()
    if access.beyond_loopback:
        click.echo(f"warning: --host {host} is reachable beyond loopback; the page needs its token", err=True)
    if access.token is not None and not made:
        click.echo(f"token: the value of {TOKEN_VARIABLE}; open the page once with ?token=<it>", err=True)
    if open_browser:
        webbrowser.open(link)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def _addresses(host: str) -> list[str]:
    """The addresses ``--host`` binds, as aiohttp will resolve it."""
    try:
        found = socket.getaddrinfo(host or None, 0, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise UsageError(f"--host {host}: not an address this machine has ({exc.strerror})") from None
    return sorted({str(info[4][0]) for info in found})


def _url(addresses: Sequence[Any]) -> str:
    """The first bound address (the real port when ``--port 0``)."""
    host, port = addresses[0][0], addresses[0][1]
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def _names(sources: Sequence[Any]) -> str:
    return ", ".join(str(s.path) for s in sources)
