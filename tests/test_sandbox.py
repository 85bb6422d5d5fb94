"""The sandbox against hostile code: each attack has an expected safe outcome, and the pool stays clean.

The contract tests run through the ``box`` fixture, one warm pool per backend (Docker today), shared
by the module so that a run costs an exec. After every attack the next run on the same pool must
work and find no process, file or IPC object left behind.
"""

from __future__ import annotations

import asyncio
import base64
import json
import resource
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from agentflow_core import ConfigError, structure_settings
from agentflow_tools.python_coder import Settings
from agentflow_tools.sandbox import ExecutionResult, Sandbox, SandboxError
from agentflow_tools.sandbox.docker_sandbox import (
    OWNER_LABEL,
    DockerSandbox,
    DockerSettings,
    connect,
    sandbox_containers,
)
from agentflow_tools.sandbox.protocol import decode_output, encode_code, parse_report, read_bounded
from agentflow_tools.sandbox.runner import Capture

#: Tests on the shared pool run in its event loop.
in_pool_loop = pytest.mark.asyncio(loop_scope="module")

#: Prints, as JSON, everything a finished run could have left behind for the next one.
LEFTOVERS = """
import json, os
me, parent = os.getpid(), os.getppid()
procs = []
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        status = open(f"/proc/{pid}/status").read()
    except OSError:
        continue
    uid = [l.split()[1] for l in status.splitlines() if l.startswith("Uid:")][0]
    zombie = "\tZ" in status
    if uid == str(os.getuid()) and int(pid) not in (me, parent) and not zombie:
        procs.append(pid)
files = {d: sorted(os.listdir(d)) for d in ("/tmp", "/dev/shm", "/dev/mqueue")}
files["workdir"] = sorted(set(os.listdir(".")) - {"main.py"})
ipc = {k: open(f"/proc/sysvipc/{k}").read().splitlines()[1:] for k in ("shm", "msg", "sem")}
print(json.dumps({"procs": procs, "files": files, "ipc": ipc}))
"""


def code(text: str) -> str:
    return textwrap.dedent(text).strip() + "\n"


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=["docker"])
async def box(request: pytest.FixtureRequest, sandbox_image: str) -> AsyncIterator[Sandbox]:
    """A started pool of two, shared by the module's tests."""
    async with DockerSandbox(DockerSettings(image=sandbox_image, pool_size=2)) as sandbox:
        yield sandbox


async def assert_clean(box: Sandbox) -> None:
    """Every container of the pool runs code again and finds nothing of earlier runs."""
    results = await asyncio.gather(*(box.run(LEFTOVERS, timeout_s=10) for _ in range(2)))
    for result in results:
        assert result.ok, result
        assert json.loads(result.stdout) == {
            "procs": [],
            "files": {"/tmp": [], "/dev/shm": [], "/dev/mqueue": [], "workdir": []},
            "ipc": {"shm": [], "msg": [], "sem": []},
        }


# -- the ordinary paths -------------------------------------------------------------------------


@in_pool_loop
async def test_prints_and_exits(box: Sandbox) -> None:
    result = await box.run("print(6 * 7)", timeout_s=10)
    assert (result.stdout, result.exit_code, result.ok, result.truncated) == ("42\n", 0, True, False)


@in_pool_loop
async def test_exception_gives_traceback_tail_and_exit_code(box: Sandbox) -> None:
    result = await box.run(code("print('before')\nraise ValueError('boom')"), timeout_s=10)
    assert result.exit_code == 1 and not result.ok
    assert result.stdout == "before\n"
    assert result.stderr.rstrip().endswith("ValueError: boom")
    assert 'File "/sandbox/main.py", line 2' in result.stderr


@in_pool_loop
async def test_subprocesses_and_the_shell_work(box: Sandbox) -> None:
    program = "import subprocess\nprint(subprocess.run('echo $((6 * 7))', shell=True, capture_output=True).stdout)"
    result = await box.run(program, timeout_s=10)
    assert result.stdout == "b'42\\n'\n", result.stderr


@in_pool_loop
async def test_runs_are_independent(box: Sandbox) -> None:
    await box.run("open('note.txt', 'w').write('x'); open('/tmp/n', 'w').write('y')", timeout_s=10)
    await assert_clean(box)


# -- time, processes, memory, output ------------------------------------------------------------


@in_pool_loop
@pytest.mark.parametrize(
    "program", ["while True: pass", "import time; time.sleep(10**6)"], ids=["busy-loop", "sleep-forever"]
)
async def test_wall_clock_limit_kills_the_code(box: Sandbox, program: str) -> None:
    result = await box.run(program, timeout_s=1)
    assert result.timed_out and result.exit_code == -9 and not result.ok
    assert 0.9 < result.elapsed_s < 3
    await assert_clean(box)


