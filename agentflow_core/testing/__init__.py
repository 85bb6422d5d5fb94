"""Helpers for testing AgentFlow code and plugins without a real LLM.

Public and stable: third-party plugins may use these in their own test suites.
"""

from agentflow_core.testing.openai_server import (
    RecordedRequest,
    Reply,
    Responder,
    ScriptedOpenAIServer,
    scripted_json,
)
from agentflow_core.testing.registry import registry_with
from agentflow_core.testing.waiting import wait_until

__all__ = [
    "RecordedRequest",
    "Reply",
    "Responder",
    "ScriptedOpenAIServer",
    "registry_with",
    "scripted_json",
    "wait_until",
]
