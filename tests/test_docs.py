"""The README and the pages under docs/ say only what the code does: every ``agentflow`` command and
flag they show exists (checked through click's own description of the CLI), every ``nox -s`` session
is in the noxfile, every environment variable the guides name is read somewhere in the source, every
relative link and repository path leads to a file (and a link's ``#anchor`` to a heading), every TOML
snippet loads with the real config loader and names installed plugins, every Python snippet compiles
and imports only names that exist, the plugin modules the docs show are the ones that ship or work as
shown, and every measurement file under docs/results/ is linked from docs/results.md.
"""

from __future__ import annotations

import ast
import asyncio
import importlib
import importlib.util
import re
import shlex
import types
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import attrs
import click
import pytest

from agentflow_core.cli import make_cli
from agentflow_core.plugins import make_plugin_manager

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
#: The pages whose ``NAME_LIKE_THIS`` words are environment variables; the sandbox and MCP pages
#: also name kernel constants (``RLIMIT_NOFILE``) and a user's own variables (``${DOCS_TOKEN}``).
GUIDES = [
    ROOT / "README.md",
    *(ROOT / "docs" / name for name in ("writing-a-plugin.md", "concepts.md", "flow-grpo.md", "results.md")),
]
PACKAGES = ("agentflow_core", "agentflow_tools", "agentflow_rl")
#: Top-level folders of the repository; a path that starts with one of them must exist.
REPO_FOLDERS = (*PACKAGES, "benchmarks", "docs", "plugins", "tests")
SOURCE_DIRS = [ROOT / "agentflow_core", ROOT / "agentflow_tools", ROOT / "agentflow_rl", *ROOT.glob("plugins/*/src")]

#: Flags the docs name in prose that belong to another program, and that program.
FOREIGN_FLAGS = {
    "--max-lora-rank": "vllm serve",
    "--allow-private-ips": "mcp-server-fetch",
    "--ignore-robots-txt": "mcp-server-fetch",
    "--runtime": "dockerd",
    "--storage-driver": "dockerd",
    "--no-deps": "pip install",
    "--hostile": "tests/mcp_server.py",
    "--enable-lora": "vllm serve",
    "--logprobs-mode": "vllm serve",
    "--max-loras": "vllm serve",
    "--lora-modules": "vllm serve",
}

#: Variables the docs name that a library reads, not our code; each with the file and text that
#: hand the job to that library, so the entry goes stale loudly if that code changes.
READ_BY_A_LIBRARY = {
    "HTTPS_PROXY": ("agentflow_core/engines/chat_http.py", "urllib.request.getproxies()"),
    "DASHSCOPE_API_KEY": ("agentflow_core/engines/litellm_engine.py", "LiteLLM reads its provider's own variable"),
}


# -- what the documents show ---------------------------------------------------------------------


def shell_lines(text: str) -> Iterator[str]:
    """Lines of fenced shell blocks (continuations joined) and inline code spans."""
    for block in re.findall(r"^```(?:bash|console|sh|shell)\n(.*?)^```", text, re.S | re.M):
        yield from re.sub(r"\\\n\s*", " ", block).splitlines()
    prose = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    yield from re.findall(r"`([^`\n]+)`", prose)


