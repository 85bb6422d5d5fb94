"""The in-container half: a supervisor that never runs code, a zygote that forks each run, one report per run.

The host starts this file once per container (``docker exec -i``, as the sandbox uid,
``python3 -I -B -u -X utf8 -c <this source>``) and keeps the exec's stream open for the container's
life: requests come on stdin, reports go out on stdout. Three kinds of process live here:

- the *supervisor* (the exec's process) reads a request, writes the code to ``/sandbox/main.py``,
  reads the run's two output pipes under caps, enforces the deadline, then kills whatever the run
  left, wipes every place the sandbox uid can write, checks the zygote, and writes one report;
- the *zygote*, forked from the supervisor before the first request, so that it holds no byte of
  any run; it forks on a one-byte command and reports the exit status of its child;
- the *run*: a fork of the zygote, in its own session, with ``/dev/null`` as stdin and the output
  pipes as stdout and stderr, that executes ``main.py`` as ``__main__``. Its interpreter state is
  a copy of one that never ran user code, without the cost of starting an interpreter.

The code runs under the same uid as supervisor and zygote, which is what lets the supervisor kill
and wipe everything the code left. Both are non-dumpable, so the code can neither ptrace them, nor
read their memory, nor open their file descriptors. It can signal them or lower their limits; so
after every run the supervisor checks that the zygote answers and passes on what it passed on
before, and otherwise reports the container unhealthy, and the host throws it away. A supervisor
that stops answering is the host's watchdog's business.

Wire (bytes; see ``protocol.py`` for the host's half):
``HELLO 1\\n`` -> ``READY 1\\n``; ``RUN timeout_s limit_bytes code_bytes\\n`` + code -> ``RESULT exit
timed_out oom healthy elapsed_s stdout_total stderr_total stdout_kept stderr_kept\\n`` + the kept
bytes of stdout (its head) and stderr (its tail). Any bytes during a run cancel it; ``C`` lines
between runs are ignored (a cancel that crossed the report); end of input stops everything.

Standard library only, no agentflow, Python 3.8 or newer, so any image with a ``python3`` works.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import gc
import io
import os
import select
import signal
import sys
import time
import types
from typing import IO, Any, NoReturn

VERSION = b"1"
WORKDIR = "/sandbox"
SCRIPT = WORKDIR + "/main.py"
#: Every place the sandbox uid can write; all emptied after every run.
SCRATCH = (WORKDIR, "/tmp", "/dev/shm", "/dev/mqueue")
#: The whole environment of the code, and of this process once it re-executed itself.
ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": WORKDIR, "LANG": "C.UTF-8"}
#: How long processes the run left may take to die, the zygote to report or answer, output to drain;
#: together well inside the host's grace after the deadline (``WATCHDOG_GRACE_S``).
KILL_WAIT_S = 1.5
ZYGOTE_WAIT_S = 1.0
DRAIN_S = 0.25
#: The run's niceness. Supervisor and zygote stay at the container's own: they share the container's
#: CPU quota with everything the code starts, and at equal weight a fork bomb's dozens of processes
#: leave the cleanup a small share of it (on a loaded CI host a fork bomb once cost its container).
#: At 19 each of the code's processes weighs 15 against the supervisor's 1024; alone in its
#: container the code runs at full speed all the same.
RUN_NICE = 19
MAX_LINE = 256
PR_SET_DUMPABLE = 4
EXIT_SIGINT = -signal.SIGINT
#: Loaded once here, before the zygote forks: a dlopen in every run costs half a millisecond.
LIBC = ctypes.CDLL(None, use_errno=True)


def main() -> tuple[int, int]:
    """Set up, fork the zygote, serve. Returns only in a run's process, with its two output pipes."""
    if dict(os.environ) != ENV and hasattr(sys, "orig_argv"):
        # Once per container: docker exec's environment (HOSTNAME, ...) must not even be in /proc/self/environ.
        os.execve(sys.executable, sys.orig_argv, ENV)
    os.environ.clear()
    os.environ.update(ENV)
    os.chdir("/")
    os.chmod(WORKDIR, 0o700)  # Docker copies the image's mode onto the tmpfs; the wipe restores this one
    set_dumpable(False)
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    commands_r, commands_w = os.pipe()
    status_r, status_w = os.pipe()
    zygote = os.fork()
    if zygote == 0:
        for fd in (out_r, err_r, commands_w, status_r):
            os.close(fd)
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):  # the exec's stream belongs to the supervisor alone
            os.dup2(null, fd)
        os.close(null)
        return zygote_loop(commands_r, status_w, out_w, err_w)
    for fd in (out_w, err_w, commands_r, status_w):
        os.close(fd)
    try:
        Supervisor(zygote, commands_w, status_r, out_r, err_r).serve()
    except BaseException:
        import traceback

        traceback.print_exc()  # the host shows the end of it
        os._exit(1)
    os._exit(0)


