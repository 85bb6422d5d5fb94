"""python_coder: the tool's LLM writes a short Python program for a sub-goal; a Docker sandbox runs it.

The code never runs in our process. It runs in a throwaway-state container with no network,
a read-only root, no capabilities, an empty environment and memory / CPU / process / time /
output limits (see ``agentflow_tools.sandbox.settings`` for exactly what is and is not
isolated). Only the standard library is there unless ``image`` names a richer one.

The argument is the sub-goal in words, not code: the tool's engine gets instructions a planner
prompt has no room for (print the result, stdlib only, finish in time), and the executor passes
the sub-goal as it stands. A request that is nothing but arithmetic ("17 * 23", "What is 2^100?")
runs as ``print(<expression>)`` without asking the engine (``agentflow_tools.arithmetic``): exact
arithmetic then never depends on how well a model writes code. A run that fails (exception,
non-zero exit, timeout, out of memory) goes back to the engine with its traceback for a corrected
program (``repair_attempts``, one by default); if that fails too, it is raised as a ``ToolError``
whose text shows the code, its output and the traceback's end, so the planner sees a failed step
and can rephrase, and the trajectory records the failure.

What the engine writes depends on ``writes``. A capable model writes a ``program``. SmolLM2-135M,
the embedded default, wrote working programs for almost no word problem (issue 34), so with it
(``auto``) the engine writes one arithmetic ``expression`` under a grammar: every number the
question states, the units it mentions (``161 * week / hour``) and ``+ - * /``
(``agentflow_tools.arithmetic``), and the sandbox prints its exact value; a value that is still a
quantity (``161 * week``) is given in the unit the question asks for (``agentflow_tools.units``).
Arithmetic as written and expressions alike run with fractions, not floats: ``0.1 + 0.2`` is ``0.3``. Either way the
engine's calls are recorded in the trajectory as the executor's (``ToolSpec.engine_role``): they
use the executor's adapter where the engine has one, and Flow-GRPO trains them with the executor.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import attrs

from agentflow_core import (
    Engine,
    Fit,
    JsonSchema,
    Message,
    ModuleCall,
    ToolContext,
    ToolError,
    ToolFit,
    ToolOutput,
    ToolSpec,
    structure_settings,
)
from agentflow_core.config import EMBEDDED_ENGINE
from agentflow_core.structured import ask, ask_structured, object_schema
from agentflow_core.tool import FOUND_INPUT, QUESTION_INPUT, query_input
from agentflow_tools.arithmetic import (
    arithmetic_expression,
    exact_program,
    expression_pattern,
    numbers_in,
    stated_numbers,
)
from agentflow_tools.sandbox import DockerSandbox, DockerSettings, ExecutionResult, SandboxError
from agentflow_tools.sandbox.container import connect
from agentflow_tools.sandbox.image import resolve_image
from agentflow_tools.units import UnitError, in_asked_unit, plural, units_in

SPEC = ToolSpec(
    name="python_coder",
    description=(
        "Writes and runs a short Python program for a precise computational sub-goal (exact arithmetic, "
        "counting, dates, string processing, small simulations) and returns what the program printed."
    ),
    input_schema=query_input("The computation.", question=QUESTION_INPUT, found=FOUND_INPUT),
    output="the code that ran and its printed output; on failure, the exit code and the end of the traceback",
    limitations=(
        "No network and no files from earlier calls: each call starts from nothing.",
        "Standard library only (no numpy, pandas or sympy) unless the configured image has more.",
        "Each run has a time limit (10 seconds by default) and a small memory limit.",
        "It cannot look facts up; every input must be in the query.",
    ),
    best_practices=(
        "Use it whenever an answer needs exact calculation instead of estimating it.",
        "Give it every number the computation needs, and ask for one result per call.",
    ),
    uses_engine=True,
    engine_role="executor",
)

SYSTEM = (
    "You write one short, complete Python 3 program that solves the task and PRINTS the result with print(). "
    "Use only the standard library. There is no network, no input() and no files from earlier runs. "
    "It must finish within {timeout:g} seconds. Reply with a single ```python code block and nothing else."
)

#: Why an expression cannot answer a question.
NO_NUMBER = "the question states no number"

#: For ``writes = "expression"``. No example and no description: a small model copies them (issue 34).
SYSTEM_EXPRESSION = "You turn a request for a calculation into one arithmetic expression."
EXPRESSION_PROMPT = """{question}Request: {request}
{units}
Write the arithmetic expression whose value answers the request, with the numbers it needs. \
Reply with JSON with the key "expression"."""
#: Shown when the texts mention units: the expression may name them (``agentflow_tools.units``).
EXPRESSION_UNITS = "Units you may write, each standing for its size: {names}.\n"
#: An expression under the grammar is a few numbers and operators.
EXPRESSION_TOKENS = 48

#: Longest stretch of the code repeated in an observation; the trajectory keeps the arguments anyway.
CODE_IN_OBSERVATION = 800
#: Lines of stderr shown on failure: the end of a traceback says what went wrong.
TRACEBACK_LINES = 12

_FENCE = re.compile(r"```[ \t]*([\w+-]*)[^\n]*\n(.*?)(?:```|\Z)", re.S)


@attrs.frozen
class Settings(DockerSettings):
    """``[tools.python_coder]``: the sandbox's settings (its ``timeout_s`` bounds each run), plus the engine's."""

    #: Longest code the engine may write, in tokens.
    max_tokens: int = attrs.field(default=1024, validator=attrs.validators.ge(16))
    #: Times the engine sees its failed program and the error, and writes a fixed one; 0 turns it off.
    repair_attempts: int = attrs.field(default=1, validator=[attrs.validators.ge(0), attrs.validators.le(5)])
    #: What the engine writes: a ``program``, or one arithmetic ``expression`` under a grammar (for a
    #: model too small to write programs); ``auto``: an expression with the embedded default engine.
    writes: Literal["auto", "program", "expression"] = "auto"


class PythonCoder:
    spec = SPEC

    def __init__(self, context: ToolContext) -> None:
        if context.engine is None:
            raise ToolError("python_coder needs an engine")
        self._engine: Engine = context.engine
        self._settings = structure_settings(Settings, context.settings, where="settings")
        self._sandbox = DockerSandbox(settings=self._settings)
        self._role = SPEC.engine_role or "executor"
        self._writes = writes_for(self._settings.writes, self._engine.name)
        self._starting = asyncio.Lock()

    async def run(self, arguments: Mapping[str, Any]) -> ToolOutput:
        await self._start()  # first: a missing image or daemon fails before any tokens are spent
        request = str(arguments["query"])
        # The question the request is part of (the executor fills it): its numbers and facts, which
        # a small planner's request may have dropped.
        question = str(arguments.get("question") or "")
        question = "" if question == request else question
        # Arithmetic as written, the request's or else the question's: SmolLM2's request for "What is
        # 180557 divided by 221?" carried a number of its own (180557.2365).
        expression = arithmetic_expression(request) or arithmetic_expression(question)
        if expression is not None:
            return await self._run_expression(expression)
        # What earlier turns found (the executor fills it): the year a search found, for "how old in 2030".
        found = [" ".join(str(value).split()) for value in arguments.get("found") or ()]
        if self._writes == "expression":
            return await self._write_expression(request, question, found)
        context = (f"Question: {question}\n" if question else "") + found_line(found)
        return await self._write_program(request, context)

    async def _write_expression(self, request: str, question: str, found: list[str]) -> ToolOutput:
        """One expression under the grammar, its exact value printed by the sandbox; no repair: the
        grammar leaves little to fix."""
        given = question or request  # the question, where there is one: a small planner's request invents numbers
        if not stated_numbers(given) and not units_in(given):
            # SmolLM2 sent here for a fact wrote a number of its own ("56877" for what a firm makes).
            raise ToolError(f"nothing to compute: {NO_NUMBER} ({given!r})")
        known = [number for value in found for number in numbers_in(value)]
        try:
            pattern = expression_pattern(question, request, found=known)
        except ValueError as exc:
            raise ToolError(f"nothing to compute: {exc}") from None
        schema = object_schema({"expression": {"type": "string", "pattern": pattern}})
        units = units_in(f"{question} {request}")
        prompt = expression_prompt(question, request, known)
        parsed, call = await ask_structured(
            self._engine,
            role=self._role,
            purpose="expression",
            messages=[Message("system", SYSTEM_EXPRESSION), Message("user", prompt)],
            schema=JsonSchema(name="expression", schema=schema),
            max_tokens=EXPRESSION_TOKENS,
        )
        expression = arithmetic_expression(str(parsed.values.get("expression", "")), names=units)
        if expression is None:
            raise ToolError(
                f"the model wrote no arithmetic expression for this request; it said: {_clip(call.response, 200)}",
                calls=(call,),
            )
        return await self._run_expression(expression, calls=(call,), text=f"{question} {request}")

    async def _write_program(self, request: str, context: str) -> ToolOutput:
        conversation = [
            Message("system", SYSTEM.format(timeout=self._settings.timeout_s)),
            Message("user", f"{context}Task: {request}"),
        ]
        failures: list[str] = []
        calls: list[ModuleCall] = []
        while True:
            completion, call = await ask(
                self._engine,
                role=self._role,
                purpose="program",
                messages=conversation,
                max_tokens=self._settings.max_tokens,
            )
            calls.append(call)
            reply = completion.text
            code = extract_code(reply)
            if code is None:
                problem = f"the model wrote no Python code for this query; it said: {_clip(reply, 200)}"
                fix = "Reply with the complete program in a single ```python code block."
            else:
                result = await self._sandbox.run(code, timeout_s=self._settings.timeout_s)
                if result.ok and result.stdout.strip():
                    return attrs.evolve(success_output(code, result, repaired=failures), calls=tuple(calls))
                problem = failure_text(code, result, self._settings.timeout_s)
                fix = "Fix the program. Reply with the complete corrected program in a single ```python code block."
            failures.append(problem)
            if len(failures) > self._settings.repair_attempts:
                raise ToolError(_gave_up(failures), calls=tuple(calls))
            # The engine sees what it wrote and what went wrong, as a chat: the usual shape of a repair.
            conversation += [Message("assistant", reply), Message("user", f"{problem}\n\n{fix}")]

    async def _run_expression(self, expression: str, calls: tuple[ModuleCall, ...] = (), text: str = "") -> ToolOutput:
        """The exact value of an expression; its failure (``1 / 0``) is the request's, no engine would fix it.

        A value that is a quantity (``161 * week``) is given in the unit ``text`` asks for
        (``agentflow_tools.units.in_asked_unit``). The observation shows the expression, not the
        program that computed it: the program is the same scaffolding every time, and the expression
        is what a reader (or the planner) checks.
        """
        try:
            expression, unit = in_asked_unit(expression, text)
        except UnitError as exc:
            raise ToolError(str(exc), calls=calls) from None
        result = await self._sandbox.run(exact_program(expression), timeout_s=self._settings.timeout_s)
        if not result.ok:
            error = (result.stderr.strip().splitlines() or [""])[-1]
            why = f"{expression} could not be computed ({result.describe()}): {error}"
            raise ToolError(why.rstrip(": "), calls=calls)
        lines = ["Output:", result.stdout.rstrip(), *(["[output truncated]"] if result.truncated else [])]
        how = f"Computed exactly: {expression}" + (f", in {plural(unit)}" if unit else "")
        return ToolOutput("\n".join([*lines, how]), value=printed_value(result), calls=calls)

    async def fit(self, question: str, found: tuple[str, ...] = ()) -> ToolFit:
        """Claims arithmetic as written, and, writing expressions, a question with two operands or more
        (numbers, units: "How many hours are in 161 weeks?"; a number earlier turns ``found`` counts);
        writing expressions, it cannot help a question that states no number, nor one that states one
        ("How old would X be in 2030?") until a turn has found another: one operand is no expression,
        and the other is a fact to look up."""
        if arithmetic_expression(question) is not None:
            return ToolFit(Fit.CLAIMS, "the question is arithmetic")
        if self._writes != "expression":
            return ToolFit()
        stated = len(stated_numbers(question)) + len(units_in(question))
        if stated == 0:
            return ToolFit(Fit.CANNOT, NO_NUMBER)
        if stated >= 2:
            return ToolFit(Fit.CLAIMS, "the question states what to compute with")
        if any(numbers_in(value) for value in found):
            return ToolFit(Fit.CLAIMS, "the question states a number and earlier turns found more")
        return ToolFit(Fit.CANNOT, "the question states one number, and nothing found yet to compute it with")

    async def aclose(self) -> None:
        """The engine belongs to the solver's pool; the containers are ours."""
        await self._sandbox.aclose()

    async def _start(self) -> None:
        # Started on first use: the factory runs when the solver is built, maybe outside any event loop.
        async with self._starting:
            await self._sandbox.start()


