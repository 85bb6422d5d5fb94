"""The in-container half of a run: start the script under a deadline, cap its output, leave nothing behind.

The host sends this file's source with every ``docker exec``
(``python3 -I -S -c <source> TIMEOUT_S MAX_BYTES WORKDIR CODE_BASE64...``), so any image with a
``python3`` (3.8 or newer) can be a sandbox image; nothing needs installing. It runs as the
sandbox uid, like the script, and prints exactly one line:
``AGENTFLOW-RESULT exit timed_out oom clean elapsed_s stdout_bytes stderr_bytes STDOUT_B64 STDERR_B64``
with the first MAX_BYTES of stdout and the last MAX_BYTES of stderr; the host decodes them.

Before and after the script it kills every other process of its uid (``kill(-1)``: daemons and
orphans included) and empties every place that uid can write (work dir, /tmp, /dev/shm,
/dev/mqueue, System V IPC). It makes itself non-dumpable, so the script (same uid) can neither
ptrace it nor open its /proc files; the script can still kill or stop it, which is why the host
keeps its own watchdog and throws away a container whose runner did not report.

Only modules that import in microseconds (no subprocess, json, base64 or re): every millisecond
here is paid by every run. Never imports agentflow.
"""

import binascii
import os
import select
import signal
import sys
import time

MARKER = "AGENTFLOW-RESULT"
SCRATCH = ("/tmp", "/dev/shm", "/dev/mqueue")
ENV_PATH = "/usr/local/bin:/usr/bin:/bin"
#: Output still readable after the script ended is drained for at most this long.
DRAIN_S = 0.5
PR_SET_DUMPABLE = 4


class Capture:
    """Keeps the first (``head``) or last (``tail``) ``limit`` bytes of a stream and counts them all."""

    def __init__(self, limit, keep):
        self.limit, self.keep, self.data, self.total = limit, keep, bytearray(), 0

    def add(self, chunk):
        self.total += len(chunk)
        if self.keep == "head":
            room = self.limit - len(self.data)
            if room > 0:
                self.data += chunk[:room]
        else:
            self.data += chunk
            if len(self.data) > 2 * self.limit:
                del self.data[: len(self.data) - self.limit]

    def kept(self):
        return bytes(self.data if self.keep == "head" else self.data[-self.limit :])


def main(argv):
    timeout_s, limit, workdir = float(argv[0]), int(argv[1]), argv[2]
    code = binascii.a2b_base64("".join(argv[3:]))
    hide_from_the_script()
    kill_others()
    dirty = not clean(workdir)  # whatever a killed run left behind
    oom_before = oom_kills()
    script = os.path.join(workdir, "main.py")
    with open(script, "wb") as handle:
        handle.write(code)
    started = time.monotonic()
    pid, (out_fd, err_fd) = spawn([sys.executable, "-X", "utf8", "-u", "-B", "-E", "-s", script], workdir)
    captures = {out_fd: Capture(limit, "head"), err_fd: Capture(limit, "tail")}
    status, timed_out = collect(pid, captures, started + timeout_s)
    elapsed = time.monotonic() - started
    kill_others()  # the deadline, or children the script left running
    drain(captures, time.monotonic() + DRAIN_S)
    exit_code = exit_code_of(status if status is not None else os.waitpid(pid, 0)[1])
    survivors = kill_others(wait_s=1.0)
    oom = is_oom(oom_before, exit_code, timed_out)
    dirty = dirty or survivors or not clean(workdir)
    out, err = captures.values()
    fields = [exit_code, int(timed_out), int(oom), int(not dirty), f"{elapsed:.4f}", out.total, err.total]
    fields += [_b64(out.kept()), _b64(err.kept())]
    sys.stdout.write(" ".join([MARKER, *map(str, fields)]) + "\n")
    sys.stdout.flush()


def hide_from_the_script():
    """Non-dumpable: processes of our own uid may no longer ptrace us or open /proc/<us>/fd/1."""
    try:
        import ctypes

        return ctypes.CDLL(None).prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == 0
    except Exception:  # no ctypes in this image: the host's bounds still hold
        return False


def spawn(argv, workdir):
    """Start the script in its own session with stdin from /dev/null; returns its pid and two pipes."""
    out_read, out_write = os.pipe()
    err_read, err_write = os.pipe()
    env = {"PATH": ENV_PATH, "HOME": workdir, "LANG": "C.UTF-8"}
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_DUP2, out_write, 1),
        (os.POSIX_SPAWN_DUP2, err_write, 2),
    ]
    pid = os.posix_spawn(argv[0], argv, env, file_actions=actions, setsid=True)
    os.close(out_write)
    os.close(err_write)
    return pid, (out_read, err_read)


