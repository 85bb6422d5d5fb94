"""The sandbox against hostile code, through its public API: each attack has an expected safe outcome,
and the next run on the same warm container finds nothing of it.

Two pools serve the module's tests: ``box`` (two containers, for the ordinary paths and concurrency)
and ``warm`` (one container, so that the run after an attack is certainly on the container the attack
ran in; the probe checks that, by the start time of the zygote every run is forked from).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import resource
import socket
import subprocess
import sys
import tarfile
import textwrap
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import attrs
import pytest
import pytest_asyncio

from agentflow_tools.sandbox import DEFAULT_TAG, DockerSandbox, ExecutionResult, Sandbox, SandboxError, SyncSandbox
from agentflow_tools.sandbox.container import connect, sandbox_containers
from agentflow_tools.sandbox.image import resolve_image
from agentflow_tools.sandbox.settings import OWNER_LABEL

#: Tests on the shared pools run in their event loop.
in_pool_loop = pytest.mark.asyncio(loop_scope="module")

ENV = {"HOME": "/sandbox", "LANG": "C.UTF-8", "PATH": "/usr/local/bin:/usr/bin:/bin"}

#: Prints, as JSON, which container ran it and everything a finished run could have left for the next.
PROBE = """
import json, os
def stat(pid):
    text = open(f"/proc/{pid}/stat").read()
    return text[text.rfind(")") + 2 :].split()
zygote = os.getppid()
supervisor = int(stat(zygote)[1])
ours = {os.getpid(), zygote, supervisor}
procs = []
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        lines = open(f"/proc/{pid}/status").read().splitlines()
    except OSError:
        continue
    status = dict(line.split(":", 1) for line in lines if ":" in line)
    mine = status["Uid"].split()[0] == str(os.getuid())
    if mine and int(pid) not in ours and not status["State"].strip().startswith("Z"):
        procs.append(status["Name"].strip())
files = {d: sorted(os.listdir(d)) for d in ("/tmp", "/dev/shm", "/dev/mqueue")}
files["/sandbox"] = sorted(set(os.listdir("/sandbox")) - {"main.py"})
print(json.dumps({
    "container": stat(zygote)[19],
    "procs": procs,
    "files": files,
    "ipc": {k: open(f"/proc/sysvipc/{k}").read().splitlines()[1:] for k in ("shm", "msg", "sem")},
    "env": dict(os.environ),
    "limits": open("/proc/self/limits").read(),
    "nice": os.getpriority(os.PRIO_PROCESS, 0),
    "cpus": sorted(os.sched_getaffinity(0)),
    "workdir_mode": oct(os.stat("/sandbox").st_mode),
}))
"""


def code(text: str) -> str:
    return textwrap.dedent(text).strip() + "\n"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def box(sandbox_image: str) -> AsyncIterator[Sandbox]:
    """A started pool of two, shared by the module's tests."""
    async with DockerSandbox(sandbox_image, pool_size=2) as sandbox:
        yield sandbox


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def warm(sandbox_image: str) -> AsyncIterator[Sandbox]:
    """A pool of one: every run lands on the same container until that container is replaced."""
    async with DockerSandbox(sandbox_image, pool_size=1) as sandbox:
        yield sandbox


async def probe(box: Sandbox) -> dict[str, Any]:
    result = await asyncio.wait_for(box.run(PROBE, timeout_s=20), 120)
    assert result.ok, result
    found: dict[str, Any] = json.loads(result.stdout)
    return found


def assert_clean(found: dict[str, Any], baseline: dict[str, Any]) -> None:
    """Nothing of an earlier run: no process, file, IPC object or variable, limits and priority as before."""
    assert found["procs"] == []
    assert found["files"] == {"/tmp": [], "/dev/shm": [], "/dev/mqueue": [], "/sandbox": []}
    assert found["ipc"] == {"shm": [], "msg": [], "sem": []}
    assert found["env"] == ENV
    for key in ("limits", "nice", "cpus", "workdir_mode"):
        assert found[key] == baseline[key], key


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def baseline(sandbox_image: str) -> dict[str, Any]:
    """What a probe on a brand-new container sees."""
    async with DockerSandbox(sandbox_image, pool_size=1) as fresh:
        return await probe(fresh)


# -- the ordinary paths -------------------------------------------------------------------------


@in_pool_loop
async def test_prints_and_exits(box: Sandbox) -> None:
    result = await box.run("print(6 * 7)")
    assert (result.stdout, result.exit_code, result.ok, result.truncated) == ("42\n", 0, True, False)


