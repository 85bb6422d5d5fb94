"""``agentflow view PATH [PATH_B]``: serve a run, a trajectory or a training run as a local page.

Two evaluation runs open on their comparison. ``--export DIR`` writes the page and its data as
static files instead of serving them.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import webbrowser
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from agentflow_core import UsageError

if TYPE_CHECKING:
    from agentflow_rl.view.api import ViewData

DEFAULT_PORT = 8765


@click.command("view")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind; keep it local.")
@click.option("--port", type=click.IntRange(0, 65535), default=DEFAULT_PORT, show_default=True, help="0: any.")
@click.option("--open", "open_browser", is_flag=True, help="Open the page in the default browser.")
@click.option("--export", "export_dir", type=click.Path(path_type=Path), help="Write a static site instead.")
def view_command(paths: tuple[Path, ...], host: str, port: int, open_browser: bool, export_dir: Path | None) -> None:
    """Look at an evaluation run, a `solve --json` trajectory or a Flow-GRPO output dir in the browser.

    Give two evaluation runs to compare them item by item. While `agentflow eval` or a training
    run is still writing, the page picks up new results by itself.
    """
    from agentflow_rl.view.api import ViewData
    from agentflow_rl.view.sources import open_source

    data = ViewData([open_source(path) for path in paths])
    if export_dir is not None:
        from agentflow_rl.view.export import export_site

        count = export_site(data, export_dir)
        click.echo(f"wrote {export_dir / 'index.html'} and {count} data files; open it in a browser")
        return
    try:
        asyncio.run(_serve(data, host, port, open_browser))
    except KeyboardInterrupt:
        click.echo("stopped", err=True)


async def _serve(data: ViewData, host: str, port: int, open_browser: bool) -> None:
    from aiohttp import web

    from agentflow_rl.view.server import is_loopback, make_app

    runner = web.AppRunner(make_app(data, loopback_only=is_loopback(host)), access_log=None)
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
    click.echo(f"AgentFlow view of {_names(data.sources)} at {url}  (Ctrl-C stops it)")
    sys.stdout.flush()
    if open_browser:
        webbrowser.open(url)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def _url(addresses: Sequence[Any]) -> str:
    """The first bound address (the real port when ``--port 0``)."""
    host, port = addresses[0][0], addresses[0][1]
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def _names(sources: Sequence[Any]) -> str:
    return ", ".join(str(s.path) for s in sources)