def expression_prompt(question: str, request: str, found: Sequence[str] = ()) -> str:
    """What the engine is asked when it writes an expression: the question (when it is more than the
    request), what earlier turns found, the request, and the units it may name."""
    names = units_in(f"{question} {request}")
    return EXPRESSION_PROMPT.format(
        question=(f"Question: {question}\n" if question else "") + found_line(found),
        request=request,
        units=EXPRESSION_UNITS.format(names=", ".join(names)) if names else "",
    )


def found_line(found: Sequence[str]) -> str:
    """What earlier turns found, as a line of the prompt; nothing when they found nothing."""
    return f"Found earlier: {'; '.join(found)}\n" if found else ""


def writes_for(setting: str, engine_name: str) -> str:
    """``auto`` made concrete: the embedded default (or a module's view of it, ``+executor``) writes expressions."""
    if setting != "auto":
        return setting
    return "expression" if engine_name.split("+")[0] == EMBEDDED_ENGINE else "program"


def readiness(settings: Mapping[str, Any]) -> str | None:
    """``None`` where python_coder can run (a Docker daemon answers, the sandbox image is there), else why not.

    Only then is it among the default tools: enabled without its sandbox, it would fail every call.
    A missing local image is built here (``resolve_image``), before the first question, so that a
    fresh clone's first solve has exact arithmetic; a configured image never is.
    """
    try:
        connect(timeout_s=READINESS_TIMEOUT_S).close()  # a quick "no" where no daemon runs
        client = connect()  # the usual timeouts: a build uploads the image
    except SandboxError:
        return f"exact arithmetic needs its Docker sandbox, and no Docker daemon answers; {_SETUP}"
    image = settings.get("image")
    try:
        resolve_image(client, image if isinstance(image, str) else None)
    except SandboxError as exc:
        return f"exact arithmetic needs its Docker sandbox: {exc}"
    finally:
        client.close()
    return None