def shell_commands(line: str) -> list[list[str]]:
    """The words of each command of a shell line, split at ``&&``, ``||``, ``;`` and ``|`` outside quotes,
    comments dropped."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    found: list[list[str]] = [[]]
    for token in lexer:
        if token in ("&&", "||", ";", "|", "&"):
            found.append([])
        else:
            found[-1].append(token)
    return found


def commands(text: str, program: str) -> list[list[str]]:
    """Each invocation of ``program``: its arguments, after ``$`` prompts and the variables set for it."""
    found = []
    for line in shell_lines(text):
        if program not in line:
            continue
        for words in shell_commands(line.removeprefix("$ ")):
            while words and re.fullmatch(r"[A-Z][A-Z0-9_]*=.*", words[0]):  # OMP_NUM_THREADS=1 program ...
                words = words[1:]
            if words and words[0] == program:
                found.append([w.strip("[]") for w in words[1:]])
    return found


def prose_flags(text: str) -> set[str]:
    """``--flags`` in inline code that starts with one (``--mode base``, ``--config``)."""
    spans = re.findall(r"`(--[a-z][^`\n]*)`", re.sub(r"^```.*?^```", "", text, flags=re.S | re.M))
    return {flag for span in spans for flag in re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", span)}


def environment_variables(text: str) -> set[str]:
    """``NAME_LIKE_THIS`` words, except path placeholders (``RUN_DIR/results.jsonl``) and variables a
    doc sets for another program (``OMP_NUM_THREADS=1 torchrun ...``): ours must be read by our code."""
    named = set(re.findall(r"\b[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+\b(?!/)", text))
    set_for_others = {n for n in re.findall(r"(?<![\w$])([A-Z][A-Z0-9_]*)=", text) if not n.startswith("AGENTFLOW_")}
    return named - set_for_others


def prose(text: str) -> str:
    """The text outside fenced blocks."""
    return re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)


def fenced(text: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", text, re.S | re.M)


def links(text: str) -> list[str]:
    """Targets of Markdown links and images that stay in the repository (no scheme, no ``mailto:``)."""
    targets = re.findall(r"!?\[[^\]]*\]\(([^)\s]+)\)", prose(text))
    return [t for t in targets if not re.match(r"[a-z][a-z0-9+.-]*:", t)]


def anchors(text: str) -> set[str]:
    """The ``#fragment`` each heading gets on GitHub: lower case, punctuation dropped, spaces to
    hyphens, and ``-1``, ``-2`` ... after a repeated one."""
    seen: dict[str, int] = {}
    found = set()
    for heading in re.findall(r"^#{1,6} (.+)$", prose(text), re.M):
        words = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()
        slug = re.sub(r"[^\w\- ]", "", words).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(f"{slug}-{count}" if count else slug)
    return found


def repository_paths(text: str) -> set[str]:
    """Paths from the repository's root that the text names in code (``agentflow_rl/flow_grpo/configs/x.toml``),
    except patterns (``{a,b}``, ``*``, ``<module>``) and what a command writes (under ``runs/``)."""
    code = " ".join([*shell_lines(text), *fenced(text, r"\w*")])
    pattern = rf"(?<![\w./-])((?:{'|'.join(REPO_FOLDERS)})/[\w./<>{{}},*-]*)"
    paths = {m.rstrip(".,") for m in re.findall(pattern, code)}
    return {p for p in paths if not re.search(r"[<>{}*]", p)}


def check_toml(block: str, where: str) -> None:
    """Load a TOML snippet as what it is: a training config, an ``agentflow.toml``, or a pyproject (parsed only)."""
    import tomllib

    from agentflow_core import structure_settings
    from agentflow_core.config import config_from_dict
    from agentflow_core.solver import check_names
    from agentflow_core.testing import registry_with
    from agentflow_core.tool_sources import ToolSources
    from agentflow_rl.flow_grpo import TrainConfig

    data = tomllib.loads(block)
    registry = registry_with()
    if set(data) <= {"project", "tool", "build-system"}:
        return
    if set(data) <= set(attrs.fields_dict(TrainConfig)):
        from agentflow_core.plugins import make_plugin_manager
        from agentflow_rl.flow_grpo import plugin
        from agentflow_rl.flow_grpo.registry import TrainingRegistry

        config = structure_settings(TrainConfig, data, where=where)
        training = TrainingRegistry.collect(make_plugin_manager(entry_points=False, extra=[plugin]))
        training.reward(config.task.reward)
        training.rollout_backend(config.rollout.backend)
        return
    agent = config_from_dict(data, source=where)
    check_names(agent, registry, from_sources=ToolSources(agent, registry).may_provide)


def imported_names(block: str, where: str) -> list[tuple[str, str]]:
    """``(module, name)`` for each ``from agentflow_... import name`` of a Python snippet (which must compile);
    a plugin's own package (``agentflow_sympy``) need not be installed, so it is not followed."""
    flags = ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
    tree = compile(block, where, "exec", flags=flags)
    return [
        (node.module, alias.name)
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in PACKAGES
        for alias in node.names
    ]


@cache
def cli() -> click.Group:
    """The whole ``agentflow`` command, built-in and bundled plugins included, third-party ones not."""
    return make_cli(make_plugin_manager(entry_points=False))