@in_pool_loop
async def test_fork_bomb_is_contained_by_the_pids_limit(box: Sandbox) -> None:
    bomb = code(
        """
        import os
        while True:
            os.fork()
        """
    )
    result = await box.run(bomb, timeout_s=3)
    assert not result.ok
    assert result.timed_out or "BlockingIOError" in result.stderr
    await assert_clean(box)


@in_pool_loop
async def test_orphans_and_daemons_do_not_survive_the_run(box: Sandbox) -> None:
    spawn = code(
        """
        import os, subprocess, time
        subprocess.Popen(["sleep", "1000"], start_new_session=True, stdout=subprocess.DEVNULL)
        if os.fork() == 0:            # a classic double-fork daemon that keeps writing files
            os.setsid()
            if os.fork() == 0:
                while True:
                    open(f"/tmp/alive-{time.time()}", "w").close()
                    time.sleep(0.05)
            os._exit(0)
        time.sleep(0.2)
        print("spawned")
        """
    )
    result = await box.run(spawn, timeout_s=10)
    assert result.ok and result.stdout == "spawned\n"
    await asyncio.sleep(0.3)  # a surviving daemon would write into /tmp meanwhile
    await assert_clean(box)


@in_pool_loop
async def test_memory_bomb_is_killed_and_flagged(box: Sandbox) -> None:
    result = await box.run("hog = []\nwhile True:\n    hog.append(b'x' * 10_000_000)", timeout_s=20)
    assert result.oom and not result.timed_out and not result.ok
    assert result.exit_code == -9
    assert "out of memory" in result.describe()
    await assert_clean(box)


@in_pool_loop
async def test_output_flood_is_cut_in_the_container(box: Sandbox) -> None:
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    flood = "import sys\nfor _ in range(100_000):\n    sys.stdout.write('x' * 999 + '\\n')\nprint('never seen')"
    result = await box.run(flood, timeout_s=20)
    assert result.ok and result.truncated
    assert 0 < len(result.stdout) <= 8000 and "never seen" not in result.stdout
    # 100 MB went through the pipe; our process never held more than a few kilobytes of it.
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before < 50_000  # KiB
    await assert_clean(box)


@in_pool_loop
async def test_long_stderr_keeps_its_end(box: Sandbox) -> None:
    result = await box.run(
        "import sys\nsys.stderr.write('noise\\n' * 100_000)\nraise SystemExit('the end')", timeout_s=20
    )
    assert result.truncated and result.exit_code == 1
    assert result.stderr.rstrip().endswith("the end") and len(result.stderr) <= 8000


@in_pool_loop
async def test_the_runner_is_out_of_the_codes_reach(box: Sandbox) -> None:
    """Same uid, but non-dumpable: no writing around the output cap, no forged report, no ptrace."""
    sneaky = code(
        """
        import ctypes, os
        runner = os.getppid()
        for path in (f"/proc/{runner}/fd/1", f"/proc/{runner}/mem", f"/proc/{runner}/environ"):
            try:
                open(path, "wb").write(b"AGENTFLOW-RESULT forged")
                print("opened", path)
            except OSError as exc:
                print(type(exc).__name__)
        libc = ctypes.CDLL(None, use_errno=True)
        print("ptrace", libc.ptrace(16, runner, None, None), ctypes.get_errno())  # PTRACE_ATTACH
        """
    )
    result = await box.run(sneaky, timeout_s=10)
    assert result.ok, result.stderr
    assert result.stdout.splitlines() == ["PermissionError"] * 3 + ["ptrace -1 1"]  # EPERM


@in_pool_loop
async def test_binary_output_is_decoded_with_replacement(box: Sandbox) -> None:
    result = await box.run("import sys\nsys.stdout.buffer.write(bytes(range(256)) * 4)", timeout_s=10)
    assert result.ok
    assert "\ufffd" in result.stdout and result.stdout.startswith("\x00\x01\x02")


# -- what the code can see and touch ------------------------------------------------------------


@in_pool_loop
async def test_network_is_unreachable(box: Sandbox) -> None:
    probe = code(
        """
        import socket
        print(sorted(name for _, name in socket.if_nameindex()))
        for host in [("1.1.1.1", 53), ("172.17.0.1", 2375)]:
            try:
                socket.create_connection(host, timeout=2)
                print("connected", host)
            except OSError as exc:
                print("refused", exc.errno)
        """
    )
    result = await box.run(probe, timeout_s=10)
    assert result.ok
    assert result.stdout.splitlines()[0] == "['lo']"
    assert "connected" not in result.stdout and result.stdout.count("refused") == 2


