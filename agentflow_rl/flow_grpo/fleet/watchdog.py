"""Runs one server and ends its whole process group when the trainer goes away.

The launcher starts ``python -m agentflow_rl.flow_grpo.fleet.watchdog FD -- COMMAND...`` as the
leader of a new process group, holding the write end of a pipe whose read end is ``FD`` here. The
watchdog starts ``COMMAND`` in its own group (vLLM's API server and the engine processes it forks
all land there), then waits for whichever comes first:

* the pipe reaches end-of-file: the trainer closed it (a normal stop) or died. The kernel closes a
  dead process's descriptors however it died (an exception, Ctrl-C, SIGTERM, SIGKILL, the OOM
  killer), so no signal handler or ``atexit`` in the trainer is needed for its servers to stop.
  The group gets SIGTERM, and what is left of it SIGKILL after a grace period;
* the server exits by itself: the watchdog says so on the log and takes down what the server
  left in the group.

Either way the watchdog's last act is SIGKILL to its own group, itself included, so nothing of
the group outlives it; one ``killpg`` of the watchdog's pid ends everything too.

Why not ``PR_SET_PDEATHSIG``: it fires when the *thread* that started the child exits, not the
process, it is Linux-only, and it reaches only the server, not the engine processes under it.
What this does not cover: the watchdog alone killed by pid, and a process the trainer forked
without exec (which inherits the pipe's write end and keeps it open while it lives).
Only the standard library is used, so any interpreter can run this.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import sys

#: Seconds between SIGTERM and SIGKILL for the server's group.
GRACE_S = 20.0


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        print("usage: python -m agentflow_rl.flow_grpo.fleet.watchdog FD -- COMMAND...", file=sys.stderr)
        return 2
    pipe = int(argv[0])
    server = subprocess.Popen(argv[2:])
    for signum in (signal.SIGTERM, signal.SIGINT):  # asked directly: stop the same way
        signal.signal(signum, lambda *_: _end_group(server))
    with selectors.DefaultSelector() as selector:
        selector.register(pipe, selectors.EVENT_READ)
        while server.poll() is None:
            if selector.select(timeout=0.5) and not os.read(pipe, 1):
                _end_group(server)
    print(f"watchdog: the server exited with {server.returncode}", file=sys.stderr, flush=True)
    _kill_group()
    return 1  # not reached: SIGKILL above ended this process too


def _end_group(server: subprocess.Popen[bytes], grace_s: float = GRACE_S) -> None:
    """SIGTERM to the group (not to this process), then SIGKILL to all of it after ``grace_s``."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(0, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        server.wait(grace_s)
    print(f"watchdog: stopped the server ({server.returncode})", file=sys.stderr, flush=True)
    _kill_group()


def _kill_group() -> None:
    os.killpg(0, signal.SIGKILL)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
