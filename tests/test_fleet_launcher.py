"""The fleet launcher: servers started on free ports, and none left behind however the run ends.

The servers here are a stand-in (tests/workers/fake_vllm) started exactly as vLLM's would be:
``python -m vllm.entrypoints.openai.api_server`` under the watchdog, with a child of its own as
vLLM's engine process is. It starts in a fraction of a second, so every way a run can end (the
``with`` block, Ctrl-C, SIGTERM, SIGKILL of the trainer) is tried for real; tests/test_fleet_vllm.py
starts real vLLM servers with the same launcher.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import urllib.request
from pathlib import Path

import pytest

from agentflow_core.errors import EngineUnavailable
from agentflow_core.testing import wait_until
from agentflow_rl.flow_grpo.fleet import launcher
from agentflow_rl.flow_grpo.fleet.launcher import FLEET_ARGS, ServerFleet, ServerSpec
from tests.vllm_support import ROOT

FAKE = ROOT / "tests" / "workers" / "fake_vllm"


def spec(reports: Path, count: int = 2, mode: str = "", startup_s: float = 60.0) -> ServerSpec:
    env = {"PYTHONPATH": f"{FAKE}{os.pathsep}{ROOT}", "FAKE_VLLM_REPORT": str(reports), "FAKE_VLLM_MODE": mode}
    return ServerSpec(
        python=sys.executable,
        model="/models/base",
        count=count,
        extra_args=("--max-lora-rank", "8"),
        env=env,
        startup_s=startup_s,
        served_name="smollm2",
    )


def alive(pid: int) -> bool:
    """Running, not a zombie left for a parent that is gone."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def server_pids(reports: Path) -> list[int]:
    return [pid for report in reports.glob("*.json") for pid in json.loads(report.read_text())["pids"]]


@pytest.fixture
def reports(tmp_path: Path) -> Path:
    folder = tmp_path / "reports"
    folder.mkdir()
    return folder


def test_servers_start_on_free_ports_with_runtime_lora_and_stop_with_the_block(reports: Path, tmp_path: Path) -> None:
    with ServerFleet(spec(reports), tmp_path / "logs") as fleet:
        assert len(set(fleet.urls)) == 2
        for url in fleet.urls:
            with urllib.request.urlopen(url.removesuffix("/v1") + "/health", timeout=5) as response:
                assert response.status == 200
        seen = [json.loads(report.read_text()) for report in sorted(reports.glob("*.json"))]
        pids = server_pids(reports) + [server.process.pid for server in fleet.servers]
        assert all(alive(pid) for pid in pids)

    for report in seen:
        argv = report["argv"]
        assert argv[argv.index("--model") + 1] == "/models/base"
        assert argv[argv.index("--served-model-name") + 1] == "smollm2"
        assert "--enable-lora" in argv and argv[-2:] == ["--max-lora-rank", "8"]
        assert " ".join(FLEET_ARGS) in " ".join(argv)
        assert report["runtime_lora"] == "True"
    wait_until(lambda: not any(alive(pid) for pid in pids), timeout_s=30, what="the servers and their children to end")


def test_two_servers_never_get_the_same_port_even_when_the_kernel_offers_it_twice(
    reports: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The kernel may hand the same free port out twice before the first server binds it; the second
    server would then die, and the first one's /health would answer for both."""
    first, second = launcher.free_port(), launcher.free_port()
    offered = iter([first, first, first, second])
    real_socket = socket.socket

    class Probe(real_socket):  # type: ignore[misc,valid-type]
        def bind(self, address: object) -> None:
            super().bind(("127.0.0.1", next(offered)))

    monkeypatch.setattr(launcher.socket, "socket", Probe)
    with ServerFleet(spec(reports), tmp_path / "logs") as fleet:
        assert sorted(fleet.urls) == sorted(f"http://127.0.0.1:{port}/v1" for port in (first, second))
        assert sorted(report.stem for report in reports.glob("*.json")) == sorted(map(str, (first, second)))


# Python's own Ctrl-C handling, as a trainer run from a terminal has it: a shell that starts a job in
# the background without job control (a CI script's `cmd &`) hands it SIGINT ignored, and the child
# would inherit that and never notice the signal.
PARENT = textwrap.dedent(
    """
    import signal, sys, time
    signal.signal(signal.SIGINT, signal.default_int_handler)
    from agentflow_rl.flow_grpo.fleet.launcher import ServerFleet, ServerSpec
    spec = ServerSpec(python=sys.executable, model="/models/base", count=2, env=dict(ENV))
    with ServerFleet(spec, sys.argv[1]) as fleet:
        print(" ".join(str(s.process.pid) for s in fleet.servers), flush=True)
        time.sleep(600)
    """
)


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
def test_a_trainer_that_dies_takes_its_servers_with_it(signum: signal.Signals, reports: Path, tmp_path: Path) -> None:
    env = {"PYTHONPATH": f"{FAKE}{os.pathsep}{ROOT}", "FAKE_VLLM_REPORT": str(reports)}
    code = PARENT.replace("dict(ENV)", repr(env))
    parent = subprocess.Popen(
        [sys.executable, "-c", code, str(tmp_path / "logs")],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert parent.stdout is not None
        watchdogs = [int(pid) for pid in parent.stdout.readline().split()]
        assert len(watchdogs) == 2, "the parent did not start its servers"
        pids = server_pids(reports) + watchdogs
        assert len(pids) == 6 and all(alive(pid) for pid in pids)

        parent.send_signal(signum)
        parent.wait(timeout=60)

        wait_until(lambda: not any(alive(pid) for pid in pids), timeout_s=30, what="every server process to end")
    finally:
        parent.kill()
        parent.wait()


def test_a_server_that_dies_at_start_is_one_line_naming_its_last_words(reports: Path, tmp_path: Path) -> None:
    with pytest.raises(EngineUnavailable) as info:
        ServerFleet(spec(reports, count=1, mode="exit"), tmp_path / "logs").__enter__()

    message = str(info.value)
    assert "\n" not in message and "while starting" in message
    assert "the fake server was told to fail at start" in message
    assert str(tmp_path / "logs") in message


def test_a_server_that_never_answers_is_cut_by_the_deadline_and_stopped(reports: Path, tmp_path: Path) -> None:
    fleet = ServerFleet(spec(reports, count=1, mode="silent", startup_s=3), tmp_path / "logs")
    with pytest.raises(EngineUnavailable, match=r"did not answer /health within 3 s"):
        fleet.__enter__()

    pids = server_pids(reports)
    assert pids
    wait_until(lambda: not any(alive(pid) for pid in pids), timeout_s=30, what="the silent server to be stopped")