# -- the zygote and the run ----------------------------------------------------------------------


def zygote_loop(commands: int, status: int, out_w: int, err_w: int) -> tuple[int, int]:
    """Fork on ``R``, answer ``P``; never reads anything else, so no run's data is ever in this process."""
    warm_up()
    gc.freeze()  # inherited objects stay out of the children's collections: fewer copied pages
    while True:
        command = os.read(commands, 1)
        if command == b"P":
            os.write(status, b"p")
        elif command == b"R":
            child = os.fork()
            if child == 0:
                return out_w, err_w
            _, wait_status = os.waitpid(child, 0)
            os.write(status, b"E%d\n" % exit_code_of(wait_status))
        else:  # end of input: the supervisor is gone
            os._exit(0)


#: Compiled once in the zygote: the compiler's first use builds lazy state that cost every forked
#: run 1.5 ms (and 150 page faults) here. Ordinary syntax, so that the common paths are warm.
WARM_UP = """
import math
class Point:
    def __init__(self, x: int, y: int = 0) -> None:
        self.x, self.y = x, y
    def __repr__(self):
        return f"Point({self.x!r}, {self.y:>3})"
async def later(items, *args, **kwargs):
    async with items as handle:
        return [await handle for _ in args]
def main():
    total = sum(i * i for i in range(10) if i % 2) + len({k: v for k, v in zip("ab", (1, 2))})
    values = sorted({3, 1, 2}, key=lambda v: -v)[::2]
    try:
        with open("/dev/null") as handle:
            handle.read()
    except (OSError, ValueError) as exc:
        raise RuntimeError("no") from exc
    finally:
        pass
    while total > 1e3 and not values or total is None:
        total //= 2
    match values:
        case [first, *rest]:
            print(first, rest, sep=", ", end="\\n")
        case _:
            pass
    global math
    return total if values else None
if __name__ == "__main__":
    main()
"""


def warm_up() -> None:
    try:
        compile(WARM_UP, "<warm-up>", "exec", dont_inherit=True)
    except SyntaxError:  # an interpreter older than 3.10 has no match statement
        compile(WARM_UP.split("    match ")[0], "<warm-up>", "exec", dont_inherit=True)


def run_script(out_w: int, err_w: int) -> NoReturn:
    """In the run's process: become ``python3 /sandbox/main.py`` and end as it would. Never returns."""
    try:
        module, source = become_script(out_w, err_w)
    except BaseException as exc:
        os.write(2, f"sandbox: the run could not start: {exc!r}\n".encode())
        os._exit(70)
    status = execute(source, module)
    status = finish(status, module)
    if status == EXIT_SIGINT:  # like the interpreter after an uncaught KeyboardInterrupt
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
    os._exit(status & 0xFF)


def become_script(out_w: int, err_w: int) -> tuple[types.ModuleType, bytes]:
    os.setsid()
    os.setpriority(os.PRIO_PROCESS, 0, RUN_NICE)  # the most a process can be niced: never a lowering
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(out_w, 1)
    os.dup2(err_w, 2)
    os.closerange(3, max(256, os.sysconf("SC_OPEN_MAX")))  # nothing of the supervisor's or the zygote's
    set_dumpable(True)
    _write_file("/proc/self/oom_score_adj", b"1000")  # under memory pressure the run dies, not us
    os.chdir(WORKDIR)
    import builtins

    module = type(sys)("__main__")
    module.__file__ = SCRIPT
    module.__dict__.update(__cached__=None, __builtins__=builtins)  # what typeshed's ModuleType leaves out
    external = sys.modules.get("_frozen_importlib_external")
    if external is not None:
        module.__loader__ = external.SourceFileLoader("__main__", SCRIPT)
    sys.modules["__main__"] = module
    sys.argv[:] = [SCRIPT]
    if hasattr(sys, "orig_argv"):
        sys.orig_argv[:] = [sys.executable, SCRIPT]
    sys.path.insert(0, WORKDIR)
    with open(SCRIPT, "rb") as handle:
        return module, handle.read()