@in_pool_loop
async def test_exception_gives_traceback_tail_and_exit_code(box: Sandbox) -> None:
    result = await box.run(code("print('before')\nraise ValueError('boom')"))
    assert result.exit_code == 1 and not result.ok
    assert result.stdout == "before\n"
    assert result.stderr == (
        'Traceback (most recent call last):\n  File "/sandbox/main.py", line 2, in <module>\n'
        "    raise ValueError('boom')\nValueError: boom\n"
    )


@in_pool_loop
async def test_the_code_runs_as_a_script_would(box: Sandbox) -> None:
    """A fork of the zygote, but to the code it is ``python3 /sandbox/main.py``."""
    program = code(
        """
        import os, sys
        open("helper.py", "w").write("VALUE = 7\\n")
        import helper
        print(__name__, __file__, sys.argv, os.getcwd(), helper.VALUE, repr(sys.stdin.read()))
        print(callable(exit), sys.stdout.encoding)
        """
    )
    result = await box.run(program)
    assert result.stdout.splitlines() == [
        "__main__ /sandbox/main.py ['/sandbox/main.py'] /sandbox 7 ''",
        "True utf-8",
    ], result.stderr


@in_pool_loop
async def test_the_code_runs_at_the_lowest_priority_and_cannot_raise_it(box: Sandbox) -> None:
    # Supervisor and zygote share the container's CPU quota with everything the code starts; the
    # cleanup after a fork bomb must win it (see ``RUN_NICE``).
    program = code(
        """
        import os, subprocess, sys
        ask = "import os; print(os.getpriority(os.PRIO_PROCESS, 0))"
        child = subprocess.run([sys.executable, "-c", ask], capture_output=True, text=True).stdout.strip()
        print(os.getpriority(os.PRIO_PROCESS, 0), child)
        try:
            os.setpriority(os.PRIO_PROCESS, 0, 0)
        except PermissionError:
            print("refused")
        """
    )
    result = await box.run(program)
    assert result.stdout.splitlines() == ["19 19", "refused"], result.stderr


@pytest.mark.parametrize(
    ("program", "exit_code", "stderr_end"),
    [
        ("import sys; sys.exit(3)", 3, ""),
        ("raise SystemExit('bye')", 1, "bye\n"),
        ("raise KeyboardInterrupt", -2, "KeyboardInterrupt\n"),
        ("print(1", 1, "SyntaxError: '(' was never closed\n"),
        ("import os; os._exit(5)", 5, ""),
        ("import os, signal; os.kill(os.getpid(), signal.SIGKILL)", -9, ""),
    ],
    ids=["sys.exit", "exit-message", "keyboard-interrupt", "syntax-error", "os._exit", "self-kill"],
)
@in_pool_loop
async def test_exit_statuses_are_the_interpreters(box: Sandbox, program: str, exit_code: int, stderr_end: str) -> None:
    result = await box.run(program)
    assert result.exit_code == exit_code and result.stderr.endswith(stderr_end), result
    assert not result.oom and not result.timed_out


@in_pool_loop
async def test_threads_and_atexit_finish_before_the_run_ends(box: Sandbox) -> None:
    program = code(
        """
        import atexit, threading, time
        atexit.register(print, "atexit ran")
        def late():
            time.sleep(0.2)   # the main thread is long gone by then
            print("thread done")
        threading.Thread(target=late).start()
        print("main done")
        """
    )
    result = await box.run(program)
    assert result.stdout == "main done\nthread done\natexit ran\n", result.stderr


@in_pool_loop
async def test_each_run_gets_its_own_randomness(box: Sandbox) -> None:
    program = "import os, random, uuid\nprint(random.random(), os.urandom(8).hex(), uuid.uuid4())"
    outputs = {(await box.run(program)).stdout for _ in range(4)}
    assert len(outputs) == 4


@in_pool_loop
async def test_subprocesses_and_the_shell_work(box: Sandbox) -> None:
    program = "import subprocess\nprint(subprocess.run('echo $((6 * 7))', shell=True, capture_output=True).stdout)"
    result = await box.run(program)
    assert result.stdout == "b'42\\n'\n", result.stderr


@in_pool_loop
async def test_the_longest_program_runs_and_a_longer_one_is_refused(box: Sandbox) -> None:
    body = "x = 0\n" + "x += 1  # padding to make the program long\n" * 12_000
    program = body + "print(x)\n"
    assert 500_000 < len(program) <= 512 * 1024
    result = await box.run(program)
    assert result.stdout == "12000\n", result.stderr
    with pytest.raises(SandboxError, match="at most 524288 bytes"):
        await box.run(program + "#" * 30_000)


