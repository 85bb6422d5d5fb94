"""What a tool is: a spec the planner reads, and an object that runs calls.

The spec is plain data so that the planner's tool list can be built without importing a tool's
heavy dependencies; the factory that makes the runnable tool is only called for enabled tools.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol, runtime_checkable

import attrs

from agentflow_core.engine import Engine
from agentflow_core.records import ModuleCall, ModuleRole, ToolFit


@attrs.frozen
class ToolExample:
    """A worked call, for people and tests. The default modules never show it to a model: a small
    model copies an example's values as its own (issue 34)."""

    #: What the worked example shows.
    description: str
    #: Arguments that satisfy ``ToolSpec.input_schema``.
    arguments: Mapping[str, Any]


@attrs.frozen
class ToolSpec:
    """Metadata the Planner and Executor see. Write it for the model: what, when, what it returns."""

    name: str
    description: str
    #: JSON schema (type ``object``) of the arguments; the Executor asks for exactly this.
    input_schema: Mapping[str, Any]
    output: str
    limitations: tuple[str, ...] = ()
    best_practices: tuple[str, ...] = ()
    examples: tuple[ToolExample, ...] = ()
    #: Whether the tool calls an LLM itself; then it gets an engine (``[tools.NAME] engine``).
    uses_engine: bool = False
    #: The module whose work the tool's LLM calls are part of (python_coder's program is the executor's:
    #: it turns a sub-goal into what runs). Where the engine serves modules apart (a LoRA adapter per
    #: module), the tool gets that module's; its calls are recorded, and trained by Flow-GRPO, as that
    #: module's. ``None``: the bare engine, and calls nobody trains.
    engine_role: ModuleRole | None = None


@attrs.frozen
class ToolOutput:
    """A result that boils down to one short value, returned instead of plain text.

    ``text`` is the observation every module reads; ``value`` (a number, a name: what a reader
    would quote) is offered to the generator as a ready answer to choose rather than to copy, which
    a small model does badly: SmolLM2 answered ``17 * 23`` with the sandbox's ``391`` in front of it.
    """

    text: str
    value: str | None = None
    #: Short spans of the result that may each be the answer (a search tool's names, numbers and
    #: phrases of its best passage): offered to the generator to choose among, like ``value``.
    candidates: tuple[str, ...] = ()
    #: The LLM calls the tool made, recorded with its spec's ``engine_role`` (``ToolSuccess.calls``).
    calls: tuple[ModuleCall, ...] = ()


@attrs.frozen
class ToolContext:
    """Everything a tool factory may use. One per solver, so two solvers never share a tool."""

    #: The tool's own engine, present when ``spec.uses_engine``.
    engine: Engine | None
    #: The ``[tools.NAME]`` table of the config, minus ``engine``; the tool validates it.
    settings: Mapping[str, Any] = attrs.field(factory=dict)


@runtime_checkable
class Tool(Protocol):
    """A runnable tool.

    It may also have ``async def fit(self, question: str, found: tuple[str, ...]) -> ToolFit``, its
    word on a question, given the values earlier turns found (``FOUND_INPUT``), before each turn's
    planner chooses (:class:`~agentflow_core.records.ToolFit`): tools that claim the question are
    listed first, those that cannot help are left out. A small model takes the first tool listed far
    more often than its place deserves (issue 34: SmolLM2 chose python_coder for 7 of 10 questions
    about people and firms), so the order is evidence, not the configuration's accident. A tool
    without the method has no opinion.
    """

    spec: ToolSpec

    async def run(self, arguments: Mapping[str, Any]) -> str | ToolOutput:
        """Do the work and return the observation text (or ``ToolOutput``). Raise ``ToolError`` on failure."""
        ...

    async def aclose(self) -> None: ...


#: What a tool's optional ``fit`` method is: its word on one question (see :class:`Tool`).
FitMethod = Callable[[str, tuple[str, ...]], Awaitable[ToolFit]]


class ToolFactory(Protocol):
    def __call__(self, context: ToolContext) -> Tool: ...


#: Whether a tool can run here, given its ``[tools.NAME]`` settings: ``None`` when it can, else why not
#: (one line, for the user). A tool registered with one joins the default tools only where it can run.
ToolReadiness = Callable[[Mapping[str, Any]], "str | None"]


#: The optional input through which a request tool learns what its request is for: the default
#: executor fills a ``question`` property, where a tool's schema has one, with the question the solve
#: answers (``query_input("...", question=QUESTION_INPUT)``). A small planner's request drops facts the
#: question gives ("An inch is 2.54 centimetres." is gone from "How many centimetres are 208 inches?").
QUESTION_INPUT: Mapping[str, Any] = {"type": "string"}

#: The optional input through which a request tool gets what the solve's earlier turns found: the
#: default executor fills a ``found`` property, where a tool's schema has one, with the values and
#: candidates of the successful results so far (``ToolOutput.value`` / ``candidates``), each once, in
#: order. A small planner does not carry what it found into its next request: SmolLM2, having found
#: that Dov Kesante was born in 1928, asks python_coder "How old would Dov Kesante be in 2030?" again.
FOUND_INPUT: Mapping[str, Any] = {"type": "array", "items": {"type": "string"}}


def query_input(description: str, **optional: Mapping[str, Any]) -> dict[str, Any]:
    """The input schema most tools share: one required ``query`` text, plus optional properties.

    >>> query_input("what to look up", top_k={"type": "integer", "minimum": 1})["required"]
    ['query']
    """
    query = {"type": "string", "minLength": 1, "description": description}
    return {
        "type": "object",
        "properties": {"query": query, **optional},
        "required": ["query"],
        "additionalProperties": False,
    }
