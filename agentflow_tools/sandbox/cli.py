"""``agentflow sandbox build | run | prune``: make the local image, try code by hand, clear leftovers.

``run`` uses the ``[tools.python_coder]`` settings of the config python_coder would use, so what
works here works for the tool. Errors are ``SandboxError`` lines naming the fix; the CLI's group
prints them as ``Error: ...``.
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import IO

import attrs
import click

from agentflow_core.config import load_config, structure_settings
from agentflow_core.errors import UsageError
from agentflow_tools.python_coder import Settings
from agentflow_tools.sandbox.base import ExecutionResult
from agentflow_tools.sandbox.container import connect, sandbox_containers
from agentflow_tools.sandbox.docker_sandbox import DockerSandbox
from agentflow_tools.sandbox.image import DEFAULT_TAG, TAG_VARIABLE, build_image, local_tag
from agentflow_tools.sandbox.settings import OWNER_LABEL


@click.group()
def sandbox() -> None:
    """Build and try the Docker sandbox that python_coder runs code in."""


@sandbox.command()
@click.option(
    "--tag",
    default=local_tag,
    show_default=f"{DEFAULT_TAG}, or ${TAG_VARIABLE}",
    help="Name of the image to make.",
)
def build(tag: str) -> None:
    """Make a sandbox image from this machine's Python and standard library (no download).

    python_coder makes the local image by itself the first time it needs it; this makes it now, or
    again (after a Python upgrade, say).
    """
    client = connect()
    image_id = build_image(client, tag)
    size_mb = client.images.get(image_id).attrs.get("Size", 0) / 1e6
    click.echo(f"built {tag} ({image_id[:19]}, {size_mb:.0f} MB) from Python {sys.version.split()[0]}")
    if tag == local_tag():
        click.echo("python_coder and `agentflow sandbox run` use it when no image is configured", err=True)
    else:
        click.echo(f'use it with [tools.python_coder] image = "{tag}"', err=True)


@sandbox.command()
@click.argument("file", required=False, type=click.File("r", encoding="utf-8"))
@click.option("-c", "code", help="Code to run instead of FILE.")
@click.option(
    "--image", help=f"Image to run in (default: [tools.python_coder] image, else {DEFAULT_TAG}, built if missing)."
)
@click.option("--timeout", "timeout_s", type=click.FloatRange(min=0, min_open=True), help="Wall-clock limit, seconds.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="agentflow.toml to read.")
@click.option("--json", "as_json", is_flag=True, help="Print the whole result as JSON.")
def run(
    file: IO[str] | None,
    code: str | None,
    image: str | None,
    timeout_s: float | None,
    config_path: str | None,
    as_json: bool,
) -> None:
    """Run FILE (or -c CODE; FILE - reads stdin) in the sandbox, as python_coder would.

    What the code prints is shown inert (escape sequences escaped), as any output of code that
    needed a sandbox; --json has it exactly.
    """
    from agentflow_core.inert import inert, inert_json
    from agentflow_core.serde import to_json

    if code is not None and file is None:
        source = code
    elif file is not None and code is None:
        source = file.read()
    else:
        raise UsageError("give exactly one of FILE or -c CODE")
    settings = _settings(config_path, image=image, timeout_s=timeout_s)
    result, image_used = asyncio.run(_run_once(settings, source))
    if as_json:
        click.echo(inert_json(to_json(result, indent=2)))
    else:
        click.echo(inert(result.stdout, keep_lines=True), nl=False)
        click.echo(inert(result.stderr, keep_lines=True), nl=False, err=True)
        click.echo(f"[{result.describe()}, {result.elapsed_s:.2f} s in {image_used}]", err=True)
    sys.exit(_status(result))


@sandbox.command()
@click.option("--all", "everything", is_flag=True, help="Also containers of processes still running.")
def prune(everything: bool) -> None:
    """Remove sandbox containers left by processes that ended without closing them."""
    client = connect()
    removed = 0
    for container in sandbox_containers(client):
        if everything or not _alive(container.labels.get(OWNER_LABEL, "")):
            container.remove(force=True)
            removed += 1
    click.echo(f"removed {removed} sandbox container(s)")


def _settings(config_path: str | None, *, image: str | None, timeout_s: float | None) -> Settings:
    config = load_config(config_path)
    settings = structure_settings(Settings, config.tool_settings("python_coder"), where="tools.python_coder")
    return attrs.evolve(
        settings,
        image=settings.image if image is None else image,
        timeout_s=settings.timeout_s if timeout_s is None else timeout_s,
        pool_size=1,
    )


async def _run_once(settings: Settings, code: str) -> tuple[ExecutionResult, str | None]:
    async with DockerSandbox(settings=settings) as box:
        return await box.run(code), box.image


def _status(result: ExecutionResult) -> int:
    """The code's own exit status; 124 for a timeout and 128 + N for signal N, as timeout(1) and shells say."""
    if result.timed_out:
        return 124
    return 128 - result.exit_code if result.exit_code < 0 else min(result.exit_code, 255)


def _alive(pid: str) -> bool:
    if not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, under another user
        return True
    return True