def execute(source: bytes, module: types.ModuleType) -> int:
    """Run the script; the exit status, printing what the interpreter would print for an uncaught exception."""
    try:
        exec(compile(source, SCRIPT, "exec", dont_inherit=True), module.__dict__)
    except SystemExit as exc:
        return exit_status(exc)
    except BaseException as exc:
        tb = exc.__traceback__.tb_next if exc.__traceback__ is not None else None  # not our own frame
        exc.__traceback__ = tb
        with contextlib.suppress(BaseException):
            sys.excepthook(type(exc), exc, tb)
        return EXIT_SIGINT if isinstance(exc, KeyboardInterrupt) else 1
    return 0


def exit_status(exc: SystemExit) -> int:
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code
    with contextlib.suppress(BaseException):
        sys.stderr.write(f"{exc.code}\n")
    return 1


def finish(status: int, module: types.ModuleType) -> int:
    """The interpreter's exit, minus the teardown of every module (10 ms in a forked child):
    join non-daemon threads, run atexit callbacks, flush what the script left open."""
    threading = sys.modules.get("threading")
    if threading is not None:
        with contextlib.suppress(BaseException):
            threading._shutdown()
    with contextlib.suppress(BaseException):
        atexit._run_exitfuncs()

    for value in list(module.__dict__.values()):
        if isinstance(value, io.IOBase):
            _flush(value)
    if not _flush(sys.stdout) and status == 0:
        status = 120
    _flush(sys.stderr)
    return status


def _flush(stream: io.IOBase | IO[Any]) -> bool:
    try:
        stream.flush()
        return True
    except Exception:
        return getattr(stream, "closed", False) is True


# -- the supervisor --------------------------------------------------------------------------------


