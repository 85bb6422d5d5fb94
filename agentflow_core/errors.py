"""Every exception AgentFlow raises on purpose.

    AgentFlowError
    ├── ConfigError        bad agentflow.toml or CLI flag; names the key and the file
    ├── PluginError        a plugin broke the rules (duplicate name, bad hook); names the plugin
    ├── UsageError         bad input from the person at the CLI (empty query, unknown tool)
    ├── EngineError        an LLM call failed for good; names the engine and model
    │   └── EngineUnavailable   the engine's optional dependency or model file is missing
    ├── ModuleError        a module implementation raised; the solve stops with what it has
    ├── ToolError          a tool could not do its job; becomes an observation in memory
    ├── ToolSourceError    a tool source (an MCP server) could not be opened; names the source
    └── StorageError       a file could not be written or read (a full disk, a read-only filesystem); names it

The CLI turns any of these into one line on stderr and a non-zero exit. Nothing here logs
or prints by itself: raising is the only side effect.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator


class AgentFlowError(Exception):
    """Base class: a failure we anticipated and can describe in one line."""


class ConfigError(AgentFlowError):
    """The configuration is wrong; the message names the key and the file."""


class PluginError(AgentFlowError):
    """A plugin broke a rule of the plugin contract."""


class UsageError(AgentFlowError):
    """The user asked for something that cannot be done as asked."""


class EngineError(AgentFlowError):
    """An LLM engine failed after retries, or failed in a way retrying cannot fix."""


class EngineUnavailable(EngineError):
    """The engine cannot start here: a missing extra, model file or server."""


class ModuleError(AgentFlowError):
    """A planner, executor, verifier or generator raised something other than an ``EngineError``.

    The solver makes it out of whatever the module raised, names the module and its plugin, and
    ends the loop with ``StopReason.MODULE_ERROR``; the trajectory so far is still returned.
    """


class ToolError(AgentFlowError):
    """A tool failed; the solver records it as a visible tool error and goes on.

    ``calls`` are the LLM calls the tool made before it failed (``agentflow_core.records.ModuleCall``):
    the trajectory keeps them, as it keeps a successful run's.
    """

    def __init__(self, *args: object, calls: tuple[object, ...] = ()) -> None:
        super().__init__(*args)
        self.calls = calls


class ToolSourceError(AgentFlowError):
    """A tool source could not say which tools it has (an MCP server that did not start, say)."""


class StorageError(AgentFlowError):
    """The machine refused a file operation (no space left, read-only, no permission); not a bug of ours."""


#: ``OSError`` numbers that mean the machine, not AgentFlow, failed: the CLI reports them as such.
STORAGE_ERRNOS = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EIO, errno.EACCES, errno.EPERM, errno.ENOENT}
)


def storage_error(exc: OSError, path: str | os.PathLike[str] | None = None) -> StorageError:
    """``exc`` as one line naming the file: ``path`` when the caller knows it (a write to an open file
    does not say which), else the file the error names."""
    where = os.fspath(path) if path is not None else exc.filename
    return StorageError(f"{where or 'a file'}: {exc.strerror or one_line(exc)}")


@contextlib.contextmanager
def naming_storage_errors(path: str | os.PathLike[str]) -> Iterator[None]:
    """Inside: an ``OSError`` of the machine (``STORAGE_ERRNOS``) becomes a ``StorageError`` naming ``path``."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in STORAGE_ERRNOS:
            raise
        raise storage_error(exc, path) from None


def one_line(exc: BaseException | str) -> str:
    """An error as the one line a person reads: whitespace collapsed, the type when there is no message."""
    text = " ".join(str(exc).split())
    return text or (type(exc).__name__ if isinstance(exc, BaseException) else "")
