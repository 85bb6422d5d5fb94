from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest

from agentflow_core.registry import Registry
from agentflow_core.testing import registry_with


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Iterator[None]:
    outcome = yield
    _missing_extra_fails_under_ci(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    _missing_extra_fails_under_ci(outcome.get_result())


def _missing_extra_fails_under_ci(report: pytest.CollectReport | pytest.TestReport) -> None:
    """Under CI a test skipped because an extra did not import is a failure, not a skip.

    ``pytest.importorskip`` keeps the suite usable on a partial install; CI installs every extra the
    tests use, so an import that fails there is a broken install that a green run would hide.
    """
    import os

    if not (os.environ.get("CI") and report.skipped and "could not import" in str(report.longrepr)):
        return
    reason = report.longrepr[-1] if isinstance(report.longrepr, tuple) else report.longrepr
    report.outcome = "failed"
    report.longrepr = f"CI installs every extra the tests use, yet {str(reason).removeprefix('Skipped: ')}"


@pytest.fixture
def registry() -> Registry:
    """Built-ins only: tests never load whatever plugins happen to be installed."""
    return registry_with()


@pytest.fixture(scope="session")
def benchmark_data() -> None:
    """The shipped test sets (``tests.eval_support.DATA_DIR``): a skip without them, a failure under CI."""
    import os

    from tests.eval_support import data_missing

    missing = data_missing()
    if missing and os.environ.get("CI"):
        pytest.fail(f"CI needs the benchmark files: {missing}")
    if missing:
        pytest.skip(missing)


# -- Docker sandbox (python_coder) -------------------------------------------------------------

#: The image the sandbox tests run in, made by ``agentflow sandbox build`` when missing.
SANDBOX_IMAGE = "agentflow-sandbox:local"


@pytest.fixture(scope="session")
def docker_daemon() -> None:
    """Skip without a Docker daemon, except under CI (``CI`` set), where that is a failure:
    CI must not go green by skipping every sandbox test."""
    import os

    from agentflow_tools.sandbox import SandboxError
    from agentflow_tools.sandbox.docker_sandbox import connect

    try:
        connect().close()
    except SandboxError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"CI needs a Docker daemon for the sandbox tests: {exc}")
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def sandbox_image(docker_daemon: None) -> str:
    """The local sandbox image, built once through the real CLI; an existing one is reused."""
    import subprocess
    import sys

    import docker.errors

    from agentflow_tools.sandbox.docker_sandbox import connect

    client = connect()
    try:
        client.images.get(SANDBOX_IMAGE)
    except docker.errors.ImageNotFound:
        command = [sys.executable, "-m", "agentflow_core", "sandbox", "build", "--tag", SANDBOX_IMAGE]
        built = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
        assert built.returncode == 0, built.stderr
    finally:
        client.close()
    return SANDBOX_IMAGE


@pytest.fixture
def throwaway_local_tag(docker_daemon: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A local image name of this test's own, absent at the start and removed at the end: building or
    removing it disturbs no test that runs in ``agentflow-sandbox:local`` at the same time."""
    import uuid

    import docker.errors

    from agentflow_tools.sandbox.docker_sandbox import connect

    tag = f"agentflow-sandbox:test-{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("AGENTFLOW_SANDBOX_TAG", tag)
    yield tag
    client = connect()
    with contextlib.suppress(docker.errors.ImageNotFound):
        client.images.remove(tag, force=True)
    client.close()


# -- accelerate -------------------------------------------------------------------------------


@pytest.fixture
def cpu_accelerator() -> Iterator[Any]:
    """A one-process CPU ``Accelerator``; its process-wide state is forgotten afterwards, as the trainer does,
    so that a later test may make one with other settings (bf16, say)."""
    accelerate = pytest.importorskip("accelerate")
    from accelerate.state import AcceleratorState

    yield accelerate.Accelerator(cpu=True)
    AcceleratorState._reset_state(reset_partial_state=False)