#: How long the check at solver construction waits for a Docker daemon.
READINESS_TIMEOUT_S = 3.0
_SETUP = (
    "start Docker and it joins the default tools (its image is built the first time it is needed; "
    "`agentflow sandbox build` builds it now)"
)


def _gave_up(failures: list[str]) -> str:
    """The last failure in full (the one worth reading), after a count of the attempts when there were several."""
    if len(failures) == 1:
        return failures[0]
    return f"{len(failures)} programs failed; the last one: {failures[-1]}"


def extract_code(text: str) -> str | None:
    """The program in a model's reply: a ```python block, else any fenced block, else bare code.

    Tolerant of what small models do: a missing closing fence, a ``py`` or no language tag,
    prose around the block. Bare text counts only if it compiles as Python.
    """
    blocks = [(lang.lower(), body.strip()) for lang, body in _FENCE.findall(text)]
    for wanted in ({"python", "python3", "py"}, {""}):
        for lang, body in blocks:
            if lang in wanted and body:
                return body
    bare = text.strip()
    if bare and not blocks and _compiles(bare):
        return bare
    return None


def _compiles(text: str) -> bool:
    try:
        compile(text, "<reply>", "exec")
    except (SyntaxError, ValueError):
        return False
    return any(ch in text for ch in "(=\n")  # a lone word compiles too, but is no program


