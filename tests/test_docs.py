"""The README and the plugin guide say only what the code does: every ``agentflow`` command and flag
they show exists (checked through click's own description of the CLI), every ``nox -s`` session is
in the noxfile, every environment variable they name is read somewhere in the source, and the
plugin module the guide shows is the one that ships.
"""

from __future__ import annotations

import ast
import re
import shlex
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import click
import pytest

from agentflow_core.cli import make_cli
from agentflow_core.plugins import make_plugin_manager

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", ROOT / "docs" / "writing-a-plugin.md"]
SOURCE_DIRS = [ROOT / "agentflow_core", ROOT / "agentflow_tools", ROOT / "agentflow_rl", *ROOT.glob("plugins/*/src")]

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


def commands(text: str, program: str) -> list[list[str]]:
    """Each invocation of ``program``: its arguments, after shell comments and ``$`` prompts."""
    found = []
    for line in shell_lines(text):
        for piece in re.split(r"&&|\|\||;|\|", line.removeprefix("$ ")):
            if not re.match(rf"\s*{program}(\s|$)", piece):
                continue
            words = [w.strip("[]") for w in shlex.split(piece, comments=True)]
            found.append(words[1:])
    return found


def prose_flags(text: str) -> set[str]:
    """``--flags`` in inline code that starts with one (``--mode base``, ``--config``)."""
    spans = re.findall(r"`(--[a-z][^`\n]*)`", re.sub(r"^```.*?^```", "", text, flags=re.S | re.M))
    return {flag for span in spans for flag in re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", span)}


def environment_variables(text: str) -> set[str]:
    """``NAME_LIKE_THIS`` words, except path placeholders (``RUN_DIR/results.jsonl``)."""
    return set(re.findall(r"\b[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+\b(?!/)", text))


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


@pytest.mark.parametrize("doc", DOCS, ids=_ids)
def test_every_agentflow_command_and_flag_shown_exists(doc: Path) -> None:
    invocations = commands(doc.read_text(encoding="utf-8"), "agentflow")
    assert invocations, "no agentflow command found: the parser is broken"
    for words in invocations:
        check_invocation(words)


@pytest.mark.parametrize("doc", DOCS, ids=_ids)
def test_every_flag_named_in_prose_is_an_option_of_some_command(doc: Path) -> None:
    unknown = prose_flags(doc.read_text(encoding="utf-8")) - all_options(cli())
    assert not unknown, f"{doc.name} names options no agentflow command has: {sorted(unknown)}"


def test_every_nox_session_the_readme_runs_exists() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
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


@pytest.mark.parametrize("doc", DOCS, ids=_ids)
def test_every_environment_variable_named_is_read_by_the_code(doc: Path) -> None:
    named = environment_variables(doc.read_text(encoding="utf-8"))
    assert named, "no variable found: the parser is broken"
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

    guide = (ROOT / "docs" / "writing-a-plugin.md").read_text(encoding="utf-8")
    hooks = [name for name in dir(hookspecs) if name.startswith("register_")]
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
