"""The one interface between a tool and whatever runs untrusted code: start, run, close.

Docker is one implementation (``docker_sandbox``); a Firecracker or remote backend would be
another. Whatever the backend, the code never runs in our process, and every way a run can end
(normal exit, exception, timeout, out of memory, too much output) is data in ``ExecutionResult``,
not an exception: only a sandbox that cannot run code at all raises ``SandboxError``.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import attrs

from agentflow_core import ToolError


class SandboxError(ToolError):
    """The sandbox cannot run code (no daemon, no image, a broken container); one line with the fix."""


@attrs.frozen
class ExecutionResult:
    """How one run ended. Text is decoded with replacement, so binary output never breaks a reader."""

    #: What the code printed, cut after the sandbox's output limit.
    stdout: str
    #: The end of what the code wrote to stderr (a traceback's last lines are what matter).
    stderr: str
    #: The process's exit status; negative when a signal ended it (-9: killed).
    exit_code: int
    #: The wall-clock limit ran out and the code was killed.
    timed_out: bool = False
    #: The memory limit was hit and the kernel killed the code.
    oom: bool = False
    #: Some output was dropped: stdout beyond the limit, or the start of a long stderr.
    truncated: bool = False
    elapsed_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out and not self.oom

    def describe(self) -> str:
        """The ending in a few words, e.g. ``exit code 1`` or ``timed out, output truncated``."""
        parts = ["timed out" if self.timed_out else "out of memory" if self.oom else _exit(self.exit_code)]
        if self.truncated:
            parts.append("output truncated")
        return ", ".join(parts)


def _exit(code: int) -> str:
    return f"killed by signal {-code}" if code < 0 else f"exit code {code}"


@runtime_checkable
class Sandbox(Protocol):
    """Runs Python source in isolation. Cheap to construct; ``start`` does the slow work."""

    async def start(self) -> None:
        """Check the backend and get ready to run (start containers); raises ``SandboxError``."""
        ...

    async def run(self, code: str, timeout_s: float | None = None) -> ExecutionResult:
        """Run ``code`` as a fresh ``__main__`` with nothing of earlier runs left behind.

        ``timeout_s`` (default: the sandbox's own) bounds the run's wall-clock time.
        """
        ...

    async def aclose(self) -> None:
        """Release everything started; safe to call twice."""
        ...