def collect(pid, captures, deadline):
    """Read the pipes until the script exits or the deadline passes; returns (wait status or None, timed out)."""
    poller = select.poll()
    for fd in captures:
        poller.register(fd, select.POLLIN)
    exit_fd = _pidfd(pid)
    if exit_fd is not None:
        poller.register(exit_fd, select.POLLIN)
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None, True
            # Without a pidfd (old kernel or Python), poll for the exit every 10 ms.
            wait = remaining if exit_fd is not None else min(remaining, 0.01)
            for fd, _ in poller.poll(max(1, int(wait * 1000))):
                if fd in captures and not _read_into(fd, captures[fd]):
                    poller.unregister(fd)
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return status, False
    finally:
        if exit_fd is not None:
            os.close(exit_fd)


def _read_into(fd, capture):
    chunk = os.read(fd, 65536)
    capture.add(chunk)
    return bool(chunk)


def _pidfd(pid):
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def drain(captures, deadline):
    """Read what is left in the pipes; every writer is dead by now, so EOF comes quickly."""
    for fd, capture in captures.items():
        os.set_blocking(fd, False)
        while time.monotonic() < deadline:
            try:
                if not _read_into(fd, capture):
                    break
            except BlockingIOError:
                time.sleep(0.005)
        os.close(fd)


def exit_code_of(status):
    """Like ``subprocess``: the exit status, or minus the signal that ended the process."""
    return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


def kill_others(wait_s=0.0):
    """SIGKILL every process of our uid but this one; True if some are still alive after ``wait_s``."""
    deadline = time.monotonic() + wait_s
    while True:
        _kill_all()
        if not _others():
            return False
        if time.monotonic() >= deadline:
            return True
        time.sleep(0.01)


def _kill_all():
    try:
        os.kill(-1, signal.SIGKILL)
        return True
    except OSError:  # ESRCH: rare, as the idle process (another uid) counts as a target
        return False


def _others():
    me, uid = os.getpid(), str(os.getuid())
    alive = []
    for name in os.listdir("/proc"):
        status = _read(f"/proc/{name}/status") if name.isdigit() and int(name) != me else None
        if status:
            fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
            if fields.get("Uid", "").split()[:1] == [uid] and "Z" not in fields.get("State", ""):
                alive.append(int(name))
    return alive


def clean(workdir):
    """Empty every place the sandbox uid can write; False if something could not be removed."""
    ok = True
    for place in (workdir, *SCRATCH):
        for name in _listdir(place):
            ok = _remove(os.path.join(place, name)) and ok
    return _remove_ipc() and ok


def _listdir(path):
    try:
        return os.listdir(path)
    except OSError:
        return []


def _remove(path):
    try:
        if os.path.isdir(path) and not os.path.islink(path):
            os.chmod(path, 0o700)  # the script may have made it unreadable
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


def _remove_ipc():
    """Remove System V shared memory, queues and semaphores; they outlive processes otherwise."""
    found = []
    for kind in ("shm", "msg", "sem"):
        rows = (_read("/proc/sysvipc/" + kind) or "").splitlines()[1:]
        found += [(kind, int(row.split()[1])) for row in rows if row.strip()]
    if not found:
        return True
    import ctypes  # only when there is something to remove

    libc = ctypes.CDLL(None, use_errno=True)
    remove = {"shm": libc.shmctl, "msg": libc.msgctl, "sem": libc.semctl}
    ipc_rmid = 0
    return all(remove[kind](ident, ipc_rmid, None) == 0 for kind, ident in found)


def is_oom(before, exit_code, timed_out):
    """Did the kernel's OOM killer act during the run? Counted by the container's memory cgroup."""
    after = oom_kills()
    if before is None or after is None:  # no cgroup counter visible: a SIGKILL we did not send
        return exit_code == -signal.SIGKILL and not timed_out
    return after > before


def oom_kills():
    for path in ("/sys/fs/cgroup/memory.events", "/sys/fs/cgroup/memory/memory.oom_control"):
        for line in (_read(path) or "").splitlines():
            if line.startswith("oom_kill "):
                return int(line.split()[1])
    return None


def _read(path):
    try:
        with open(path) as handle:
            return handle.read()
    except OSError:
        return None


def _b64(data):
    return binascii.b2a_base64(data, newline=False).decode("ascii")


if __name__ == "__main__":
    main(sys.argv[1:])
