"""Asking a server for structured output in the best form it accepts, learnt once per engine.

Servers differ in how they take a JSON schema: OpenAI and vLLM take ``response_format`` of type
``json_schema``, llama.cpp's servers only ``json_object`` carrying the schema, Ollama a schema as
``format`` (before 0.5 only ``"json"``), some servers nothing at all. An engine lists its forms
best first as the ladder's rungs; a request the server turns down *for its form* is sent again
one rung lower, and the engine stays on the rung that worked, so the cost is one failed call per
engine, not per request. What counts as "turned down for its form" is the engine's to say.

Public: third-party engines use it as the built-in HTTP engines do::

    ladder = StructuredOutputLadder(("schema", "json"), rejects=lambda f: f.status == 400 and "format" in f.detail)
    completion = await ladder.send(request, lambda form: post(body(request, form)))
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from agentflow_core.engine import Completion, GenerationRequest
from agentflow_core.engines.retry import CallFailure

__all__ = ["StructuredOutputLadder"]

R = TypeVar("R")


class StructuredOutputLadder(Generic[R]):
    """Rungs are the forms to try, best first; ``None`` as a rung means "send no form at all".

    ``send`` passes the current rung to the caller's ``send`` (``None`` for a request without a
    schema), and steps down when ``rejects`` says a :class:`CallFailure` was the server refusing
    that form. Safe for concurrent requests on one engine: the rung only ever goes down.
    """

    def __init__(self, rungs: Sequence[R | None], *, rejects: Callable[[CallFailure], bool]) -> None:
        if not rungs:
            raise ValueError("a structured-output ladder needs at least one rung")
        self._rungs = tuple(rungs)
        self._rejects = rejects
        self._rung = 0

    @property
    def current(self) -> R | None:
        """The form the next request with a schema will be sent in."""
        return self._rungs[self._rung]

    async def send(self, request: GenerationRequest, send: Callable[[R | None], Awaitable[Completion]]) -> Completion:
        while True:
            rung = self._rung
            form = self._rungs[rung] if request.json_schema is not None else None
            try:
                return await send(form)
            except CallFailure as failure:
                last = rung + 1 >= len(self._rungs)
                if form is None or last or not self._rejects(failure):
                    raise
            self._rung = max(self._rung, rung + 1)  # concurrent calls may have stepped down already
