"""Developer tasks. ``nox -l`` lists them; ``nox -s tests`` is what CI runs."""

from __future__ import annotations

import nox

nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["lint", "tests"]

# The CPU build of torch; an unpinned torch would pull a multi-GB CUDA build on machines
# without a local wheel. Users elsewhere install whatever torch suits them (pyproject has a range).
TORCH = "torch==2.13.0"


@nox.session(python="3.11")
def tests(session: nox.Session) -> None:
    """Run the whole test suite (real HTTP servers, the real embedded model)."""
    session.install(TORCH)
    session.install("-e", ".[dev,local,litellm,hf]")
    session.run("pytest", "-q", "-ra", *session.posargs)


@nox.session(python="3.11")
def lint(session: nox.Session) -> None:
    """ruff over the code and tests."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", ".")