@in_pool_loop
async def test_binary_output_is_decoded_with_replacement(box: Sandbox) -> None:
    result = await box.run("import sys\nsys.stdout.buffer.write(bytes(range(256)) * 4)")
    assert result.ok
    assert "\ufffd" in result.stdout and result.stdout.startswith("\x00\x01\x02")


@in_pool_loop
async def test_long_stderr_keeps_its_end(box: Sandbox) -> None:
    result = await box.run("import sys\nsys.stderr.write('noise\\n' * 100_000)\nraise SystemExit('the end')")
    assert result.truncated and result.exit_code == 1
    assert result.stderr.endswith("the end\n") and len(result.stderr) <= 8000


@in_pool_loop
async def test_many_concurrent_runs_share_a_small_pool(box: Sandbox) -> None:
    # Each run lasts a while, so that the eight must queue for the two containers.
    programs = [f"import time\ntime.sleep(0.2)\nprint('run {i}')" for i in range(8)]
    results = await asyncio.gather(*(box.run(p) for p in programs))
    assert [r.stdout for r in results] == [f"run {i}\n" for i in range(8)]


# -- what the code can see and touch ------------------------------------------------------------


@in_pool_loop
async def test_network_is_unreachable(box: Sandbox) -> None:
    probe_code = code(
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
    result = await box.run(probe_code)
    assert result.ok
    assert result.stdout.splitlines()[0] == "['lo']"
    assert "connected" not in result.stdout and result.stdout.count("refused") == 2


async def test_our_environment_does_not_reach_the_code(sandbox_image: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTFLOW_CANARY", "canary-7f3a9")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-canary-7f3a9")
    probe_code = code(
        """
        import os
        print(sorted(os.environ))
        leaked = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                leaked.append(b"canary-7f3a9" in open(f"/proc/{pid}/environ", "rb").read())
            except OSError:
                pass
        print(any(leaked), open("/proc/self/environ", "rb").read().count(b"\\0"))
        """
    )
    async with DockerSandbox(sandbox_image, pool_size=1) as fresh:  # made after the canary was set
        result = await fresh.run(probe_code)
    assert result.stdout.splitlines() == ["['HOME', 'LANG', 'PATH']", "False 3"]


@in_pool_loop
async def test_host_processes_are_invisible(box: Sandbox) -> None:
    program = "import os\nprint(sum(p.isdigit() for p in os.listdir('/proc')))\nprint(open('/proc/1/cmdline').read())"
    result = await box.run(program)
    count, init = result.stdout.splitlines()
    assert int(count) < 10  # init, the idle sleep, supervisor, zygote and the code: not the host's hundreds
    assert "docker-init" in init


@in_pool_loop
async def test_only_the_work_dir_and_tmp_are_writable(box: Sandbox) -> None:
    program = code(
        """
        import os
        writable = []
        for root, dirs, files in os.walk("/"):
            if root.startswith(("/proc", "/sys")):
                dirs[:] = []
                continue
            writable += [os.path.join(root, n) for n in dirs + files if os.access(os.path.join(root, n), os.W_OK)]
        print(sorted(p for p in writable if not p.startswith("/dev/") or p.startswith(("/dev/shm", "/dev/mqueue"))))
        """
    )
    result = await box.run(program)
    assert result.stdout == "['/dev/mqueue', '/dev/shm', '/sandbox', '/sandbox/main.py', '/tmp']\n", result.stderr


@in_pool_loop
async def test_the_runner_is_out_of_the_codes_reach(box: Sandbox) -> None:
    """Same uid, but non-dumpable: no reading or writing their memory, files or output, no ptrace."""
    sneaky = code(
        """
        import ctypes, os
        zygote = os.getppid()
        text = open(f"/proc/{zygote}/stat").read()
        supervisor = int(text[text.rfind(")") + 2 :].split()[1])
        libc = ctypes.CDLL(None, use_errno=True)
        for pid in (zygote, supervisor):
            for name in ("fd/0", "fd/1", "mem", "environ", "oom_score_adj"):
                try:
                    open(f"/proc/{pid}/{name}", "r+b").write(b"RESULT 0 0 0 1 0.0 0 0 0 0")
                    print("opened", name)
                except OSError as exc:
                    print(type(exc).__name__)
            print("ptrace", libc.ptrace(16, pid, None, None), ctypes.get_errno())  # PTRACE_ATTACH: EPERM
        """
    )
    result = await box.run(sneaky)
    assert result.ok, result.stderr
    assert result.stdout.splitlines() == (["PermissionError"] * 5 + ["ptrace -1 1"]) * 2


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
    result = await box.run(attempts)
    assert result.ok, result.stderr
    found = json.loads(result.stdout)
    assert found.pop("caps") == "0" * 32 + "1"
    assert found == dict.fromkeys(found, "denied")


# -- attacks, each followed by a probe on the same warm container ------------------------------


@attrs.frozen
class Attack:
    name: str
    code: str
    check: Callable[[ExecutionResult], object]
    timeout_s: float = 10.0


def timed_out(result: ExecutionResult) -> None:
    assert result.timed_out and result.exit_code == -9 and not result.ok, result
    assert result.elapsed_s >= 0.9  # the code had its full second


def ran_ok(expected_stdout: str) -> Callable[[ExecutionResult], None]:
    def check(result: ExecutionResult) -> None:
        assert result.ok and result.stdout == expected_stdout, result

    return check


def fork_bomb_contained(result: ExecutionResult) -> None:
    assert not result.ok and (result.timed_out or "BlockingIOError" in result.stderr), result


def out_of_memory(result: ExecutionResult) -> None:
    assert result.oom and not result.timed_out and not result.ok and result.exit_code == -9, result
    assert "out of memory" in result.describe()


def flood_cut(result: ExecutionResult) -> None:
    assert result.ok and result.truncated, result
    assert 0 < len(result.stdout) <= 8000 and "never seen" not in result.stdout


def tmp_full(result: ExecutionResult) -> None:
    first, second, third = result.stdout.splitlines()
    assert first.split()[0] == "ENOSPC" and int(first.split()[1]) <= 16, result
    assert second == "EFBIG" and third.startswith("ENOSPC"), result


ATTACKS = [
    Attack("busy-loop", "while True: pass", timed_out, timeout_s=1),
    Attack("sleep-forever", "import time; time.sleep(10**6)", timed_out, timeout_s=1),
    Attack(
        "non-daemon-thread",
        "import threading, time\nthreading.Thread(target=time.sleep, args=(999,)).start()",
        timed_out,
        timeout_s=1,
    ),
    Attack("fork-bomb", "import os\nwhile True:\n    os.fork()", fork_bomb_contained, timeout_s=3),
    Attack(
        "orphans-and-daemons",
        code(
            """
            import os, subprocess, time
            subprocess.Popen(["sleep", "1000"], start_new_session=True, stdout=subprocess.DEVNULL)
            if os.fork() == 0:            # a classic double-fork daemon that keeps writing files
                os.setsid()
                if os.fork() == 0:
                    while True:
                        open(f"/tmp/alive-{time.time()}", "w").close()
                        time.sleep(0.01)
                os._exit(0)
            deadline = time.monotonic() + 5
            while not os.listdir("/tmp") and time.monotonic() < deadline:
                time.sleep(0.01)          # polls until the daemon is up
            print("spawned" if os.listdir("/tmp") else "no daemon")
            """
        ),
        ran_ok("spawned\n"),
    ),
    Attack(
        "stopped-and-disguised-processes",
        code(
            """
            import ctypes, os, signal
            for name in (b"x) Z (y", b"sleep"):
                if os.fork() == 0:
                    ctypes.CDLL(None).prctl(15, name, 0, 0, 0)   # PR_SET_NAME: a state parser's trap
                    ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)       # non-dumpable, like the runner
                    os.kill(os.getpid(), signal.SIGSTOP)
                    os._exit(0)
            print("left")
            """
        ),
        ran_ok("left\n"),
    ),
    Attack("memory-bomb", "hog = []\nwhile True:\n    hog.append(b'x' * 10_000_000)", out_of_memory, timeout_s=20),
    Attack(
        "output-flood",
        "import sys\nfor _ in range(100_000):\n    sys.stdout.write('x' * 999 + '\\n')\nprint('never seen')",
        flood_cut,
        timeout_s=20,
    ),
    Attack("one-huge-line", "import sys\nsys.stdout.write('y' * 50_000_000)", flood_cut, timeout_s=20),
    Attack(
        "filled-tmp-and-workdir",
        code(
            """
            import errno, os
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
            try:
                for i in range(100_000):                      # over the inode limit
                    os.mkdir(f"d{i}")
            except OSError as exc:
                print(errno.errorcode[exc.errno], i)
            """
        ),
        tmp_full,
        timeout_s=30,
    ),
    Attack(
        "hostile-files",
        code(
            """
            import os, socket
            os.makedirs("deep/er/est")
            open("deep/er/est/f", "w").write("x")
            os.chmod("deep/er", 0)                          # unreadable, unwritable, unsearchable
            os.mkfifo("/tmp/fifo")
            socket.socket(socket.AF_UNIX).bind("/tmp/sock")
            os.symlink("/etc/passwd", "/tmp/link")
            os.unlink("main.py"); os.symlink("/etc/passwd", "main.py")   # a trap for the next script
            open("/dev/shm/.hidden", "w").write("x")
            os.chmod("/sandbox", 0)                         # the work dir itself
            print("done")
            """
        ),
        ran_ok("done\n"),
    ),
    Attack(
        "ipc-objects",
        code(
            """
            import ctypes, os
            libc = ctypes.CDLL(None, use_errno=True)
            created = [
                libc.shmget(0x4242, 4096, 0o1666) >= 0,                     # System V shared memory
                libc.msgget(0x4243, 0o1666) >= 0,                           # a System V message queue
                libc.semget(0x4244, 1, 0o1666) >= 0,                        # a System V semaphore set
                libc.mq_open(b"/leak", os.O_CREAT | os.O_RDWR, 0o600, None) >= 0,  # a POSIX message queue
            ]
            open("/dev/shm/leak", "w").write("secret")                      # POSIX shared memory
            print(created)
            """
        ),
        ran_ok("[True, True, True, True]\n"),
    ),
    Attack(
        "environment",
        "import os\nos.environ['LEAK'] = '1'\nos.putenv('PATH', '/sandbox')\nos.environ['HOME'] = '/tmp'\nprint('set')",
        ran_ok("set\n"),
    ),
    Attack(
        "own-limits-and-priority",
        code(
            """
            import os, resource
            resource.setrlimit(resource.RLIMIT_NOFILE, (20, 20))
            os.nice(10)
            os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
            print("lowered")
            """
        ),
        ran_ok("lowered\n"),
    ),
    Attack("closed-output", "import os\nos.close(1)\nos.close(2)\nos.close(0)", ran_ok("")),
]


@in_pool_loop
@pytest.mark.parametrize("attack", ATTACKS, ids=[a.name for a in ATTACKS])
async def test_after_an_attack_the_same_warm_container_is_clean(
    warm: Sandbox, baseline: dict[str, Any], attack: Attack
) -> None:
    before = await probe(warm)
    result = await warm.run(attack.code, timeout_s=attack.timeout_s)
    attack.check(result)
    after = await probe(warm)
    assert after["container"] == before["container"], "the attack cost its container; it should not"
    assert_clean(after, baseline)


def runner_gone(result: ExecutionResult) -> None:
    assert not result.ok and "without reporting" in result.stderr, result


def zygote_lost(result: ExecutionResult) -> None:
    assert not result.ok and "zygote stopped answering" in result.stderr, result


def watchdog(result: ExecutionResult) -> None:
    assert result.timed_out and "watchdog" in result.stderr, result


FIND_RUNNER = """
import ctypes, os, signal, time
zygote = os.getppid()
text = open(f"/proc/{zygote}/stat").read()
supervisor = int(text[text.rfind(")") + 2 :].split()[1])
"""

#: Code that reaches the runner itself (same uid: it can signal it, or lower what the zygote passes on).
#: The runner's guarantee is then that the container is thrown away, never reused.
SUBVERSIONS = [
    Attack("kill-everything", "import os, signal\nos.kill(-1, signal.SIGKILL)", runner_gone),
    Attack("kill-the-supervisor", FIND_RUNNER + "os.kill(supervisor, signal.SIGKILL)\ntime.sleep(60)", runner_gone),
    Attack("kill-the-zygote", FIND_RUNNER + "os.kill(zygote, signal.SIGKILL)\ntime.sleep(60)", zygote_lost, 2),
    Attack("stop-the-zygote", FIND_RUNNER + "os.kill(zygote, signal.SIGSTOP)", zygote_lost),
    Attack("stop-the-supervisor", FIND_RUNNER + "os.kill(supervisor, signal.SIGSTOP)\ntime.sleep(60)", watchdog, 1),
    Attack(
        "lower-the-zygotes-limits",
        FIND_RUNNER + "import resource\nresource.prlimit(zygote, resource.RLIMIT_NOFILE, (16, 16))\nprint('done')",
        ran_ok("done\n"),
    ),
    Attack("renice-the-zygote", FIND_RUNNER + "os.setpriority(os.PRIO_PROCESS, zygote, 19)", ran_ok("")),
    Attack(
        "pin-the-zygote",
        FIND_RUNNER + "os.sched_setaffinity(zygote, {min(os.sched_getaffinity(zygote))})",
        ran_ok(""),
    ),
]


@in_pool_loop
@pytest.mark.parametrize("attack", SUBVERSIONS, ids=[a.name for a in SUBVERSIONS])
async def test_code_that_subverts_the_runner_costs_only_its_container(
    warm: Sandbox, baseline: dict[str, Any], attack: Attack
) -> None:
    before = await probe(warm)
    result = await warm.run(attack.code, timeout_s=attack.timeout_s)
    attack.check(result)
    after = await probe(warm)
    assert after["container"] != before["container"], "a subverted runner's container was reused"
    assert_clean(after, baseline)


@in_pool_loop
async def test_a_flood_never_grows_our_memory(warm: Sandbox) -> None:
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = await warm.run("import sys\nfor _ in range(100_000):\n    sys.stdout.write('x' * 999 + '\\n')")
    assert result.truncated
    # 100 MB went through the pipe; our process never held more than a few kilobytes of it.
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before < 50_000  # KiB


# -- the API: timeouts, cancellation, closing -----------------------------------------------------


async def test_the_sandbox_timeout_is_the_default_for_runs(sandbox_image: str) -> None:
    async with DockerSandbox(sandbox_image, pool_size=1, timeout_s=1) as sandbox:
        result = await sandbox.run("while True: pass")
        assert result.timed_out and result.elapsed_s < 3
        with pytest.raises(ValueError, match="timeout_s must be positive"):
            await sandbox.run("pass", timeout_s=0)


def test_unknown_options_are_refused() -> None:
    with pytest.raises(TypeError, match=r"unknown option\(s\) colour; it takes image, timeout_s"):
        DockerSandbox(colour="red")
    with pytest.raises(ValueError, match="memory_mb"):
        DockerSandbox(memory_mb=8)
    assert DockerSandbox("img", pool_size=3).settings.image == "img"


def ours() -> set[str]:
    """Ids of the sandbox containers this test process owns."""
    client = connect()
    try:
        return {c.id for c in sandbox_containers(client) if c.labels.get(OWNER_LABEL) == str(os.getpid())}
    finally:
        client.close()


async def until_code_runs(containers: frozenset[str]) -> None:
    """Poll `docker top` until each container runs a fifth process: init, idle, supervisor, zygote, the code."""

    def count(container: str) -> int:
        client = connect()
        try:
            return len(client.api.top(container)["Processes"])
        finally:
            client.close()

    deadline = time.monotonic() + 60
    while not all([await asyncio.to_thread(count, c) >= 5 for c in containers]):
        assert time.monotonic() < deadline, "the code never started"


@pytest_asyncio.fixture
async def lone(sandbox_image: str) -> AsyncIterator[DockerSandbox]:
    """A pool of one made for this test."""
    async with DockerSandbox(sandbox_image, pool_size=1) as sandbox:
        yield sandbox


async def test_a_cancelled_run_stops_its_code_and_frees_its_container(lone: DockerSandbox) -> None:
    before, containers = await probe(lone), lone.container_ids
    run = asyncio.ensure_future(lone.run("import time\ntime.sleep(600)", timeout_s=600))
    await until_code_runs(containers)
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    after = await probe(lone)  # would wait ten minutes (and time out) if the cancel had not stopped the code
    assert after["container"] == before["container"] and after["procs"] == []
    assert lone.container_ids == containers


async def test_runs_waiting_for_a_container_can_be_cancelled(lone: DockerSandbox) -> None:
    busy = asyncio.ensure_future(lone.run("import time\ntime.sleep(600)", timeout_s=600))
    waiting = asyncio.ensure_future(lone.run("print('never')"))
    await until_code_runs(lone.container_ids)  # busy holds the only container, so waiting waits
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    busy.cancel()
    assert (await lone.run("print('next')")).stdout == "next\n"


async def test_closing_stops_runs_in_flight_and_removes_every_container(sandbox_image: str) -> None:
    sandbox = DockerSandbox(sandbox_image, pool_size=2)
    await sandbox.start()
    containers = sandbox.container_ids
    runs = [asyncio.ensure_future(sandbox.run("import time\ntime.sleep(600)", timeout_s=600)) for _ in range(3)]
    try:
        await until_code_runs(containers)  # two runs in flight, one waiting for a container
    finally:
        await asyncio.wait_for(sandbox.aclose(), 60)
    for run in runs:
        with pytest.raises(SandboxError, match="closed"):
            await run
    assert ours() & containers == set() and sandbox.container_ids == frozenset()
    with pytest.raises(SandboxError, match="not running"):
        await sandbox.run("print(1)")


async def test_a_timeout_keeps_the_container_when_the_cleanup_is_complete(lone: DockerSandbox) -> None:
    containers = lone.container_ids
    result = await lone.run("while True: pass", timeout_s=0.5)
    assert result.timed_out
    assert (await lone.run("print(1)")).stdout == "1\n"
    assert lone.container_ids == containers


def test_run_before_start_or_on_another_loop_is_an_error(sandbox_image: str) -> None:
    with pytest.raises(SandboxError, match="not running"):
        asyncio.run(DockerSandbox().run("print(1)"))
    sandbox = DockerSandbox(sandbox_image, pool_size=1)
    asyncio.run(sandbox.start())
    try:
        with pytest.raises(SandboxError, match="another event loop"):
            asyncio.run(sandbox.run("print(1)", 5))
    finally:
        asyncio.run(sandbox.aclose())  # nothing waits on the first loop, so another may close it


# -- a daemon that goes away, a runner that is broken --------------------------------------------


class DaemonProxy:
    """A real relay between Unix sockets, in front of the Docker daemon: cutting it is the daemon dying
    for whoever talks through it, and starting it again is the daemon coming back."""

    def __init__(self, path: Path, target: str) -> None:
        self.path, self.target = path, target
        self._listener: socket.socket | None = None
        self._open: list[socket.socket] = []

    def start(self) -> None:
        self.path.unlink(missing_ok=True)
        self._listener = socket.socket(socket.AF_UNIX)
        self._listener.bind(str(self.path))
        self._listener.listen(64)
        threading.Thread(target=self._accept, args=(self._listener,), daemon=True).start()

    def stop(self) -> None:
        if self._listener is not None:
            with contextlib.suppress(OSError):  # wakes the thread blocked in accept(); close alone would not
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
            self._listener = None
        for sock in self._open:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        self._open.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:  # stopped
                return
            daemon = socket.socket(socket.AF_UNIX)
            daemon.connect(self.target)
            self._open += [client, daemon]
            for source, sink in ((client, daemon), (daemon, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)


def real_daemon_socket() -> str:
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    assert host.startswith("unix://"), f"this test relays a Unix socket; DOCKER_HOST is {host}"
    return host.removeprefix("unix://")


async def test_a_daemon_that_goes_away_is_a_sandbox_error_until_it_is_back(
    sandbox_image: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy = DaemonProxy(tmp_path / "docker.sock", real_daemon_socket())
    proxy.start()
    made: set[str] = set()
    monkeypatch.setenv("DOCKER_HOST", f"unix://{proxy.path}")
    sandbox = DockerSandbox(sandbox_image, pool_size=1)
    try:
        await sandbox.start()
        made |= sandbox.container_ids
        assert (await sandbox.run("print(1)")).stdout == "1\n"
        run = asyncio.ensure_future(sandbox.run("import time\ntime.sleep(600)", timeout_s=600))
        await until_code_runs(sandbox.container_ids)
        proxy.stop()
        with pytest.raises(SandboxError, match="lost the Docker daemon during the run"):
            await run
        with pytest.raises(SandboxError, match="cannot start a sandbox container"):
            await sandbox.run("print(2)")
        proxy.start()
        assert (await sandbox.run("print(3)")).stdout == "3\n"
        made |= sandbox.container_ids
    finally:
        await sandbox.aclose()
        proxy.stop()
        monkeypatch.delenv("DOCKER_HOST")
        client = connect()
        for container in made:  # those the cut daemon could not remove
            with contextlib.suppress(Exception):
                client.api.remove_container(container, force=True)
        client.close()


def fake_runner_image(base: str, tag: str, script: str) -> str:
    """``base`` with its python3 replaced by a shell script: a runner that misbehaves on purpose."""
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        for name, text, mode in (
            ("Dockerfile", f"FROM {base}\nCOPY python3 /usr/local/bin/python3\n", 0o644),
            ("python3", "#!/bin/sh\n" + script, 0o755),
        ):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(text.encode()), mode
            tar.addfile(info, io.BytesIO(text.encode()))
    context.seek(0)
    client = connect()
    try:
        client.images.build(fileobj=context, custom_context=True, tag=tag, rm=True, pull=False)
    finally:
        client.close()
    return tag


@pytest.fixture(scope="module")
def lying_runner(sandbox_image: str) -> Iterator[str]:
    script = 'read hello\necho "READY 1"\nread request\necho "RESULT 0 0 0 1 0.0 0 0 999999 0"\nsleep 600\n'
    yield fake_runner_image(sandbox_image, "agentflow-sandbox:test-lying", script)
    client = connect()
    client.images.remove("agentflow-sandbox:test-lying", force=True)
    client.close()


async def test_a_runner_that_sends_garbage_loses_its_container(lying_runner: str) -> None:
    async with DockerSandbox(lying_runner, pool_size=1) as sandbox:
        first = sandbox.container_ids
        result = await sandbox.run("print(1)")
        assert not result.ok and "not a report" in result.stderr and "inconsistent" in result.stderr
        await sandbox.run("print(1)")  # on the replacement, which lies as well
        assert sandbox.container_ids.isdisjoint(first)


def test_a_runner_that_does_not_start_is_one_line(sandbox_image: str) -> None:
    image = fake_runner_image(sandbox_image, "agentflow-sandbox:test-dead", "echo 'no python here' >&2\nexit 3\n")
    try:
        with pytest.raises(SandboxError) as info, SyncSandbox(DockerSandbox(image, pool_size=1)):
            pass
        message = str(info.value)
        assert message.startswith(f"cannot start a sandbox container from {image!r}") and "\n" not in message
    finally:
        client = connect()
        client.images.remove(image, force=True)
        client.close()


# -- the blocking face -----------------------------------------------------------------------------


def test_the_sync_sandbox_runs_from_threads_and_inside_a_running_loop(sandbox_image: str) -> None:
    with SyncSandbox(DockerSandbox(sandbox_image, pool_size=2)) as box:
        assert box.run("print(6 * 7)").stdout == "42\n"
        with ThreadPoolExecutor(4) as threads:
            outputs = list(threads.map(lambda i: box.run(f"print({i})").stdout, range(8)))
        assert outputs == [f"{i}\n" for i in range(8)]

        async def from_a_coroutine() -> str:  # as in a notebook, where a loop is already running
            return box.run("print('nested')").stdout

        assert asyncio.run(from_a_coroutine()) == "nested\n"
    with pytest.raises(SandboxError, match="not running"):
        box.run("print(1)")


# -- setup errors and the CLI -------------------------------------------------------------------


async def test_no_daemon_is_one_line_naming_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    sandbox = DockerSandbox("anything")
    with pytest.raises(SandboxError) as info:
        await sandbox.start()
    assert "start dockerd" in str(info.value) and "\n" not in str(info.value)
    await sandbox.aclose()


async def test_missing_image_is_one_line_naming_the_fix(docker_daemon: None) -> None:
    sandbox = DockerSandbox("agentflow-no-such-image:1")
    with pytest.raises(SandboxError) as info:
        await sandbox.start()
    message = str(info.value)
    assert "agentflow sandbox build" in message and "[tools.python_coder] image" in message
    assert "\n" not in message


def test_a_missing_local_image_is_built_once_and_a_configured_one_never(
    throwaway_local_tag: str, caplog: pytest.LogCaptureFixture
) -> None:
    import docker.errors

    client = connect()
    try:
        with pytest.raises(docker.errors.ImageNotFound):
            client.images.get(throwaway_local_tag)
        assert resolve_image(client, None) == throwaway_local_tag
        built = client.images.get(throwaway_local_tag).id
        [line] = [r.getMessage() for r in caplog.records if "building the sandbox image" in r.getMessage()]
        assert line.startswith(f"building the sandbox image {throwaway_local_tag} from this machine's Python")

        caplog.clear()
        assert resolve_image(client, None) == throwaway_local_tag  # there now: used as it is
        assert client.images.get(throwaway_local_tag).id == built and not caplog.records

        configured = throwaway_local_tag.replace("test-", "test-configured-")
        with pytest.raises(SandboxError, match=f"Docker image '{configured}' is missing: `docker pull"):
            resolve_image(client, configured)
        with pytest.raises(docker.errors.ImageNotFound):
            client.images.get(configured)
    finally:
        client.close()


def test_a_local_image_that_cannot_be_built_is_one_line_naming_the_fix(
    throwaway_local_tag: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no ldd: the build cannot list the libraries to copy
    client = connect()
    try:
        with pytest.raises(SandboxError) as info:
            resolve_image(client, None)
    finally:
        client.close()
    message = str(info.value)
    assert message.startswith(f"no sandbox image, and building {throwaway_local_tag} from this machine's Python failed")
    assert "`ldd` is not on PATH" in message and "[tools.python_coder] image" in message and "\n" not in message


def agentflow(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTFLOW_")}
    return subprocess.run(
        [sys.executable, "-m", "agentflow_core", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=cwd,
        env=env,
    )


def test_a_new_user_runs_code_in_the_built_image_without_any_config(sandbox_image: str, tmp_path: Path) -> None:
    """docs/sandbox.md's `agentflow sandbox run`, nothing configured: it runs in the local image."""
    assert sandbox_image == DEFAULT_TAG
    done = agentflow("sandbox", "run", "-c", "print(2**100)", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"{2**100}\n"
    assert done.stderr.rstrip().endswith(f"in {DEFAULT_TAG}]")


def owned_by(pid: int) -> list[str]:
    client = connect()
    try:
        return [c.id for c in sandbox_containers(client) if c.labels.get(OWNER_LABEL) == str(pid)]
    finally:
        client.close()


def test_the_cli_removes_its_containers_when_done(sandbox_image: str) -> None:
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
