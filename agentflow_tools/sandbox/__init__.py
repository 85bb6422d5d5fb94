"""Running untrusted Python out of process: the ``Sandbox`` interface and its Docker backend.

The public, stable API (documented in docs/sandbox.md)::

    from agentflow_tools.sandbox import DockerSandbox

    async with DockerSandbox(pool_size=4, timeout_s=10) as box:
        result = await box.run("print(6 * 7)")

What is not exported here may change.
"""

from agentflow_tools.sandbox.base import ExecutionResult, Sandbox, SandboxError
from agentflow_tools.sandbox.docker_sandbox import DockerSandbox
from agentflow_tools.sandbox.image import DEFAULT_TAG
from agentflow_tools.sandbox.settings import DockerSettings
from agentflow_tools.sandbox.sync import SyncSandbox

__all__ = [
    "DEFAULT_TAG",
    "DockerSandbox",
    "DockerSettings",
    "ExecutionResult",
    "Sandbox",
    "SandboxError",
    "SyncSandbox",
]
