"""A few rollouts of each training step, kept on disk so that a person can read what was learnt from.

``keep_rollouts`` appends ``<output_dir>/samples/step-0000010.jsonl``: one ``KeptRollout`` per
line, through the core's converter, with its reward, the advantage of every trained turn and
which module calls those turns were. ``agentflow view <output_dir>`` shows them beside the curves.

The trained turns are the trained modules' calls whose ``TokenTrace`` the loss learns from; the
traces themselves are dropped from the saved trajectory, since token ids say nothing to a reader
and would make each line ten times longer.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, TypeVar, overload

import attrs

from agentflow_core import TokenTrace, Trajectory
from agentflow_core.records import Answer, PlannerDecision, QueryAnalysis, ToolCall, Verdict
from agentflow_core.serde import from_json, to_json
from agentflow_rl.flow_grpo.run.storage import RESUME_WITH_ROOM, writing

#: The folder's name predates this module's: earlier runs, and the viewer's URLs, still say ``samples``.
KEPT_DIR = "samples"


class _Question(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def question(self) -> str: ...
    @property
    def answers(self) -> tuple[str, ...]: ...


class _Turn(Protocol):
    @property
    def role(self) -> str: ...
    @property
    def trace(self) -> TokenTrace: ...


class RolloutLike(Protocol):
    """What a step's rollout offers (``agentflow_rl.flow_grpo.rollout.Rollout`` is one)."""

    @property
    def record(self) -> _Question: ...
    @property
    def group(self) -> int: ...
    @property
    def trajectory(self) -> Trajectory: ...
    @property
    def turns(self) -> Sequence[_Turn]: ...


@attrs.frozen
class KeptRollout:
    step: int
    #: The question's group within the step; siblings share it.
    group: int
    question_id: str
    question: str
    gold: tuple[str, ...]
    reward: float
    #: The advantage of each trained turn, in the order of ``trained_calls``.
    advantages: tuple[float, ...]
    #: Positions in ``trajectory.module_calls()`` of the calls the update trained on.
    trained_calls: tuple[int, ...]
    #: Roles of the trained calls (``planner`` unless several modules are trained).
    trained_roles: tuple[str, ...]
    trajectory: Trajectory


def kept_path(output_dir: str | os.PathLike[str], step: int) -> Path:
    return Path(output_dir) / KEPT_DIR / f"step-{step:07d}.jsonl"


def choose(rollouts: Sequence[RolloutLike], rewards: Sequence[float], count: int) -> list[int]:
    """Indices of ``count`` rollouts, whole groups first and groups whose rewards differ before others.

    A group that disagrees is the one that teaches (its advantages are not zero), and siblings
    side by side show what the better trajectory did differently.
    """
    groups: dict[int, list[int]] = {}
    for index, rollout in enumerate(rollouts):
        groups.setdefault(rollout.group, []).append(index)
    mixed = [g for g in groups.values() if len({rewards[i] for i in g}) > 1]
    uniform = [g for g in groups.values() if len({rewards[i] for i in g}) <= 1]
    return [i for g in mixed + uniform for i in g][:count]


def kept(rollout: RolloutLike, step: int, reward: float, advantages: Sequence[float]) -> KeptRollout:
    calls = list(rollout.trajectory.module_calls())
    traces = {(turn.role, id(turn.trace)) for turn in rollout.turns}
    trained = tuple(i for i, call in enumerate(calls) if (call.role, id(call.tokens)) in traces)
    return KeptRollout(
        step=step,
        group=rollout.group,
        question_id=rollout.record.id,
        question=rollout.record.question,
        gold=tuple(rollout.record.answers),
        reward=float(reward),
        advantages=tuple(float(a) for a in advantages),
        trained_calls=trained,
        trained_roles=tuple(calls[i].role for i in trained),
        trajectory=without_tokens(rollout.trajectory),
    )


def keep_rollouts(
    output_dir: str | os.PathLike[str],
    step: int,
    rollouts: Sequence[RolloutLike],
    rewards: Sequence[float],
    per_turn: Sequence[Sequence[float]],
    count: int,
) -> Path | None:
    """Append ``count`` of the step's rollouts to its file in ``KEPT_DIR``; ``count = 0`` writes nothing.

    ``per_turn[i]`` holds the advantage of each trained turn of ``rollouts[i]``, as
    ``advantages()`` returns them. Call it from the main process only: every process would
    otherwise append its own share to the same file.
    """
    chosen = choose(rollouts, rewards, count) if count > 0 else []
    if not chosen:
        return None
    path = kept_path(output_dir, step)
    lines = [to_json(kept(rollouts[i], step, rewards[i], per_turn[i])) + "\n" for i in chosen]
    with writing(path, RESUME_WITH_ROOM):
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as out:
            out.write("".join(lines))
    return path


def read_kept_rollouts(path: Path) -> list[KeptRollout]:
    """Every complete line of one step's file; a line cut short by a kill is skipped."""
    found = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            try:
                found.append(from_json(line, KeptRollout))
            except Exception:  # the last line of a killed run, or another version's record
                continue
    return found


def kept_steps(output_dir: str | os.PathLike[str]) -> list[int]:
    folder = Path(output_dir) / KEPT_DIR
    steps = []
    for path in folder.glob("step-*.jsonl") if folder.is_dir() else ():
        number = path.stem.removeprefix("step-")
        if number.isdigit():
            steps.append(int(number))
    return sorted(steps)


def without_tokens(trajectory: Trajectory) -> Trajectory:
    """The same trajectory with every ``ModuleCall.tokens`` set to ``None``."""
    steps = tuple(
        attrs.evolve(s, decision=_strip(s.decision), tool_call=_strip(s.tool_call), verdict=_strip(s.verdict))
        for s in trajectory.steps
    )
    return attrs.evolve(
        trajectory,
        analysis=_strip(trajectory.analysis),
        steps=steps,
        final_answer=_strip_answer(trajectory.final_answer),
        direct_answer=_strip_answer(trajectory.direct_answer),
    )


def _strip_answer(answer: Answer | None) -> Answer | None:
    """An answer holds a second call when the generator declined its offered values."""
    if answer is not None and answer.choice is not None:
        answer = attrs.evolve(answer, choice=attrs.evolve(answer.choice, tokens=None))
    return _strip(answer)


_WithCall = TypeVar("_WithCall", QueryAnalysis, PlannerDecision, ToolCall, Verdict, Answer)


@overload
def _strip(record: _WithCall) -> _WithCall: ...
@overload
def _strip(record: None) -> None: ...
def _strip(record: _WithCall | None) -> _WithCall | None:
    if record is None or record.call is None:
        return record
    return attrs.evolve(record, call=attrs.evolve(record.call, tokens=None))
