"""The viewer's data, addressed by path: what ``/api/<path>`` serves and what an export writes.

Paths hold nothing but names and numbers, so that a static export can store each as a file:

- ``sources``: what was given on the command line, numbered from 0;
- ``eval/<i>/summary``, ``eval/<i>/rows/<version>`` (rows changed since), ``eval/<i>/record/<n>``;
- ``trajectory/<i>``;
- ``train/<i>/info``, ``train/<i>/metrics/<version>``, ``train/<i>/samples/<step>``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from typing import Any

from agentflow_rl.view.eval_run import EvalRun
from agentflow_rl.view.sources import Source
from agentflow_rl.view.training_run import TrainingRun
from agentflow_rl.view.trajectory_file import TrajectoryFile


class NotFound(LookupError):
    """No data at that path; the message says which part was wrong."""


class ViewData:
    def __init__(self, sources: Sequence[Source]) -> None:
        self.sources = list(sources)

    def get(self, path: str) -> Any:
        parts = path.strip("/").split("/")
        if parts == ["sources"]:
            return [{"id": i, "kind": s.kind, "name": s.name, "path": str(s.path)} for i, s in enumerate(self.sources)]
        if len(parts) < 2 or not parts[1].isdigit() or int(parts[1]) >= len(self.sources):
            raise NotFound(f"no source {parts[1] if len(parts) > 1 else ''!r}")
        source = self.sources[int(parts[1])]
        try:
            return _route(source, parts[0], parts[2:])
        except (KeyError, ValueError, IndexError):
            raise NotFound(f"nothing at {path!r}") from None

    def warm(self) -> None:
        """Read every evaluation run's results now (the server does this as it starts, on a thread)."""
        for source in self.sources:
            if isinstance(source, EvalRun):
                source.refresh()

    def paths(self) -> Iterator[str]:
        """Every path a static export needs, each list as of now."""
        yield "sources"
        for i, source in enumerate(self.sources):
            if isinstance(source, EvalRun):
                yield from (f"eval/{i}/summary", f"eval/{i}/rows/0")
                yield from (f"eval/{i}/record/{n}" for n in range(len(source.records())))
            elif isinstance(source, TrajectoryFile):
                yield f"trajectory/{i}"
            else:
                yield from (f"train/{i}/info", f"train/{i}/metrics/0")
                yield from (f"train/{i}/samples/{step}" for step in source.info()["sample_steps"])


def _route(source: Source, kind: str, rest: list[str]) -> Any:
    if kind != source.kind:
        raise KeyError(kind)
    if isinstance(source, EvalRun):
        if rest == ["summary"]:
            return source.summary()
        if len(rest) == 2 and rest[0] == "rows":
            return source.rows_since(rest[1])
        if len(rest) == 2 and rest[0] == "record":
            return source.record(int(rest[1]))
    elif isinstance(source, TrajectoryFile):
        if not rest:
            return source.trajectory()
    elif isinstance(source, TrainingRun):
        if rest == ["info"]:
            return source.info()
        if len(rest) == 2 and rest[0] == "metrics":
            return source.metrics_since(rest[1])
        if len(rest) == 2 and rest[0] == "samples":
            return source.samples(int(rest[1]))
    raise KeyError(rest)


def dumps(payload: Any) -> str:
    """JSON a browser parses: a NaN or infinity anywhere becomes ``null``."""
    try:
        return json.dumps(payload, ensure_ascii=False, allow_nan=False)
    except ValueError:
        return json.dumps(_finite(payload), ensure_ascii=False, allow_nan=False)


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value
