"""Running untrusted Python out of process: the ``Sandbox`` interface and its Docker backend."""

from agentflow_tools.sandbox.base import ExecutionResult, Sandbox, SandboxError

__all__ = ["ExecutionResult", "Sandbox", "SandboxError"]