async def test_our_environment_does_not_reach_the_code(sandbox_image: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTFLOW_CANARY", "canary-7f3a9")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-canary-7f3a9")
    probe = code(
        """
        import os
        print(sorted(os.environ))
        leaked = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                leaked.append(b"canary-7f3a9" in open(f"/proc/{pid}/environ", "rb").read())
            except OSError:
                pass
        print(any(leaked))
        """
    )
    async with DockerSandbox(DockerSettings(image=sandbox_image, pool_size=1)) as fresh:  # made after the canary
        result = await fresh.run(probe, timeout_s=10)
    assert result.stdout.splitlines() == ["['HOME', 'LANG', 'PATH']", "False"]


@in_pool_loop
async def test_host_processes_are_invisible(box: Sandbox) -> None:
    probe = "import os\nprint(sum(p.isdigit() for p in os.listdir('/proc')))\nprint(open('/proc/1/cmdline').read())"
    result = await box.run(probe, timeout_s=10)
    count, init = result.stdout.splitlines()
    assert int(count) < 10  # init, the idle sleep, the runner and the code: not the host's hundreds
    assert "docker-init" in init


@in_pool_loop
async def test_only_the_work_dir_and_tmp_are_writable(box: Sandbox) -> None:
    probe = code(
        """
        import errno
        for path in ["/etc/passwd", "/usr/local/bin/evil", "/usr/local/lib/python3.11/os.py", "/evil", "/dev/evil"]:
            try:
                open(path, "a").close()
                print("wrote", path)
            except OSError as exc:
                print(errno.errorcode[exc.errno])
        open("ok.txt", "w").write("fine")
        print(open("ok.txt").read())
        """
    )
    result = await box.run(probe, timeout_s=10)
    lines = result.stdout.splitlines()
    assert not any(line.startswith("wrote") for line in lines)
    assert set(lines[:-1]) <= {"EROFS", "EACCES", "ENOENT"} and lines[-1] == "fine"


@in_pool_loop
async def test_filling_tmp_stops_at_its_size(box: Sandbox) -> None:
    fill = code(
        """
        import errno
        chunk = b"z" * (1 << 20)
        for i in range(1000):
            try:
                with open(f"/tmp/fill-{i}", "wb") as f:
                    f.write(chunk)
            except OSError as exc:
                print(errno.errorcode[exc.errno], i)
                break
        try:
            open("big", "wb").write(b"z" * (20 << 20))   # over the file-size limit
        except OSError as exc:
            print(errno.errorcode[exc.errno])
        """
    )
    result = await box.run(fill, timeout_s=20)
    first, second = result.stdout.splitlines()
    assert first.split()[0] == "ENOSPC" and int(first.split()[1]) <= 16
    assert second == "EFBIG"
    await assert_clean(box)


@in_pool_loop
async def test_privileges_cannot_be_raised(box: Sandbox) -> None:
    attempts = code(
        """
        import ctypes, json, os, shutil, socket, subprocess, sys
        def attempt(fn):
            try:
                fn()
                return "allowed"
            except OSError:
                return "denied"
        def mount():
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.mount(b"none", b"/tmp", b"tmpfs", 0, None) != 0:
                raise OSError(ctypes.get_errno(), "mount")
        def setuid_copy():   # a setuid-root binary cannot be made, and nothing in the work dir may run
            shutil.copy(sys.executable, "py")
            os.chmod("py", 0o4755)
            subprocess.run(["./py", "-c", "pass"], check=True)
        results = {
            "setuid": attempt(lambda: os.setuid(0)),
            "setgid": attempt(lambda: os.setgid(0)),
            "chown": attempt(lambda: os.chown("main.py", 0, 0)),
            "raw_socket": attempt(lambda: socket.socket(socket.AF_PACKET, socket.SOCK_RAW)),
            "nice": attempt(lambda: os.nice(-5)),
            "mount": attempt(mount),
            "su": attempt(lambda: subprocess.run(["su", "-c", "id"], check=True)),
            "setuid_copy": attempt(setuid_copy),
        }
        status = dict(l.split(":", 1) for l in open("/proc/self/status").read().splitlines())
        results["caps"] = status["CapEff"].strip() + status["CapBnd"].strip() + status["NoNewPrivs"].strip()
        print(json.dumps(results))
        """
    )
    result = await box.run(attempts, timeout_s=10)
    assert result.ok, result.stderr
    found = json.loads(result.stdout)
    assert found.pop("caps") == "0" * 32 + "1"
    assert found == dict.fromkeys(found, "denied")


