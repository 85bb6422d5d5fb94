"""An MCP tool result as the text an AgentFlow tool returns.

The planner and verifier read text, so every content block is turned into some: text as it is,
an image, a sound or a binary resource as a line saying what it was (its bytes stay out of the
prompt, but nothing disappears without a word), a resource link as its name and URI. Structured
content is added as JSON unless a text block already carries the same value (the spec asks servers
to send one alongside it).
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import TYPE_CHECKING, Any

from agentflow_tools.mcp.cutter import UNREAD

if TYPE_CHECKING:
    import mcp.types


def result_text(result: mcp.types.CallToolResult, *, max_chars: int) -> str:
    """The whole result as one text, cut to ``max_chars`` with a note of how much was left out."""
    parts = [describe_block(block) for block in result.content]
    structured = result.structured_content
    if structured is not None and not any(_same_json(p, structured) for p in parts):
        parts.append("structured content: " + json.dumps(structured, ensure_ascii=False, default=str))
    return clip("\n".join(parts) if parts else "(the tool returned no content)", max_chars)


def describe_block(block: Any) -> str:
    kind = getattr(block, "type", None)
    if kind == "text":
        return str(block.text)
    if kind in ("image", "audio"):
        return f"[{kind} {block.mime_type}, {_decoded_size(block.data)} bytes, not shown]"
    if kind == "resource_link":
        details = "".join(f", {v}" for v in (block.mime_type, block.description) if v)
        return f"[resource link {block.name}: {block.uri}{details}]"
    if kind == "resource":
        return _describe_resource(block.resource)
    return f"[{kind or type(block).__name__} content, not shown]"


def _describe_resource(resource: Any) -> str:
    mime = f" ({resource.mime_type})" if resource.mime_type else ""
    text = getattr(resource, "text", None)
    if text is not None:
        return f"[resource {resource.uri}{mime}]\n{text}"
    return f"[resource {resource.uri}{mime}, {_decoded_size(resource.blob)} bytes of binary data, not shown]"


def _decoded_size(data: str) -> int:
    try:
        return len(base64.b64decode(data, validate=False))
    except (binascii.Error, ValueError):
        return len(data)


def _same_json(text: str, value: Any) -> bool:
    """Whether ``text`` already says ``value``; SDKs wrap a plain return value as ``{"result": value}``."""
    candidates = [value]
    if isinstance(value, dict) and list(value) == ["result"]:
        candidates.append(value["result"])
    if text in candidates:
        return True
    try:
        return json.loads(text) in candidates
    except ValueError:
        return False


def clip(text: str, max_chars: int) -> str:
    """``text`` cut to ``max_chars``; the note counts what the relay already left unread (``cutter.py``)."""
    if len(text) <= max_chars:
        return text
    unread = sum(int(n) for n in UNREAD.findall(text, max_chars))
    more = f", and {unread} more bytes not read" if unread else ""
    return text[:max_chars] + f"\n[result cut: {len(text) - max_chars} of {len(text)} characters not shown{more}]"