class Supervisor:
    def __init__(self, zygote: int, commands: int, status: int, out_r: int, err_r: int) -> None:
        self.zygote, self.commands, self.status = zygote, commands, status
        self.outputs = (out_r, err_r)
        for fd in self.outputs:
            os.set_blocking(fd, False)
        self.inbox = Inbox(0)
        self.exempt = (os.getpid(), zygote)
        self.inherited = self.inheritance()
        self.oom_seen = oom_kills()

    def serve(self) -> None:
        if self.inbox.line() != b"HELLO " + VERSION:
            return
        write_all(1, b"READY " + VERSION + b"\n")
        while True:
            line = self.inbox.line()
            if line == b"C":  # a cancel that crossed its run's report
                continue
            fields = line.split() if line else []
            if len(fields) != 4 or fields[0] != b"RUN":
                return
            code = self.inbox.exact(int(fields[3]))
            if code is None:
                return
            try:
                report, healthy = self.run(code, float(fields[1]), int(fields[2]))
            except Exception as exc:  # a limit the code lowered, say: this container is done
                report, healthy = failure_report(exc), False
            write_all(1, report)
            if not healthy:
                return

    def run(self, code: bytes, timeout_s: float, limit: int) -> tuple[bytes, bool]:
        write_new_file(SCRIPT, code)
        captures = {self.outputs[0]: Capture(limit, "head"), self.outputs[1]: Capture(limit, "tail")}
        started = time.monotonic()
        os.write(self.commands, b"R")
        exit_code, ending = self.watch(captures, started + timeout_s)
        elapsed = time.monotonic() - started
        killed_all = self.kill_leftovers()
        if ending in ("timeout", "cancel"):
            exit_code = self.zygote_report(time.monotonic() + ZYGOTE_WAIT_S)
        drain(captures, time.monotonic() + DRAIN_S)
        wiped = wipe()
        if ending == "host":
            os._exit(0)
        notes = []
        if exit_code is None:
            notes.append("the sandbox's zygote stopped answering; did the code signal other processes?")
        if not killed_all:
            notes.append("processes of the run survived SIGKILL")
        if not wiped:
            notes.append("files of the run could not be removed")
        healthy = not notes and self.zygote_intact()
        oom = self.oom_during(exit_code, ending)
        out, err = captures.values()
        for note in notes:
            err.add(f"\n[sandbox: {note}]\n".encode())
        exit_code = -signal.SIGKILL if exit_code is None else exit_code
        timed_out = ending in ("timeout", "cancel")
        kept_out, kept_err = out.kept(), err.kept()
        fields = (exit_code, int(timed_out), int(oom), int(healthy), f"{elapsed:.4f}", out.total, err.total)
        header = " ".join(map(str, ("RESULT", *fields, len(kept_out), len(kept_err)))).encode() + b"\n"
        return header + kept_out + kept_err, healthy

    def watch(self, captures: dict[int, Capture], deadline: float) -> tuple[int | None, str]:
        """Read output until the script exits; (exit code or None, how the run ended)."""
        if self.inbox.pending():
            return None, "cancel"
        poller = select.poll()
        for fd in (*captures, self.status, 0):
            poller.register(fd, select.POLLIN)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None, "timeout"
            for fd, _ in poller.poll(max(1, int(remaining * 1000) + 1)):
                if fd in captures:
                    _read_into(fd, captures[fd])
                elif fd == self.status:
                    message = os.read(self.status, 64)
                    return (parse_exit(message), "exit") if message else (None, "zygote")
                else:
                    return None, ("cancel" if os.read(0, 4096) else "host")

    def zygote_report(self, deadline: float) -> int | None:
        """The exit status the zygote reports for its child, once we killed it; None if it does not come."""
        poller = select.poll()
        poller.register(self.status, select.POLLIN)
        remaining = deadline - time.monotonic()
        if remaining > 0 and poller.poll(int(remaining * 1000) + 1):
            message = os.read(self.status, 64)
            return parse_exit(message) if message else None
        return None

    def kill_leftovers(self) -> bool:
        """SIGSTOP then SIGKILL every process of ours but supervisor and zygote, until none runs.
        Stopping first keeps a fork bomb from refilling the slots that killing frees."""
        deadline = time.monotonic() + KILL_WAIT_S
        while True:
            alive = self.run_processes()
            if not alive:
                return True
            if time.monotonic() > deadline:
                return False
            for sig in (signal.SIGSTOP, signal.SIGKILL):
                for pid in alive:
                    _signal(pid, sig)
            time.sleep(0.001)  # SIGKILL takes effect as the process next runs

    def run_processes(self) -> list[int]:
        """Processes we may signal, other than supervisor and zygote, that are not yet dead."""
        found = []
        for name in os.listdir("/proc"):
            if name.isdigit() and int(name) not in self.exempt and _signal(int(name), 0):
                state = _state(name)
                if state and state not in "ZX":
                    found.append(int(name))
        return found

    def zygote_intact(self) -> bool:
        """The zygote answers, and what it passes on to the next run (limits, priority, CPUs) is unchanged."""
        try:
            os.write(self.commands, b"P")
            poller = select.poll()
            poller.register(self.status, select.POLLIN)
            answered = poller.poll(int(ZYGOTE_WAIT_S * 1000)) and os.read(self.status, 1) == b"p"
            return bool(answered) and self.inheritance() == self.inherited
        except OSError:
            return False

    def inheritance(self) -> tuple[object, ...]:
        pid = self.zygote
        return (
            _read_file(f"/proc/{pid}/limits"),
            _read_file("/proc/self/limits"),
            os.getpriority(os.PRIO_PROCESS, pid),
            os.sched_getscheduler(pid),
            os.sched_getaffinity(pid),
        )

    def oom_during(self, exit_code: int | None, ending: str) -> bool:
        """Did the kernel's OOM killer act in this run? Counted by the container's memory cgroup."""
        seen, self.oom_seen = self.oom_seen, oom_kills()
        if seen is None or self.oom_seen is None:  # no counter visible: a SIGKILL we did not send
            return exit_code == -signal.SIGKILL and ending == "exit"
        return self.oom_seen > seen


def failure_report(exc: BaseException) -> bytes:
    err = f"[sandbox: the supervisor failed: {exc!r}]\n".encode()[-4000:]
    return b"RESULT -1 0 0 0 0.0 0 %d 0 %d\n" % (len(err), len(err)) + err


class Inbox:
    """Lines and exact byte counts from a file descriptor, with what was read ahead kept."""

    def __init__(self, fd: int) -> None:
        self.fd, self.buffer = fd, bytearray()

    def pending(self) -> bool:
        return bool(self.buffer)

    def line(self) -> bytes | None:
        while b"\n" not in self.buffer:
            if len(self.buffer) > MAX_LINE or not self._fill(65536):
                return None
        at = self.buffer.index(b"\n")
        line = bytes(self.buffer[:at])
        del self.buffer[: at + 1]
        return line

    def exact(self, size: int) -> bytes | None:
        while len(self.buffer) < size:
            if not self._fill(max(65536, size - len(self.buffer))):
                return None
        data = bytes(self.buffer[:size])
        del self.buffer[:size]
        return data

    def _fill(self, size: int) -> bool:
        chunk = os.read(self.fd, size)
        self.buffer += chunk
        return bool(chunk)


