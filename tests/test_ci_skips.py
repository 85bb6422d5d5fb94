"""Under CI a missing extra fails the suite; on a partial install it skips as before."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ("pytester",)

MODULES = {
    "test_module_level.py": (
        'import pytest\n\npytest.importorskip("agentflow_no_such_extra")\n\n\ndef test_a():\n    pass\n'
    ),
    "test_in_test.py": (
        "import pytest\n\n"
        'def test_b():\n    pytest.importorskip("agentflow_no_such_extra")\n\n'
        'def test_c():\n    pytest.skip("an ordinary skip")\n'
    ),
}


def _run(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, ci: bool) -> pytest.RunResult:
    pytester.makeconftest(Path(__file__).with_name("conftest.py").read_text())
    for name, text in MODULES.items():
        pytester.makepyfile(**{name.removesuffix(".py"): text})
    if ci:
        monkeypatch.setenv("CI", "true")
    else:
        monkeypatch.delenv("CI", raising=False)
    return pytester.runpytest_inprocess("-p", "no:cacheprovider", "--continue-on-collection-errors", "-rA")


def test_under_ci_an_extra_that_does_not_import_fails(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = _run(pytester, monkeypatch, ci=True)
    result.assert_outcomes(failed=1, skipped=1, errors=1)  # the ordinary skip stays a skip
    result.stdout.fnmatch_lines(
        ["*CI installs every extra the tests use, yet could not import 'agentflow_no_such_extra'*"]
    )


def test_without_ci_it_stays_a_skip(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    _run(pytester, monkeypatch, ci=False).assert_outcomes(skipped=3)
