"""Typed records that cross every boundary: module to module, solver to disk, eval to trainer.

A ``Trajectory`` is the whole story of one solve. It round-trips through JSON with the
converter in ``agentflow_core.serde``; nothing else serialises these by hand.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping
from typing import Any, Literal

import attrs

from agentflow_core.engine import Message, TokenTrace, Usage

ModuleRole = Literal["planner", "executor", "verifier", "generator"]
MODULE_ROLES: tuple[ModuleRole, ...] = ("planner", "executor", "verifier", "generator")


@attrs.frozen
class ModuleCall:
    """One LLM call made by a module: what was sent, what came back, what it cost."""

    role: ModuleRole
    #: Which method of the module made it: ``analyze``, ``next_step``, ``command``, ...
    purpose: str
    engine: str
    messages: tuple[Message, ...]
    response: str
    usage: Usage = attrs.field(factory=Usage)
    latency_s: float = 0.0
    #: Set when the response did not parse and a fallback was used; says what was wrong.
    parse_error: str | None = None
    tokens: TokenTrace | None = None


@attrs.frozen
class Query:
    text: str
    #: Caller's id (a benchmark item id, say); free-form.
    id: str | None = None


@attrs.frozen
class QueryAnalysis:
    text: str
    call: ModuleCall | None = None


@attrs.frozen
class PlannerDecision:
    """The planner's choice for one turn: why, what to achieve, and with which tool."""

    context: str
    sub_goal: str
    tool: str
    call: ModuleCall | None = None


@attrs.frozen
class ToolCall:
    tool: str
    arguments: Mapping[str, Any]
    #: The executor's short account of the call, shown in memory.
    explanation: str = ""
    call: ModuleCall | None = None


class ToolErrorKind(enum.Enum):
    UNKNOWN_TOOL = "unknown_tool"
    BAD_ARGUMENTS = "bad_arguments"
    FAILED = "failed"
    TIMEOUT = "timeout"
    CRASHED = "crashed"


@attrs.frozen
class ToolSuccess:
    output: str
    elapsed_s: float = 0.0
    #: The result as one short value (a number, a name), when the tool gave one (``ToolOutput``):
    #: the default generator offers it as the answer to choose, so a small model need not copy it.
    value: str | None = None
    #: Short spans of the result that may each be the answer (``ToolOutput.candidates``), offered
    #: with ``value`` for the default generator to choose among.
    candidates: tuple[str, ...] = ()
    #: The LLM calls the tool made itself (python_coder's program), recorded as the module named by
    #: its spec's ``engine_role``: they are in the trajectory, and trained with that module.
    calls: tuple[ModuleCall, ...] = ()


@attrs.frozen
class ToolFailure:
    kind: ToolErrorKind
    error: str
    elapsed_s: float = 0.0
    #: As ``ToolSuccess.calls``: a failed program's calls are kept (and trained on) too.
    calls: tuple[ModuleCall, ...] = ()


ToolResult = ToolSuccess | ToolFailure


class Decision(enum.Enum):
    STOP = "STOP"
    CONTINUE = "CONTINUE"


@attrs.frozen
class Verdict:
    analysis: str
    decision: Decision
    call: ModuleCall | None = None


class Fit(enum.Enum):
    """What a tool says of one question before the planner chooses (``Tool.fit``)."""

    #: It holds something specific to this question: a passage that names its subject, numbers to compute with.
    CLAIMS = "claims"
    #: No opinion; the tool that says nothing says this.
    MAY = "may"
    #: It cannot help with this question (python_coder's expressions, for a question with no number).
    CANNOT = "cannot"


@attrs.frozen
class ToolFit:
    """A tool's word on one question, and the evidence for it, so a reader sees why the menu was ordered so."""

    fit: Fit = Fit.MAY
    #: One line: "a passage names Dov Kesante", "the question states no number".
    why: str = ""


@attrs.frozen
class Step:
    """One turn of the loop, complete once the verifier has spoken."""

    index: int
    decision: PlannerDecision
    tool_call: ToolCall
    result: ToolResult
    verdict: Verdict | None = None
    #: Each enabled tool's word on the question before this turn's planner chose, in the order the
    #: planner was offered them (those that said ``cannot`` were not offered). Empty where no tool
    #: said anything.
    tool_fits: Mapping[str, ToolFit] = attrs.field(factory=dict)

    def module_calls(self) -> Iterator[ModuleCall]:
        """The planner's, the executor's, the tool's own (``ToolSuccess.calls``), then the verifier's."""
        for record in (self.decision, self.tool_call):
            if record.call is not None:
                yield record.call
        yield from self.result.calls
        if self.verdict is not None and self.verdict.call is not None:
            yield self.verdict.call


@attrs.frozen
class UnfinishedStep:
    """A turn that an engine failure, a module error or the time budget ended before its tool ran.

    It keeps the module calls that did complete (the planner's decision, perhaps the executor's
    tool call), so a trajectory holds every call that happened; ``Trajectory.error`` says what ended it.
    """

    index: int
    decision: PlannerDecision
    tool_call: ToolCall | None = None

    def module_calls(self) -> Iterator[ModuleCall]:
        for record in (self.decision, self.tool_call):
            if record is not None and record.call is not None:
                yield record.call


@attrs.frozen
class Answer:
    text: str
    call: ModuleCall | None = None
    #: The generator's earlier call that offered the tools' short values as the answer, when none
    #: was taken and ``call`` then wrote one (``agentflow_core.modules.generator``).
    choice: ModuleCall | None = None

    def module_calls(self) -> Iterator[ModuleCall]:
        for call in (self.choice, self.call):
            if call is not None:
                yield call


class StopReason(enum.Enum):
    VERIFIER_STOP = "verifier_stop"
    MAX_STEPS = "max_steps"
    MAX_TIME = "max_time"
    MAX_TOKENS = "max_tokens"
    ENGINE_ERROR = "engine_error"
    #: A module implementation raised (a bug in it, or in its plugin); ``Trajectory.error`` says which and what.
    MODULE_ERROR = "module_error"


@attrs.frozen
class Trajectory:
    query: Query
    analysis: QueryAnalysis | None
    steps: tuple[Step, ...]
    final_answer: Answer | None
    direct_answer: Answer | None
    stop_reason: StopReason
    elapsed_s: float
    #: Which engine served each module (``provider:model``).
    engines: Mapping[str, str] = attrs.field(factory=dict)
    #: Set when the solve could not finish; one line naming what failed.
    error: str | None = None
    #: The turn that was under way when the loop ended on an error, with the calls it completed.
    unfinished: UnfinishedStep | None = None

    @property
    def answer(self) -> str | None:
        return self.final_answer.text if self.final_answer else None

    def module_calls(self) -> Iterator[ModuleCall]:
        """Every LLM call of the four modules, in the order they were made."""
        if self.analysis and self.analysis.call:
            yield self.analysis.call
        for step in self.steps:
            yield from step.module_calls()
        if self.unfinished:
            yield from self.unfinished.module_calls()
        for answer in (self.final_answer, self.direct_answer):
            if answer:
                yield from answer.module_calls()

    def usage_by_module(self) -> dict[str, Usage]:
        totals: dict[str, Usage] = {}
        for call in self.module_calls():
            totals[call.role] = totals.get(call.role, Usage()) + call.usage
        return totals

    @property
    def usage(self) -> Usage:
        return sum(self.usage_by_module().values(), Usage())