@in_pool_loop
async def test_leftover_ipc_and_shared_memory_are_removed(box: Sandbox) -> None:
    leave = code(
        """
        import ctypes, os
        libc = ctypes.CDLL(None, use_errno=True)
        created = [
            libc.shmget(0x4242, 4096, 0o1666) >= 0,                     # System V shared memory
            libc.msgget(0x4243, 0o1666) >= 0,                           # a System V message queue
            libc.mq_open(b"/leak", os.O_CREAT | os.O_RDWR, 0o600, None) >= 0,  # a POSIX message queue
        ]
        open("/dev/shm/leak", "w").write("secret")                      # POSIX shared memory
        print(created)
        """
    )
    result = await box.run(leave, timeout_s=10)
    assert result.stdout == "[True, True, True]\n", result.stderr
    await assert_clean(box)


@in_pool_loop
async def test_code_that_kills_the_runner_costs_only_its_container(box: Sandbox) -> None:
    result = await box.run("import os, signal\nos.kill(-1, signal.SIGKILL)", timeout_s=10)
    assert not result.ok and "without reporting" in result.stderr
    await assert_clean(box)


@in_pool_loop
async def test_host_watchdog_catches_a_stopped_runner(box: Sandbox) -> None:
    """A runner that cannot enforce the deadline (stopped here) still loses its container in time."""
    result = await box.run(
        "import os, signal, time\nos.kill(os.getppid(), signal.SIGSTOP)\ntime.sleep(60)", timeout_s=1
    )
    assert result.timed_out and "watchdog" in result.stderr
    await assert_clean(box)


@in_pool_loop
async def test_many_concurrent_runs_share_a_small_pool(box: Sandbox) -> None:
    programs = [f"import time\ntime.sleep(0.2)\nprint('run {i}')" for i in range(8)]
    results = await asyncio.gather(*(box.run(p, timeout_s=10) for p in programs))
    assert [r.stdout for r in results] == [f"run {i}\n" for i in range(8)]
    await assert_clean(box)


# -- setup errors and the CLI -------------------------------------------------------------------


async def test_no_daemon_is_one_line_naming_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    sandbox = DockerSandbox(DockerSettings(image="anything"))
    with pytest.raises(SandboxError) as info:
        await sandbox.start()
    assert "start dockerd" in str(info.value) and "\n" not in str(info.value)
    await sandbox.aclose()


async def test_missing_image_is_one_line_naming_the_fix(docker_daemon: None) -> None:
    sandbox = DockerSandbox(DockerSettings(image="agentflow-no-such-image:1"))
    with pytest.raises(SandboxError) as info:
        await sandbox.start()
    message = str(info.value)
    assert "agentflow sandbox build" in message and "[tools.python_coder] image" in message
    assert "\n" not in message


def agentflow(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agentflow_core", *args], capture_output=True, text=True, timeout=300, check=False
    )


def owned_by(pid: int) -> list[str]:
    client = connect()
    try:
        return [c.id for c in sandbox_containers(client) if c.labels.get(OWNER_LABEL) == str(pid)]
    finally:
        client.close()


def test_closing_removes_every_container_even_replacements(sandbox_image: str) -> None:
    """A timeout retires a container and starts another in the background; closing waits and removes it."""
    command = ["sandbox", "run", "-c", "while True: pass", "--timeout", "0.5", "--image", sandbox_image]
    process = subprocess.Popen([sys.executable, "-m", "agentflow_core", *command], stderr=subprocess.PIPE)
    assert process.wait(timeout=60) == 124
    assert owned_by(process.pid) == []


def test_prune_removes_containers_of_ended_processes(sandbox_image: str) -> None:
    client = connect()
    labels = {"agentflow.sandbox": "1", OWNER_LABEL: "999999999"}
    left = client.containers.create(sandbox_image, ["sleep", "infinity"], labels=labels)
    client.close()
    done = agentflow("sandbox", "prune")
    assert done.returncode == 0 and "removed" in done.stdout
    assert left.id not in [c.id for c in sandbox_containers(connect())]


def test_cli_run_prints_json(sandbox_image: str) -> None:
    done = agentflow("sandbox", "run", "-c", "print(2**100)", "--json", "--image", sandbox_image)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["stdout"] == f"{2**100}\n" and result["exit_code"] == 0