def _options(command: click.Command) -> dict[str, click.Option]:
    opts = {"--help": click.Option(["--help"], is_flag=True)}
    for param in command.params:
        if isinstance(param, click.Option):
            opts.update(dict.fromkeys([*param.opts, *param.secondary_opts], param))
    return opts


def check_invocation(words: list[str]) -> None:
    """Walk ``words`` through the CLI as click would: subcommands, then options and their values."""
    command: click.Command = cli()
    path = ["agentflow"]
    chose_subcommand = False
    i = 0
    while i < len(words):
        word = words[i]
        if word.startswith("-") and word != "-":
            name = word.split("=", 1)[0]
            option = _options(command).get(name)
            assert option is not None, f"`{' '.join(path)}` has no option {name}"
            takes_value = not (option.is_flag or option.count) and "=" not in word
            i += 2 if takes_value else 1
            continue
        if isinstance(command, click.Group) and word in command.commands:
            command, chose_subcommand = command.commands[word], True
            path.append(word)
        elif isinstance(command, click.Group) and not chose_subcommand and not command.invoke_without_command:
            assert word.isupper(), f"`{' '.join(path)}` has no subcommand {word!r}"  # NAME, PATH: placeholders
            return
        i += 1


def all_options(group: click.Group) -> set[str]:
    found = set(_options(group))
    for command in group.commands.values():
        found |= all_options(command) if isinstance(command, click.Group) else set(_options(command))
    return found


def nox_sessions() -> set[str]:
    tree = ast.parse((ROOT / "noxfile.py").read_text(encoding="utf-8"))
    return {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef) and node.decorator_list}


def script_invocations(text: str) -> list[tuple[Path, list[str]]]:
    """``python benchmarks/x.py ...`` and ``python -m agentflow_rl.x ...``: the file that parses the
    arguments, and the arguments."""
    found = []
    for words in commands(text, "python"):
        if words and words[0].startswith("benchmarks/") and words[0].endswith(".py"):
            found.append((ROOT / words[0], words[1:]))
        elif words[:1] == ["-m"] and words[1].split(".")[0] in PACKAGES:
            spec = importlib.util.find_spec(words[1])
            assert spec is not None and spec.origin, f"no module {words[1]}"
            main = Path(spec.origin).with_name("__main__.py") if spec.submodule_search_locations else None
            found.append((main or Path(spec.origin), words[2:]))
    return found


