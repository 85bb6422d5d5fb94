"""The core stands on its own: nothing in ``agentflow_core`` imports the packages built on it.

The built-in tools and benchmarks reach the core only through agentflow's own entry points, as a
third party's would; an import the other way would make the core depend on docker, bm25s and the
eval stack, and let built-ins use back doors a plugin cannot. Above the core, ``agentflow_rl`` has
no import cycle, and training uses only what the core declares for it (the token runtime).
"""

from __future__ import annotations

import ast
import re
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


# -- agentflow_rl: no import cycles, training through declared names only ----------------------------

RL = ROOT / "agentflow_rl"
FLOW_GRPO = RL / "flow_grpo"
PROJECT = ("agentflow_core", "agentflow_tools", "agentflow_rl")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules() -> dict[str, Path]:
    return {module_name(p): p for package in PROJECT for p in (ROOT / package).rglob("*.py")}


MODULES = project_modules()


def imported_names(path: Path) -> list[tuple[str, str | None]]:
    """``(module, name)`` for every import in a file, at the top or in a function: ``import a.b`` is
    ``("a.b", None)``, ``from a import b`` is ``("a", "b")``; relative imports resolved."""
    found: list[tuple[str, str | None]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, None) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            found += [(base, alias.name) for alias in node.names]
    return found


def edges(path: Path) -> set[str]:
    """The project modules a file imports: ``from a import b`` is an edge to ``a.b`` when that is a
    module, else to ``a``."""
    targets = set()
    for module, name in imported_names(path):
        target = f"{module}.{name}" if name and f"{module}.{name}" in MODULES else module
        if target in MODULES:
            targets.add(target)
    return targets


def import_graph(prefix: str) -> dict[str, set[str]]:
    """Every module under ``prefix`` and the modules under it that it imports (package ``__init__``
    files count only where they are imported by name)."""
    inside = {name: path for name, path in MODULES.items() if name == prefix or name.startswith(prefix + ".")}
    return {name: {t for t in edges(path) if t in inside and t != name} for name, path in inside.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component that has one, as the list of modules around it."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's algorithm
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(_cycle_through(graph, set(component)))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _cycle_through(graph: dict[str, set[str]], component: set[str]) -> list[str]:
    """A path from the component's first module back to itself, staying inside the component."""
    start = min(component)
    paths = {start: [start]}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for nxt in sorted(graph[node] & component):
            if nxt == start:
                return [*paths[node], start]
            if nxt not in paths:
                paths[nxt] = [*paths[node], nxt]
                queue.append(nxt)
    raise AssertionError(f"no cycle in {sorted(component)}")


def test_the_cycle_finder_names_a_cycle_through_function_level_imports(tmp_path: Path) -> None:
    graph = {"a.tasks": {"a.plugin"}, "a.plugin": {"a.cli"}, "a.cli": {"a.trainer"}, "a.trainer": {"a.tasks"}}
    assert cycles(graph) == [["a.cli", "a.trainer", "a.tasks", "a.plugin", "a.cli"]]
    assert cycles({**graph, "a.trainer": set()}) == []
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    from agentflow_rl.flow_grpo import trainer\n")
    assert "agentflow_rl.flow_grpo.trainer" in edges(sample)


def test_no_import_cycle_among_agentflow_rl_modules() -> None:
    found = cycles(import_graph("agentflow_rl"))
    assert not found, "import cycles: " + "; ".join(" -> ".join(cycle) for cycle in found)


def reachable(start: str, graph: dict[str, set[str]]) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        node = todo.pop()
        if node not in seen:
            seen.add(node)
            todo += graph.get(node, ())
    return seen


@pytest.mark.parametrize(
    "module",
    [
        "agentflow_rl.flow_grpo.trainer",
        "agentflow_rl.flow_grpo.tasks.setup",
        "agentflow_rl.flow_grpo.registry",
        "agentflow_rl.flow_grpo.plugin",
    ],
)
def test_training_reaches_no_command(module: str) -> None:
    """The old circle ran tasks -> agentflow_rl.plugin -> CLI -> trainer -> tasks: a training run
    loads its plugins, never the commands that start it."""
    graph = {name: edges(path) for name, path in MODULES.items()}
    commands = {"agentflow_rl.plugin", "agentflow_rl.cli", "agentflow_rl.flow_grpo.cli", "agentflow_core.cli"}
    reached = reachable(module, graph)
    assert not reached & commands, f"{module} reaches {sorted(reached & commands)}"


def private_names(path: Path) -> list[str]:
    """Project names starting with ``_`` that a file imports, or reads off a project module it imported."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    bad, modules = [], set()
    for module, name in imported_names(path):
        if module.split(".")[0] not in PROJECT:
            continue
        if any(part.startswith("_") and part != "__init__" for part in module.split(".")):
            bad.append(module)
        if name is not None and name.startswith("_"):
            bad.append(f"{module}.{name}")
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules |= {a.asname or a.name.split(".")[0] for a in node.names if a.name.split(".")[0] in PROJECT}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in PROJECT:
            modules |= {a.asname or a.name for a in node.names if f"{node.module}.{a.name}" in MODULES}
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            private = node.attr.startswith("_") and not node.attr.startswith("__")
            if private and node.value.id in modules:
                bad.append(f"{node.value.id}.{node.attr}")
    return bad


def test_the_private_name_scan_sees_imports_and_attributes(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "from agentflow_rl import cli\nfrom agentflow_core.engines.hf_engine import _pick\n"
        "import agentflow_core.engines.prefix as prefix\ncli._override('a=1')\nprefix._forward\n"
    )
    assert sorted(private_names(sample)) == [
        "agentflow_core.engines.hf_engine._pick",
        "cli._override",
        "prefix._forward",
    ]


TRAINING = sorted(FLOW_GRPO.rglob("*.py"))


@pytest.mark.parametrize("path", TRAINING, ids=lambda p: str(p.relative_to(ROOT)))
def test_training_uses_declared_names_only(path: Path) -> None:
    """No ``_name`` of the project, and of the core's engines only the token runtime."""
    private = private_names(path)
    assert not private, f"{path.relative_to(ROOT)} uses private names: {', '.join(private)}"
    runtime = "agentflow_core.engines.token_runtime"
    engines = sorted(m for m in edges(path) if m.startswith("agentflow_core.engines.") and m != runtime)
    assert not engines, f"{path.relative_to(ROOT)} imports {', '.join(engines)}; use {runtime}"


PACKAGES = sorted(p.parent for p in FLOW_GRPO.rglob("__init__.py"))


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_each_flow_grpo_package_maps_what_it_holds(package: Path) -> None:
    """Every module and folder of a package is named in its docstring (or in ``flow_grpo``'s map)."""
    docs = ast.get_docstring(ast.parse((package / "__init__.py").read_text(encoding="utf-8"))) or ""
    docs += ast.get_docstring(ast.parse((FLOW_GRPO / "__init__.py").read_text(encoding="utf-8"))) or ""
    held = [p.stem for p in package.glob("*.py") if not p.name.startswith("__")]
    held += [p.name for p in package.iterdir() if p.is_dir() and not p.name.startswith("__")]
    missing = sorted(name for name in held if not re.search(rf"\b{re.escape(name)}\b", docs))
    assert not missing, f"{package.relative_to(ROOT)}/__init__.py does not name {missing}"


@pytest.mark.parametrize("path", TRAINING, ids=lambda p: str(p.relative_to(ROOT)))
def test_each_training_module_says_what_it_is(path: Path) -> None:
    docstring = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
    assert docstring and docstring.strip().splitlines()[0], f"{path.relative_to(ROOT)} has no docstring"