class Capture:
    """Keeps the first (``head``) or last (``tail``) ``limit`` bytes of a stream and counts them all."""

    def __init__(self, limit: int, keep: str) -> None:
        self.limit, self.keep, self.data, self.total = limit, keep, bytearray(), 0

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        if self.keep == "head":
            room = self.limit - len(self.data)
            if room > 0:
                self.data += chunk[:room]
        else:
            self.data += chunk
            if len(self.data) > 2 * self.limit:
                del self.data[: len(self.data) - self.limit]

    def kept(self) -> bytes:
        return bytes(self.data if self.keep == "head" else self.data[-self.limit :])


def _read_into(fd: int, capture: Capture) -> bool:
    try:
        chunk = os.read(fd, 65536)
    except BlockingIOError:
        return False
    capture.add(chunk)
    return bool(chunk)


def drain(captures: dict[int, Capture], deadline: float) -> None:
    """Read what is left in the pipes. Every writer is dead, so all there is can be read now; the
    zygote keeps the write ends open, so the pipes never reach end-of-file."""
    for fd, capture in captures.items():
        while _read_into(fd, capture) and time.monotonic() < deadline:
            pass


def parse_exit(message: bytes) -> int | None:
    if message.startswith(b"E") and message.endswith(b"\n"):
        try:
            return int(message[1:-1])
        except ValueError:
            pass
    return None


def exit_code_of(status: int) -> int:
    """Like ``subprocess``: the exit status, or minus the signal that ended the process."""
    return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


def _signal(pid: int, sig: int) -> bool:
    try:
        os.kill(pid, sig)
        return True
    except OSError:  # gone, or not ours (the container's init and idle process run as another uid)
        return False


def _state(pid: int | str) -> str:
    stat = _read_file(f"/proc/{pid}/stat")
    return stat[stat.rfind(")") + 2 :][:1] if stat else ""


def wipe() -> bool:
    """Empty every place the sandbox uid can write; False if something could not be removed."""
    ok = True
    try:
        os.chmod(WORKDIR, 0o700)  # the code may have taken its own rights away
    except OSError:
        ok = False
    for place in SCRATCH:
        for name in _listdir(place):
            ok = _remove(os.path.join(place, name)) and ok
    for place in SCRATCH:
        ok = ok and not _listdir(place)
    return _remove_ipc() and ok


def _listdir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except OSError:
        return []


def _remove(path: str) -> bool:
    try:
        if os.path.isdir(path) and not os.path.islink(path):
            os.chmod(path, 0o700)
            for name in os.listdir(path):
                _remove(os.path.join(path, name))
            os.rmdir(path)
        else:
            os.unlink(path)
        return True
    except FileNotFoundError:
        return True
    except OSError:
        return False


def _remove_ipc() -> bool:
    """Remove System V shared memory, queues and semaphores; they outlive processes otherwise."""
    found = []
    for kind in ("shm", "msg", "sem"):
        rows = (_read_file("/proc/sysvipc/" + kind) or "").splitlines()[1:]
        found += [(kind, int(row.split()[1])) for row in rows if row.strip()]
    if not found:
        return True
    remove = {"shm": LIBC.shmctl, "msg": LIBC.msgctl, "sem": LIBC.semctl}
    ipc_rmid = 0
    return all(remove[kind](ident, ipc_rmid, None) == 0 for kind, ident in found)


def oom_kills() -> int | None:
    for path in ("/sys/fs/cgroup/memory.events", "/sys/fs/cgroup/memory/memory.oom_control"):
        for line in (_read_file(path) or "").splitlines():
            if line.startswith("oom_kill "):
                return int(line.split()[1])
    return None


def set_dumpable(on: bool) -> None:
    """Non-dumpable: processes of our own uid may no longer ptrace us or open /proc/<us>/{mem,fd,environ}."""
    if LIBC.prctl(PR_SET_DUMPABLE, int(on), 0, 0, 0) != 0:
        raise OSError("prctl(PR_SET_DUMPABLE) failed")


def write_new_file(path: str, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    try:
        write_all(fd, data)
    finally:
        os.close(fd)


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _write_file(path: str, data: bytes) -> None:
    try:
        fd = os.open(path, os.O_WRONLY)
    except OSError:
        return
    try:
        os.write(fd, data)
    except OSError:
        pass
    finally:
        os.close(fd)


def _read_file(path: str) -> str | None:
    try:
        with open(path) as handle:
            return handle.read()
    except OSError:
        return None


if __name__ == "__main__":
    run_script(*main())
