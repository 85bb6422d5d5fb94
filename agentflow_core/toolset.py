"""The enabled tools of one solver, and the one place where tool calls are run.

Whatever goes wrong in a call (unknown tool, arguments that break the schema, a ``ToolError``,
a timeout, an unexpected exception in plugin code) comes back as a ``ToolFailure`` the planner
and verifier can read; the loop goes on.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Collection, Mapping, Sequence

import attrs

from agentflow_core.errors import EngineError, ToolError
from agentflow_core.records import (
    Fit,
    ModuleCall,
    ToolCall,
    ToolErrorKind,
    ToolFailure,
    ToolFit,
    ToolResult,
    ToolSuccess,
)
from agentflow_core.tool import FitMethod, Tool, ToolOutput, ToolSpec


class Toolset:
    def __init__(self, tools: Sequence[Tool], *, timeout_s: float) -> None:
        self._tools = {tool.spec.name: tool for tool in tools}
        self._timeout_s = timeout_s

    @property
    def specs(self) -> tuple[ToolSpec, ...]:
        return tuple(tool.spec for tool in self._tools.values())

    @property
    def tools(self) -> tuple[Tool, ...]:
        return tuple(self._tools.values())

    async def fits(
        self, question: str, found: Sequence[str] = (), answered: Collection[str] = ()
    ) -> dict[str, ToolFit]:
        """Each tool's word on ``question``, given what earlier turns ``found``, asked of all at once.

        The order is the planner's: tools that claim the question, then those with no opinion, then
        those that cannot help; among the claims, those that have not ``answered`` yet (returned a
        result this solve) first, as a fresh claim beats a repeated one; otherwise the configured order. A tool
        without a ``fit`` method may help; one whose ``fit`` fails or is slow may help too, with the
        failure as its evidence: the solve goes on and the trajectory shows why.
        """
        said = await asyncio.gather(*(self._fit(tool, question, found) for tool in self._tools.values()))
        fits = dict(zip(self._tools, said, strict=True))
        rank = {Fit.CLAIMS: 0, Fit.MAY: 1, Fit.CANNOT: 2}
        # A fresh claim before a repeated one; tools without a claim keep the configured order, so a
        # turn's prompt opens as the last one did (a batch forwards the shared part once).
        return dict(
            sorted(
                fits.items(), key=lambda item: (rank[item[1].fit], item[1].fit is Fit.CLAIMS and item[0] in answered)
            )
        )

    async def _fit(self, tool: Tool, question: str, found: Sequence[str]) -> ToolFit:
        method: FitMethod | None = getattr(tool, "fit", None)
        if method is None:
            return ToolFit()
        try:
            async with asyncio.timeout(self._timeout_s):
                fit = await method(question, tuple(found))
        except TimeoutError:
            return ToolFit(why=f"its fit did not answer within {self._timeout_s:g} s")
        except Exception as exc:  # plugin code: an opinion that failed is no opinion
            return ToolFit(why=f"its fit raised {type(exc).__name__}: {exc}")
        if not isinstance(fit, ToolFit):
            return ToolFit(why=f"its fit returned {type(fit).__name__}, not ToolFit")
        return fit

    def offered(self, fits: Mapping[str, ToolFit]) -> tuple[ToolSpec, ...]:
        """The tools the planner is offered, in the order of ``fits``: all but those that cannot help,
        unless none is left, when all are (a planner must have a tool to name)."""
        names = [name for name, fit in fits.items() if fit.fit is not Fit.CANNOT] or list(fits)
        names += [name for name in self._tools if name not in fits]
        return tuple(self._tools[name].spec for name in names)

    async def run(self, call: ToolCall) -> ToolResult:
        started = time.perf_counter()
        result = await self._run(call)
        elapsed = time.perf_counter() - started
        return attrs.evolve(result, elapsed_s=elapsed)

    async def _run(self, call: ToolCall) -> ToolResult:
        tool = self._tools.get(call.tool)
        if tool is None:
            names = ", ".join(self._tools) or "none"
            return ToolFailure(ToolErrorKind.UNKNOWN_TOOL, f"unknown tool {call.tool!r}; enabled tools: {names}")
        problem = schema_problem(call.arguments, tool.spec.input_schema)
        if problem:
            return ToolFailure(ToolErrorKind.BAD_ARGUMENTS, f"arguments for {call.tool} are invalid: {problem}")
        try:
            async with asyncio.timeout(self._timeout_s):
                output = await tool.run(call.arguments)
        except TimeoutError:
            return ToolFailure(ToolErrorKind.TIMEOUT, f"{call.tool} did not finish within {self._timeout_s:g} s")
        except ToolError as exc:
            calls = tuple(c for c in exc.calls if isinstance(c, ModuleCall))
            return ToolFailure(ToolErrorKind.FAILED, str(exc) or type(exc).__name__, calls=calls)
        except EngineError as exc:
            return ToolFailure(ToolErrorKind.FAILED, str(exc) or type(exc).__name__)
        except Exception as exc:  # plugin code: report it in memory rather than kill the solve
            return ToolFailure(ToolErrorKind.CRASHED, f"{call.tool} raised {type(exc).__name__}: {exc}")
        if isinstance(output, ToolOutput) and isinstance(output.text, str):
            value = " ".join(output.value.split()) if isinstance(output.value, str) else None
            calls = tuple(c for c in output.calls if isinstance(c, ModuleCall))
            candidates = _candidates(output.candidates)
            return ToolSuccess(output.text, value=value or None, candidates=candidates, calls=calls)
        if not isinstance(output, str):
            return ToolFailure(ToolErrorKind.CRASHED, f"{call.tool} returned {type(output).__name__}, not text")
        return ToolSuccess(output)

    async def aclose(self) -> None:
        await asyncio.gather(*(tool.aclose() for tool in self._tools.values()), return_exceptions=True)


def _candidates(given: object) -> tuple[str, ...]:
    """A plugin's candidates as one-line texts, each once; anything else in the tuple is dropped."""
    if not isinstance(given, tuple | list):
        return ()
    return tuple(dict.fromkeys(" ".join(c.split()) for c in given if isinstance(c, str) and c.strip()))


def schema_problem(arguments: Mapping[str, object], schema: Mapping[str, object]) -> str | None:
    """First violation of ``schema`` by ``arguments``, in one line; ``None`` if valid."""
    import jsonschema  # imported here: only needed once a tool is actually called

    validator = jsonschema.Draft202012Validator(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(dict(arguments)))
    if error is None:
        return None
    where = ".".join(str(p) for p in error.absolute_path)
    return f"{where}: {error.message}" if where else error.message
