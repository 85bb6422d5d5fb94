"""The example plugins in ``plugins/``, installed as a user would install them, into a fresh venv.

Nothing here imports the plugins into the test process: both are built into wheels and
installed next to a wheel of agentflow itself, then driven through the ``agentflow`` command
of that venv, so what is checked is the published contract (the entry point, the hooks, the
public API), not the source tree. Each plugin's own test suite runs inside the same venv.

Offline by design: the venv reuses the test runner's installed dependencies (a ``.pth`` file
lists the runner's site-packages; the runner's own agentflow is shadowed by the venv's copy),
and pip runs with ``--no-index --no-deps --no-build-isolation``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import site
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from types import ModuleType

import pytest

from agentflow_core import ToolSuccess, Trajectory
from agentflow_core.serde import from_json
from agentflow_core.testing import Reply, ScriptedOpenAIServer, scripted_json

pytestmark = pytest.mark.slow  # about 30 s: three wheels, a venv, two plugin suites

ROOT = Path(__file__).resolve().parents[1]
PLUGINS = {
    "agentflow-sympy": ROOT / "plugins" / "agentflow-sympy",
    "agentflow-ollama": ROOT / "plugins" / "agentflow-ollama",
}
ROOTS = ("x**2 - 5*x + 6", "solutions for x: [2, 3]")  # what the executor sends, what the tool must answer


def _build_requirements_missing() -> str | None:
    for module in ("sympy", "httpx", "setuptools", "pip"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed in the test environment"
    # Read the version, do not import: importing setuptools here would patch distutils in the test process.
    version = metadata.version("setuptools")
    if tuple(int(p) for p in version.split(".")[:2]) < (70, 1) and importlib.util.find_spec("wheel") is None:
        return f"setuptools {version} cannot build wheels without 'wheel'; install setuptools>=70.1"
    return None


@dataclass(frozen=True)
class Venv:
    root: Path
    #: The copies the wheels were built from; each plugin's tests run from here.
    sources: Path

    @property
    def bin(self) -> Path:
        return self.root / ("Scripts" if os.name == "nt" else "bin")

    @property
    def python(self) -> Path:
        return self.bin / ("python.exe" if os.name == "nt" else "python")

    def run(self, *args: str | Path, cwd: Path, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(a) for a in args], cwd=cwd, env=_clean_env(), capture_output=True, text=True, timeout=timeout
        )

    def agentflow(self, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
        return self.run(self.bin / "agentflow", *args, cwd=cwd)


def _clean_env() -> dict[str, str]:
    """No settings of the developer's leak in: keys, plugin switches, a PYTHONPATH that points at the source tree."""
    prefixes = ("OPENAI_", "AGENTFLOW_", "OLLAMA_", "PYTHON", "VIRTUAL_ENV", "PIP_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    return {**env, "PYTHONNOUSERSITE": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PYTHONDONTWRITEBYTECODE": "1"}


