"""Helpers for testing AgentFlow code and plugins without a real LLM.

Public and stable: third-party plugins may use these in their own test suites.
"""

from agentflow_core.testing.copied_text import (
    CopiedText,
    assert_no_copied_text,
    copied_prompt_text,
    schema_texts,
    tool_texts,
)
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
    "CopiedText",
    "RecordedRequest",
    "Reply",
    "Responder",
    "ScriptedOpenAIServer",
    "assert_no_copied_text",
    "copied_prompt_text",
    "registry_with",
    "schema_texts",
    "scripted_json",
    "tool_texts",
    "wait_until",
]
