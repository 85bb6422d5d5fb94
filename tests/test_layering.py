"""The core stands on its own: nothing in ``agentflow_core`` imports the packages built on it.

The built-in tools and benchmarks reach the core only through agentflow's own entry points, as a
third party's would; an import the other way would make the core depend on docker, bm25s and the
eval stack, and let built-ins use back doors a plugin cannot.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "agentflow_core"
ABOVE = ("agentflow_tools", "agentflow_rl")


def imported_modules(path: Path) -> set[str]:
    """Modules a file imports, at the top or in a function, including ``importlib.import_module("...")``."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in (
            "import_module",
            "__import__",
        ):
            names.update(a.value for a in node.args[:1] if isinstance(a, ast.Constant) and isinstance(a.value, str))
    return names


def test_the_scan_sees_every_kind_of_import(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import agentflow_tools.plugin\nfrom agentflow_rl import cli\n"
        "def f():\n    import importlib\n    importlib.import_module('agentflow_tools.sandbox')\n"
    )
    assert imported_modules(sample) >= {"agentflow_tools.plugin", "agentflow_rl", "agentflow_tools.sandbox"}


@pytest.mark.parametrize("path", sorted(CORE.rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_core_module_imports_tools_or_rl(path: Path) -> None:
    wrong = sorted(m for m in imported_modules(path) if m.split(".")[0] in ABOVE)
    assert not wrong, f"{path.relative_to(ROOT)} imports {', '.join(wrong)}"


def test_importing_the_core_and_its_test_helpers_loads_neither() -> None:
    code = (
        "import sys, agentflow_core, agentflow_core.testing, agentflow_core.cli, agentflow_core.plugins, "
        "agentflow_core.solver\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('agentflow_tools', 'agentflow_rl')))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.strip() == "[]"