def success_output(code: str, result: ExecutionResult, repaired: list[str] | None = None) -> ToolOutput:
    """The output, then the code; a program that printed one short line has that line as its value."""
    # The output comes first: prompts cut long observations, and the code matters less than its result.
    lines = ["Output:", result.stdout.rstrip()]
    if result.truncated:
        lines.append("[output truncated]")
    if repaired:
        first_line = repaired[-1].splitlines()[0]
        lines.append(f"(This program is a repair: {len(repaired)} earlier attempt(s) failed; the last: {first_line})")
    return ToolOutput("\n".join([*lines, _code_block(code)]), value=printed_value(result))


#: The longest printed line that still counts as one value rather than a sentence or a table.
VALUE_CHARS = 60


def printed_value(result: ExecutionResult) -> str | None:
    """What the program printed, when that is a single short line (``391``, ``[2, 3]``)."""
    printed = result.stdout.strip()
    if result.truncated or not printed or "\n" in printed or len(printed) > VALUE_CHARS:
        return None
    return printed


def failure_text(code: str, result: ExecutionResult, timeout_s: float) -> str:
    """What went wrong: the error and its traceback's end, or that a program which ran printed nothing."""
    if result.ok:
        return "\n".join(
            ["The program ran but printed nothing; it must print its result with print().", _code_block(code)]
        )
    lines = [f"The program failed ({result.describe()})."]
    tail = "\n".join(result.stderr.rstrip().splitlines()[-TRACEBACK_LINES:])
    if tail:
        lines += ["Error:", tail]
    if result.timed_out:
        lines.append(f"It did not finish within the {timeout_s:g} s limit; make the computation cheaper.")
    if result.stdout.strip():
        lines += ["Output before the failure:", _clip(result.stdout.rstrip(), 1000)]
    return "\n".join([*lines, _code_block(code)])


def _code_block(code: str) -> str:
    return f"Code:\n```python\n{_clip(code, CODE_IN_OBSERVATION)}\n```"


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
