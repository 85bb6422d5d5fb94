"""Finding prompt text that a model copied into what it wrote.

A small model that cannot answer tends to echo its prompt: a schema's description becomes a tool
argument, a tool's worked example becomes the sub-goal, the instructions become the answer (issue
34). ``copied_prompt_text`` finds such echoes in a trajectory: a run of ``min_words`` consecutive
words that a module wrote and that appears in the instructions it was shown, yet not in the question,
a tool's result or anything the modules wrote before. Text that came from the question or a tool may
be repeated freely; only the prompt's own wording may not.

The instructions are read from the trajectory itself (every message of every module call), plus
whatever the caller adds: the texts a model sees outside the messages, such as JSON-schema
descriptions sent as ``response_format`` (:func:`schema_texts`) or a tool's metadata
(:func:`tool_texts`).

>>> from agentflow_core import Answer, Query, StopReason, Trajectory
>>> schema = "the full question or instruction, with every fact it needs"
>>> said = Answer("The full question or instruction, with every fact it needs.")
>>> trajectory = Trajectory(Query("Who wrote Dune?"), None, (), said, None, StopReason.MAX_STEPS, 0.0)
>>> [found.copied for found in copied_prompt_text(trajectory, [schema])]
['the full question or instruction with every fact it needs']
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import attrs

from agentflow_core.records import ModuleCall, ToolSuccess, Trajectory
from agentflow_core.tool import ToolSpec

#: Four words. Measured on real SmolLM2-135M solves (docs/evaluation.md): every copy in a sub-goal, an
#: argument or an answer was four words or longer ("tool reported an error"; issue 34's schema
#: descriptions were 7 to 11), while ordinary phrasing that happens to share three words with the
#: prompt ("the answer is") was not; the question's own words never count.
MIN_WORDS = 4

_WORD = re.compile(r"\w+")

Gram = tuple[str, ...]


@attrs.frozen
class CopiedText:
    """One output that repeats the prompt's wording."""

    #: Which output: ``analysis``, ``step 1 sub_goal``, ``step 1 argument query``, ``final answer``, ...
    where: str
    #: The longest run of words it shares with the instructions (lower case, punctuation dropped).
    copied: str
    #: The whole output, for the failure message.
    text: str

    def __str__(self) -> str:
        return f"{self.where} copies {self.copied!r} from the prompt: {_clip(self.text)!r}"


def copied_prompt_text(
    trajectory: Trajectory,
    instructions: Iterable[str] = (),
    *,
    min_words: int = MIN_WORDS,
    reasoning: bool = False,
) -> list[CopiedText]:
    """Every value in ``trajectory`` that repeats ``min_words`` or more words of its prompts' instructions.

    Values are sub-goals, tool arguments and answers; ``reasoning=True`` adds the planner's analysis and
    the verifier's reasoning, free text that restates the task more often than it copies it. An output
    is compared with the prompts of the calls made so far, read without the text they quote (the
    question, tool results, earlier outputs): a run that straddles the label ``Question:`` and the
    question's first words is the model quoting the question, not copying the instructions. A copied
    run stays copied when a later output repeats it.
    """
    fixed = set().union(*(_grams(_words(text), min_words) for text in instructions))
    prompts: list[list[str]] = []
    asked: set[int] = set()
    quoted = [_words(trajectory.query.text)]
    copied: set[Gram] = set()
    found = []
    for piece in _in_order(trajectory):
        if piece.call is not None and id(piece.call) not in asked:
            asked.add(id(piece.call))
            prompts += [_words(message.content) for message in piece.call.messages]
        words = _words(piece.text)
        if piece.written and words:
            allowed = set().union(*(_grams(q, min_words) for q in quoted)) - copied
            instruction = (fixed | copied | _instruction_grams(prompts, quoted, min_words)) - allowed
            hits = _grams(words, min_words) & instruction
            copied |= hits
            if hits and (reasoning or not piece.reasoning):
                found.append(CopiedText(piece.where, _longest_run(words, instruction, min_words), piece.text))
        quoted.append(words)
    return found


def assert_no_copied_text(
    trajectory: Trajectory, instructions: Iterable[str] = (), *, min_words: int = MIN_WORDS, reasoning: bool = False
) -> None:
    """``copied_prompt_text`` as a test assertion, naming each copy."""
    found = copied_prompt_text(trajectory, instructions, min_words=min_words, reasoning=reasoning)
    assert not found, "the model copied its prompt:\n" + "\n".join(f"- {copy}" for copy in found)