def test_cli_run_reports_the_code_status(sandbox_image: str) -> None:
    done = agentflow("sandbox", "run", "-c", "import sys; sys.exit(3)", "--image", sandbox_image)
    assert done.returncode == 3 and "exit code 3" in done.stderr
    timed = agentflow("sandbox", "run", "-c", "while 1: pass", "--image", sandbox_image, "--timeout", "0.5")
    assert timed.returncode == 124 and "timed out" in timed.stderr


def test_cli_build_makes_an_image(docker_daemon: None) -> None:
    tag = "agentflow-sandbox:test-build"
    done = agentflow("sandbox", "build", "--tag", tag)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"built {tag} (sha256:")
    client = connect()
    try:
        ran = client.containers.run(tag, ["python3", "-c", "import sqlite3, ssl, json; print('ok')"], remove=True)
        assert ran == b"ok\n"
    finally:
        client.images.remove(tag, force=True)
        client.close()


# -- pieces that need no Docker -----------------------------------------------------------------


def test_code_travels_in_argument_sized_chunks() -> None:
    assert encode_code("") == [""]
    chunks = encode_code("x = 1\n" * 40_000)
    assert len(chunks) == 4 and all(len(c) <= 96 * 1024 for c in chunks)
    with pytest.raises(SandboxError, match="at most"):
        encode_code("#" * (600 * 1024))


def test_capture_keeps_head_or_tail_and_counts_everything() -> None:
    head, tail = Capture(40, "head"), Capture(40, "tail")
    for capture in (head, tail):
        for i in range(100):
            capture.add(f"line {i}\n".encode())
    assert head.kept() == b"line 0\nline 1\nline 2\nline 3\nline 4\nline "
    assert tail.kept().endswith(b"line 98\nline 99\n") and len(tail.kept()) == 40
    assert head.total == tail.total == 790


def test_output_is_decoded_with_replacement_and_cut_in_characters() -> None:
    assert decode_output("é\xff".encode("latin-1"), 2, 10) == ("\ufffd\ufffd", False)
    assert decode_output(b"abcdef", 6, 4) == ("abcd", True)
    assert decode_output(b"abcdef", 6, 4, tail=True) == ("cdef", True)
    assert decode_output(b"abc", 10, 4) == ("abc", True)  # the runner dropped bytes


def report_line(*fields: object) -> bytes:
    return b" ".join([b"AGENTFLOW-RESULT", *(str(f).encode() for f in fields)]) + b"\n"


def test_the_report_line_is_parsed_strictly() -> None:
    out, err = base64.b64encode(b"42\n").decode(), base64.b64encode(b"").decode()
    good = report_line(0, 0, 0, 1, 0.0123, 3, 0, out, err)
    result, clean = parse_report(b"noise\n" + good, 100)  # type: ignore[misc]
    assert result == ExecutionResult("42\n", "", 0, elapsed_s=0.0123) and clean
    assert parse_report(good[:-9], 100) is None  # cut short
    assert parse_report(report_line(0, 0, 0, 1, 0.1, 3, 0, "not-base64!", err), 100) is None
    assert parse_report(report_line(0, 0), 100) is None
    assert parse_report(b"nothing", 100) is None


def test_reading_the_exec_stream_is_bounded() -> None:
    class Stream:
        closed = False

        def __iter__(self):  # type: ignore[no-untyped-def]
            while True:
                yield b"x" * 1000, None

        def close(self) -> None:
            self.closed = True

    stream = Stream()
    out, err, overflow = read_bounded(stream, 10_000)
    assert overflow and len(out) <= 11_000 and err == b"" and stream.closed


def test_settings_are_checked_when_the_config_is_read() -> None:
    with pytest.raises(ConfigError, match=r"^tools\.python_coder: pool_size: expected an integer$"):
        structure_settings(Settings, {"pool_size": "two"}, where="tools.python_coder")
    with pytest.raises(ConfigError, match="memory_mb"):
        structure_settings(Settings, {"memory_mb": 8}, where="tools.python_coder")
    with pytest.raises(ConfigError, match="colour"):
        structure_settings(Settings, {"colour": "red"}, where="tools.python_coder")
    assert structure_settings(Settings, {"image": "x", "timeout_s": 3}, where="t").timeout_s == 3.0


def test_execution_result_describes_its_ending() -> None:
    assert ExecutionResult("", "", 1).describe() == "exit code 1"
    assert ExecutionResult("", "", -9, timed_out=True, truncated=True).describe() == "timed out, output truncated"
    assert ExecutionResult("", "", -9, oom=True).describe() == "out of memory"
    assert ExecutionResult("", "", -15).describe() == "killed by signal 15"
    assert isinstance(DockerSandbox(), Sandbox)