def _copy_sources(dest: Path) -> dict[str, Path]:
    """Build from copies: building in place would leave build/ and *.egg-info in the working tree."""
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "build", "dist", ".pytest_cache")
    project = dest / "agentflow"
    project.mkdir(parents=True)
    for entry in ROOT.iterdir():  # the project files and its packages, not tests, runs or caches
        if entry.is_file():
            shutil.copy2(entry, project / entry.name)
        elif entry.name.startswith("agentflow_"):
            shutil.copytree(entry, project / entry.name, ignore=ignore)
    copies = {"agentflow": project}
    for name, path in PLUGINS.items():
        copies[name] = shutil.copytree(path, dest / name, ignore=ignore)
    return copies


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Venv:
    missing = _build_requirements_missing()
    if missing:
        pytest.skip(f"cannot build the plugins offline: {missing}")
    work = tmp_path_factory.mktemp("third-party")
    copies = _copy_sources(work / "src")
    env = Venv(work / "venv", work / "src")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env.root)], check=True, timeout=120)
    purelib = subprocess.run(
        [str(env.python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
        env=_clean_env(),
    ).stdout.strip()
    # The runner's packages (openai, attrs, sympy, pytest, pip, setuptools...) come after the venv's own.
    Path(purelib, "runner-packages.pth").write_text("\n".join(_runner_site_dirs()) + "\n")
    install = env.run(
        env.python, "-m", "pip", "install", "--quiet", "--no-index", "--no-deps", "--no-build-isolation",
        "--ignore-installed", *copies.values(), cwd=work, timeout=300,
    )  # fmt: skip
    assert install.returncode == 0, install.stdout + install.stderr
    return env


def _runner_site_dirs() -> list[str]:
    """Every site directory the runner imports from (its venv's, and the system's when the venv shares them).

    Taken from ``sys.path`` by name, so the source tree that pytest puts on the path is left out.
    """
    dirs = [*site.getsitepackages(), *(p for p in sys.path if Path(p).name in ("site-packages", "dist-packages"))]
    return list(dict.fromkeys(d for d in dirs if Path(d).is_dir()))


def test_the_venv_runs_the_installed_copies(venv: Venv, tmp_path: Path) -> None:
    code = "import agentflow_core, agentflow_sympy, agentflow_ollama as o; print(agentflow_core.__file__, o.__file__)"
    where = venv.run(venv.python, "-c", code, cwd=tmp_path)
    assert where.returncode == 0, where.stderr
    assert all(Path(p).is_relative_to(venv.root) for p in where.stdout.split()), where.stdout


def test_listings_name_each_plugins_distribution(venv: Venv, tmp_path: Path) -> None:
    tools = venv.agentflow("tools", cwd=tmp_path)
    assert tools.returncode == 0, tools.stderr
    line = next(line for line in tools.stdout.splitlines() if line.startswith("symbolic_math "))
    assert line.endswith("[agentflow-sympy 0.1.0 (sympy)]"), line
    engines = venv.agentflow("engines", cwd=tmp_path).stdout
    line = next(line for line in engines.splitlines() if line.startswith("ollama "))
    assert line.endswith("[agentflow-ollama 0.1.0 (ollama)]"), line
    plugins = venv.agentflow("plugins", cwd=tmp_path).stdout
    assert "agentflow-sympy 0.1.0 (sympy): register_tools" in plugins
    assert "agentflow-ollama 0.1.0 (ollama): register_engines" in plugins
    assert "agentflow-sympy" not in tools.stderr and "agentflow-ollama" not in tools.stderr  # no load warning


def test_the_config_reference_documents_an_installed_plugins_settings(venv: Venv, tmp_path: Path) -> None:
    installed = venv.agentflow("config", "reference", cwd=tmp_path)
    assert installed.returncode == 0, installed.stderr
    assert "### `[tools.symbolic_math]`\n\nFrom agentflow-sympy 0.1.0 (sympy).\n" in installed.stdout
    assert "| `timeout_s` | number, > 0 | `10.0` | Seconds one computation may take" in installed.stdout
    builtin = venv.agentflow("config", "reference", "--builtin-only", cwd=tmp_path).stdout
    assert "symbolic_math" not in builtin and "### `[tools.python_coder]`" in builtin


@pytest.fixture
def openai_server() -> Iterator[ScriptedOpenAIServer]:
    with ScriptedOpenAIServer() as server:
        yield server


def test_solve_with_symbolic_math_on_openai_models(
    venv: Venv, tmp_path: Path, openai_server: ScriptedOpenAIServer
) -> None:
    roles = ("planner", "executor", "verifier", "generator")
    tables = "\n".join(f'{r} = {{ model = "openai:{r}", base_url = "{openai_server.base_url}" }}' for r in roles)
    (tmp_path / "agentflow.toml").write_text(f"[engines]\n{tables}\n")
    openai_server.enqueue(
        "planner",
        Reply("A quadratic; solve it exactly."),
        scripted_json({"question": "Find the roots.", "tool": "symbolic_math"}),
    )
    arguments = {"expression": ROOTS[0], "operation": "solve", "variable": "x"}
    openai_server.enqueue("executor", scripted_json({"explanation": "solve it", "arguments": arguments}))
    openai_server.enqueue("verifier", scripted_json({"analysis": "both roots found", "decision": "STOP"}))
    openai_server.enqueue("generator", Reply("x = 2 or x = 3"))
    result = venv.agentflow("solve", "Solve x^2 - 5x + 6 = 0", "--tools", "symbolic_math", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    trajectory = from_json(result.stdout, Trajectory)
    (step,) = trajectory.steps
    assert step.tool_call.tool == "symbolic_math" and dict(step.tool_call.arguments) == arguments
    assert isinstance(step.result, ToolSuccess) and step.result.output == ROOTS[1]
    assert trajectory.final_answer is not None and trajectory.final_answer.text == "x = 2 or x = 3"
    assert ROOTS[1] in openai_server.requests_for("verifier")[0].messages[-1]["content"]


def _ollama_server_module() -> ModuleType:
    """The Ollama plugin's scripted server (standard library only), loaded from its file."""
    path = PLUGINS["agentflow-ollama"] / "tests" / "ollama_server.py"
    spec = importlib.util.spec_from_file_location("agentflow_ollama_scripted_server", path)
    assert spec is not None and spec.loader is not None
    module = sys.modules.get(spec.name) or importlib.util.module_from_spec(spec)
    if spec.name not in sys.modules:
        sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
        spec.loader.exec_module(module)
    return module


def test_solve_on_an_ollama_engine(venv: Venv, tmp_path: Path) -> None:
    scripted = _ollama_server_module()
    reply = scripted.OllamaReply
    with scripted.ScriptedOllamaServer() as ollama:
        ollama.enqueue(
            reply("A quadratic; solve it exactly."),
            reply(json.dumps({"question": "Find the roots.", "tool": "symbolic_math"})),
            reply(json.dumps({"explanation": "solve", "arguments": {"expression": ROOTS[0], "operation": "solve"}})),
            reply(json.dumps({"analysis": "done", "decision": "STOP"})),
            reply("The roots are 2 and 3."),
        )
        result = venv.agentflow(
            "solve", "Solve x^2 - 5x + 6 = 0", "--engine", "ollama:tiny", "--base-url", ollama.base_url,
            "--tools", "symbolic_math", "--json", cwd=tmp_path,
        )  # fmt: skip
        requests = list(ollama.requests)
    assert result.returncode == 0, result.stderr
    trajectory = from_json(result.stdout, Trajectory)
    assert set(trajectory.engines.values()) == {"ollama:tiny"}
    assert isinstance(trajectory.steps[0].result, ToolSuccess) and trajectory.steps[0].result.output == ROOTS[1]
    assert trajectory.final_answer is not None and trajectory.final_answer.text == "The roots are 2 and 3."
    assert len(requests) == 5 and all(r.path == "/api/chat" and r.body["stream"] is False for r in requests)
    assert isinstance(requests[2].body["format"], dict)  # the executor asked for the tool's argument schema


@pytest.mark.parametrize("plugin", sorted(PLUGINS))
def test_the_plugins_own_suite_passes_in_the_venv(venv: Venv, plugin: str) -> None:
    source = venv.sources / plugin
    result = venv.run(venv.python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests", cwd=source, timeout=300)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and " skipped" not in result.stdout, result.stdout[-2000:]