def schema_texts(schema: Any) -> Iterator[str]:
    """Every ``description``, ``title`` and ``examples`` string in a JSON schema, nested ones too."""
    if isinstance(schema, Mapping):
        for key, value in schema.items():
            if key in ("description", "title") and isinstance(value, str):
                yield value
            elif key == "examples" and isinstance(value, list):
                yield from (str(example) for example in value)
            else:
                yield from schema_texts(value)
    elif isinstance(schema, list):
        for value in schema:
            yield from schema_texts(value)


def tool_texts(specs: Sequence[ToolSpec]) -> Iterator[str]:
    """What a tool tells the model about itself: description, output, limitations, advice, schema and examples."""
    for spec in specs:
        yield from (spec.description, spec.output, *spec.limitations, *spec.best_practices)
        yield from schema_texts(dict(spec.input_schema))
        for example in spec.examples:
            yield example.description
            yield from (str(value) for value in example.arguments.values())


@attrs.frozen
class _Piece:
    where: str
    text: str
    #: Written by a module, or quoted from elsewhere (a tool's result).
    written: bool
    #: The module call that wrote it, whose prompt it is compared with.
    call: ModuleCall | None = None
    #: Free reasoning (an analysis) rather than a value that is used (a sub-goal, an argument, an answer).
    reasoning: bool = False


def _in_order(trajectory: Trajectory) -> Iterator[_Piece]:
    """Every text of the trajectory in the order it came to exist."""
    if trajectory.analysis is not None:
        yield _Piece("analysis", trajectory.analysis.text, True, trajectory.analysis.call, reasoning=True)
    for step in trajectory.steps:
        decision, name = step.decision, f"step {step.index}"
        yield _Piece(f"{name} context", decision.context, True, decision.call)
        yield _Piece(f"{name} sub_goal", decision.sub_goal, True, decision.call)
        for key, value in step.tool_call.arguments.items():
            text = value if isinstance(value, str) else repr(value)
            yield _Piece(f"{name} argument {key}", text, True, step.tool_call.call)
        result = step.result
        yield _Piece(f"{name} result", result.output if isinstance(result, ToolSuccess) else result.error, False)
        if step.verdict is not None:
            yield _Piece(f"{name} verdict", step.verdict.analysis, True, step.verdict.call, reasoning=True)
    for label, answer in (("final answer", trajectory.final_answer), ("direct answer", trajectory.direct_answer)):
        if answer is not None:
            yield _Piece(label, answer.text, True, answer.call)


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def _grams(words: Sequence[str], n: int) -> set[Gram]:
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def _instruction_grams(prompts: list[list[str]], quoted: list[list[str]], n: int) -> set[Gram]:
    """The ``n``-word runs of the prompts once every quoted text is cut out of them.

    A quoted text is found by its own runs of ``n`` words (or as a whole, when shorter), so a quote
    that the prompt clipped or re-punctuated (a tool result cut at 2,000 characters, arguments as
    JSON) is cut out all the same.
    """
    pieces: dict[int, set[Gram]] = {}
    for words in quoted:
        if words:
            size = min(n, len(words))
            pieces.setdefault(size, set()).update(_grams(words, size))
    grams: set[Gram] = set()
    for prompt in prompts:
        own = [True] * len(prompt)
        for size, known in pieces.items():
            for i in range(len(prompt) - size + 1):
                if tuple(prompt[i : i + size]) in known:
                    own[i : i + size] = [False] * size
        run: list[str] = []
        for word, is_own in [*zip(prompt, own, strict=True), ("", False)]:
            if is_own:
                run.append(word)
                continue
            grams |= _grams(run, n)
            run = []
    return grams


def _longest_run(words: list[str], forbidden: set[Gram], n: int) -> str:
    """The longest stretch of ``words`` whose every ``n``-word window is forbidden."""
    best: tuple[int, int] = (0, 0)
    start = None
    for i in range(len(words) - n + 2):
        inside = i <= len(words) - n and tuple(words[i : i + n]) in forbidden
        if inside and start is None:
            start = i
        if not inside and start is not None:
            if i - 1 + n - start > best[1] - best[0]:
                best = (start, i - 1 + n)
            start = None
    return " ".join(words[best[0] : best[1]])


def _clip(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
