"""Tool sources: plugins whose tools are only known once they are asked, when a solver starts.

An MCP server says which tools it has when it answers ``tools/list``, so it cannot hand over
``ToolSpec``s at discovery as ``register_tools`` does. A plugin registers a *tool source* instead
(``register_tool_sources``), under the name of the config section it reads (``[mcp]``). A solver
makes one source per such section, opens them when it starts, and each tool a source announces
goes through a ``ToolRegistrar`` like every registered tool (so a clash of names is the same
one-line error) before the solver makes it with its factory like any other tool. The solver
closes its sources when it closes (``tool_sources.py``).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Any, Protocol

import attrs

from agentflow_core import provenance
from agentflow_core.tool import ToolFactory, ToolSpec

if TYPE_CHECKING:
    from agentflow_core.registry import ToolRegistrar


@attrs.frozen
class ToolSourceContext:
    #: The source's own section of the config (``[mcp]`` and its tables); the source validates it.
    settings: Mapping[str, Any]
    #: Where that section was read, for error messages: ``agentflow.toml: mcp``.
    where: str


class ToolAnnouncer:
    """The ``register`` a source's ``open`` gets: ``register(spec, factory, origin="mcp server 'time'")``.

    ``origin`` says where inside the source a tool came from; ``agentflow tools`` shows it.
    """

    def __init__(self, registrar: ToolRegistrar, source: str) -> None:
        self._registrar, self._source = registrar, source

    def __call__(self, spec: ToolSpec, factory: ToolFactory, *, origin: str = "") -> None:
        label = f"{origin} via {self._source}" if origin else self._source
        with provenance.attributed(provenance.Attribution(label)):
            self._registrar(spec, factory)


class ToolSource(Protocol):
    def may_provide(self, name: str) -> bool:
        """Whether a tool of this name could come from this source, judged from its settings alone."""
        ...

    async def open(self, register: ToolAnnouncer, *, wanted: Collection[str] | None) -> None:
        """Learn the tools and ``register`` them: those ``wanted`` (at least), or all when ``None``.

        Raise ``ToolSourceError`` naming what failed when the tools cannot be learnt. Opening an
        open source again registers the same tools without starting anything anew.
        """
        ...

    async def aclose(self) -> None: ...


class ToolSourceFactory(Protocol):
    def __call__(self, context: ToolSourceContext) -> ToolSource: ...