def strings_in(path: Path) -> set[str]:
    """The string constants of ``path`` and of the project modules it imports from (a ``__main__`` that
    hands over to a click command declares its options there)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    strings = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in PACKAGES:
            spec = importlib.util.find_spec(node.module)
            if spec is not None and spec.origin and spec.origin.endswith(".py") and Path(spec.origin) != path:
                imported = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
                strings |= {
                    n.value for n in ast.walk(imported) if isinstance(n, ast.Constant) and isinstance(n.value, str)
                }
    return strings


@cache
def source_strings() -> frozenset[str]:
    strings: set[str] = set()
    for folder in SOURCE_DIRS:
        for path in folder.rglob("*.py"):
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            strings.update(n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str))
    return frozenset(strings)


# -- the checks ------------------------------------------------------------------------------------


def _ids(path: Path) -> str:
    return str(path.relative_to(ROOT))


def test_the_parsers_find_what_the_readme_shows() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert commands(text, "agentflow"), "no agentflow command found: the parser is broken"
    assert environment_variables(text), "no variable found: the parser is broken"
    assert links(text) and repository_paths(text), "no link or path found: the parser is broken"


@pytest.mark.parametrize("doc", DOCS, ids=_ids)
def test_every_agentflow_command_and_flag_shown_exists(doc: Path) -> None:
    for words in commands(doc.read_text(encoding="utf-8"), "agentflow"):
        check_invocation(words)


@pytest.mark.parametrize("doc", DOCS, ids=_ids)
def test_every_script_flag_shown_is_one_the_script_reads(doc: Path) -> None:
    for script, words in script_invocations(doc.read_text(encoding="utf-8")):
        assert script.is_file(), f"{doc.name} runs {script}, which does not exist"
        flags = {w.split("=", 1)[0] for w in words if w.startswith("--")}
        unread = sorted(flags - strings_in(script))
        assert not unread, f"{doc.name}: {script.relative_to(ROOT)} has no option {unread}"


@pytest.mark.parametrize("doc", DOCS, ids=_ids)
def test_every_flag_named_in_prose_is_an_option_of_some_command(doc: Path) -> None:
    text = doc.read_text(encoding="utf-8")
    scripts = {w.split("=", 1)[0] for _, words in script_invocations(text) for w in words if w.startswith("--")}
    unknown = prose_flags(text) - all_options(cli()) - scripts - set(FOREIGN_FLAGS)
    assert not unknown, f"{doc.name} names options no agentflow command or script shown has: {sorted(unknown)}"


@pytest.mark.parametrize("doc", DOCS, ids=_ids)
def test_every_nox_session_a_doc_runs_exists(doc: Path) -> None:
    text = doc.read_text(encoding="utf-8")
    sessions = nox_sessions()
    for words in commands(text, "nox"):
        assert words[0] == "-s", words
        named = words[1 : words.index("--")] if "--" in words else words[1:]
        assert set(named) <= sessions, f"nox has no session {sorted(set(named) - sessions)}"
        rest = words[words.index("--") + 1 :] if "--" in words else []
        if named == ["eval"]:
            check_invocation(["eval", *rest])
        if named == ["bench"] and rest:
            assert (ROOT / "benchmarks" / f"{rest[0]}.py").is_file(), f"no benchmarks/{rest[0]}.py"


@pytest.mark.parametrize("doc", GUIDES, ids=_ids)
def test_every_environment_variable_named_is_read_by_the_code(doc: Path) -> None:
    named = environment_variables(doc.read_text(encoding="utf-8"))
    unread = sorted(v for v in named - source_strings() if v not in READ_BY_A_LIBRARY)
    assert not unread, f"{doc.name} names variables no code reads: {unread}"


@pytest.mark.parametrize(("variable", "where"), sorted(READ_BY_A_LIBRARY.items()))
def test_variables_left_to_a_library_are_still_left_to_it(variable: str, where: tuple[str, str]) -> None:
    path, text = where
    assert text in (ROOT / path).read_text(encoding="utf-8"), f"{variable}: {path} no longer says {text!r}"


def test_the_plugin_guide_shows_the_shipped_plugin_module() -> None:
    guide = (ROOT / "docs" / "writing-a-plugin.md").read_text(encoding="utf-8")
    shown = re.search(r"```python\n# agentflow_sympy/plugin.py\n(.*?)```", guide, re.S)
    assert shown is not None, "the guide no longer shows the plugin module"
    shipped = (ROOT / "plugins" / "agentflow-sympy" / "src" / "agentflow_sympy" / "plugin.py").read_text()
    assert shown.group(1) == shipped


def test_the_plugin_guide_lists_every_hook() -> None:
    from agentflow_core import hookspecs
    from agentflow_rl.flow_grpo import hookspecs as training_hookspecs

    guide = (ROOT / "docs" / "writing-a-plugin.md").read_text(encoding="utf-8")
    hooks = [name for specs in (hookspecs, training_hookspecs) for name in dir(specs) if name.startswith("register_")]
    missing = [hook for hook in hooks if f"| `{hook}(" not in guide]
    assert not missing, f"the hook table of docs/writing-a-plugin.md lacks {missing}"


@pytest.mark.parametrize(
    ("words", "problem"),
    [
        (["solve", "q", "--engnie", "x"], "has no option --engnie"),
        (["sovle", "q"], "has no subcommand 'sovle'"),
        (["eval", "compare", "a", "b", "--rescroe"], "`agentflow eval compare` has no option --rescroe"),
    ],
)
def test_the_checker_catches_drift(words: list[str], problem: str) -> None:
    with pytest.raises(AssertionError, match=re.escape(problem)):
        check_invocation(words)


@pytest.mark.parametrize("doc", DOCS, ids=_ids)
def test_every_relative_link_leads_to_a_file_and_heading(doc: Path) -> None:
    text = doc.read_text(encoding="utf-8")
    for target in links(text):
        path, _, fragment = target.partition("#")
        file = (doc.parent / path).resolve() if path else doc
        assert file.exists(), f"{doc.name} links to {target}, which does not exist"
        if fragment and file.suffix == ".md":
            assert fragment in anchors(file.read_text(encoding="utf-8")), f"{doc.name}: {file.name} has no #{fragment}"


@pytest.mark.parametrize("doc", DOCS, ids=_ids)
def test_every_repository_path_named_exists(doc: Path) -> None:
    missing = sorted(p for p in repository_paths(doc.read_text(encoding="utf-8")) if not (ROOT / p).exists())
    assert not missing, f"{doc.name} names paths that do not exist: {missing}"


def test_every_measurement_file_is_linked_from_the_results_page() -> None:
    page = ROOT / "docs" / "results.md"
    linked = {(page.parent / target.partition("#")[0]).resolve() for target in links(page.read_text(encoding="utf-8"))}
    files = {p.resolve() for p in (ROOT / "docs" / "results").rglob("*") if p.is_file()}
    unlinked = sorted(str(p.relative_to(ROOT)) for p in files - linked)
    assert not unlinked, f"docs/results.md does not link {unlinked}"


@pytest.mark.parametrize("doc", DOCS, ids=_ids)
def test_every_toml_snippet_loads_with_the_real_loader(doc: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for n, block in enumerate(fenced(doc.read_text(encoding="utf-8"), "toml"), 1):
        for variable in re.findall(r"\$\{(\w+)\}", block):  # the reader's own secrets (``${DOCS_TOKEN}``)
            monkeypatch.setenv(variable, "set-by-the-reader")
        check_toml(block, f"{doc.name}, TOML block {n}")


@pytest.mark.parametrize("doc", DOCS, ids=_ids)
def test_every_python_snippet_compiles_and_imports_what_exists(doc: Path) -> None:
    for n, block in enumerate(fenced(doc.read_text(encoding="utf-8"), "python"), 1):
        for module, name in imported_names(block, f"{doc.name}, Python block {n}"):
            imported = importlib.import_module(module)
            public = getattr(imported, "__all__", None)
            assert hasattr(imported, name), f"{doc.name}: {module} has no {name}"
            assert public is None or name in public, (
                f"{doc.name} imports {name}, which {module}.__all__ does not export"
            )


def test_the_plugin_the_concepts_page_shows_registers_a_working_tool() -> None:
    from agentflow_core import ToolCall, ToolContext, ToolErrorKind, ToolFailure, ToolSuccess
    from agentflow_core.testing import registry_with
    from agentflow_core.toolset import Toolset

    text = (ROOT / "docs" / "concepts.md").read_text(encoding="utf-8")
    block = next(b for b in fenced(text, "python") if b.startswith("# my_tools/plugin.py\n"))
    plugin = types.ModuleType("my_tools.plugin")
    exec(compile(block, "docs/concepts.md", "exec"), plugin.__dict__)
    registered = registry_with(plugin).tool("word_count")
    toolset = Toolset([registered.factory(ToolContext(engine=None))], timeout_s=5)

    counted = asyncio.run(toolset.run(ToolCall("word_count", {"text": "three short words"})))
    refused = asyncio.run(toolset.run(ToolCall("word_count", {"text": ""})))

    assert isinstance(counted, ToolSuccess) and counted.output == "3"
    assert isinstance(refused, ToolFailure) and refused.kind is ToolErrorKind.BAD_ARGUMENTS


def readme_python_example() -> str:
    """The README's "From Python" example, as a newcomer would paste it."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## From Python", 1)[1]
    found = re.search(r"^```python\n(.*?)^```", section, re.S | re.M)
    assert found is not None, "the README has no Python example under 'From Python'"
    return found.group(1)


@pytest.mark.slow
def test_the_readme_python_example_runs_in_a_fresh_folder(tmp_path: Path) -> None:
    """No agentflow.toml and no AGENTFLOW_* variable, as on a fresh clone: the example must still run."""
    import os
    import subprocess
    import sys

    script = tmp_path / "example.py"
    script.write_text(readme_python_example(), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AGENTFLOW_", "OPENAI_"))}
    result = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "StopReason." in result.stdout, result.stdout  # it printed the answer, the stop reason and the usage
