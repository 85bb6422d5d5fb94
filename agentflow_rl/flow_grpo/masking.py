"""Which tokens of a recorded completion the policy actually chose, and among what.

Under a JSON-schema grammar each token is drawn from the policy's distribution restricted to the
tokens the grammar allowed at that position. The trainer rebuilds those allowed sets by replaying
the grammar named in the ``TokenTrace`` over the recorded completion (grammar matchers are
deterministic), then scores each token under the same restricted distribution.

A position whose allowed set is a single token, or only stop tokens, was *forced*, and so was one
the engine wrote by jump-forward (``TokenTrace.filled``: the grammar allowed one text there, which
the vocabulary may spell in several ways, and the engine picked one spelling): the policy chose
nothing there, so it carries no policy-gradient term, no KL term and no entropy. Counting such
tokens would let a negative advantage push down the unmasked probability of a token the grammar
keeps emitting, without limit, which is how the KL to the reference blew up in earlier runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import attrs

from agentflow_core import EngineError, TokenTrace
from agentflow_core.engines.token_runtime import grammar_factory, stop_ids, unpack

if TYPE_CHECKING:
    import torch


@attrs.frozen
class AllowedSets:
    """The grammar's allowed sets over one completion, and which positions were real choices."""

    #: ``[n, W]`` int32, 32 tokens per word (the layout of ``token_runtime.unpack``); ``None``
    #: when the completion was sampled without a grammar (every token allowed everywhere).
    packed: Any
    #: Per position: True when more than one token (other than only stop tokens) was allowed.
    free: tuple[bool, ...]


class GrammarReplay:
    """Replays recorded grammars with the policy's own tokenizer."""

    def __init__(self, model: Any, tokenizer: Any) -> None:
        self._factory = grammar_factory(model, tokenizer)
        self._stops = sorted(stop_ids(model, tokenizer))

    @property
    def vocab_size(self) -> int:
        return self._factory.vocab_size

    def allowed(self, trace: TokenTrace) -> AllowedSets:
        if trace.grammar is None:
            return AllowedSets(None, (True,) * len(trace.completion_ids))
        try:
            packed = self._factory.replay(trace.grammar, trace.completion_ids)
        except EngineError as exc:
            raise EngineError(f"cannot replay the grammar of a training turn: {exc}") from exc
        free = free_positions(packed, self.vocab_size, self._stops)
        filled = set(trace.filled)
        return AllowedSets(packed, tuple(f and i not in filled for i, f in enumerate(free)))


def free_positions(packed: torch.Tensor, vocab_size: int, stops: Sequence[int]) -> tuple[bool, ...]:
    """True where the allowed set offers a real choice: two or more tokens, not all of them stops."""
    allowed = unpack(packed, vocab_size)
    choices = allowed.sum(-1)
    non_stop = allowed.clone()
    non_stop[:, [s for s in stops if s < vocab_size]] = False
    free = (choices > 1) & non_stop.any(-1)
    return tuple(bool(x) for x in free.tolist())
