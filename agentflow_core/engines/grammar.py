"""Grammar-constrained decoding for in-process engines, and its replay for training.

A completion sampled under a JSON-schema grammar is drawn, token by token, from the model's
distribution *masked* to the tokens the grammar allows at that position and renormalised. A trainer
that scores the completion must use that same distribution, so it needs each position's allowed
set. Grammar matchers are deterministic: given the schema and the tokens already accepted, the next
allowed set is fixed. :meth:`GrammarFactory.replay` therefore rebuilds every position's allowed set
from a :class:`~agentflow_core.engine.GrammarTrace` (which backend, which schema) and the completion
ids, with no need to keep the masks from generation.

xgrammar is the first choice: it ships CPU wheels, compiles a JSON schema once per tokenizer into a
pushdown automaton with precomputed token masks (a step costs microseconds even with a 150k
vocabulary), and supports maxLength, which ``fit_schema_to_budget`` relies on. llguidance is the
fallback for tokenizers or schemas xgrammar rejects, or installs without it. Both hand us a packed
bitmask (32 tokens per int32, low bit first); we apply it ourselves, so neither library's (sometimes
``torch.compile``'d) kernel is needed.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from agentflow_core.engine import GrammarTrace
from agentflow_core.errors import EngineError, EngineUnavailable

if TYPE_CHECKING:
    import torch

XGRAMMAR, LLGUIDANCE = "xgrammar", "llguidance"
_INSTALL_HINT = "pip install 'agentflow[hf]'"
#: Compiled grammars kept per factory: a trainer replays many turns of the same few schemas.
_CACHE_SIZE = 64


class Constraint(Protocol):
    """One request's grammar state: which tokens may come next, and whether the JSON is complete."""

    #: What a trainer needs to replay this constraint later.
    trace: GrammarTrace

    def fill(self, packed: torch.Tensor) -> None:
        """Writes the allowed set of the next position into ``packed`` (one int32 row)."""

    def accept(self, token: int) -> None: ...

    def finished(self) -> bool: ...

    def forced_tokens(self) -> list[int]:
        """Tokens spelling the text the grammar allows next and nothing else (jump-forward), not yet
        accepted; empty when the next text is a choice. Stop tokens are never among them."""


def packed_width(vocab_size: int) -> int:
    return (vocab_size + 31) // 32


class GrammarFactory:
    """Builds per-request constraints for one tokenizer, caching the tokenizer-level setup."""

    def __init__(self, tokenizer: Any, vocab_size: int, stop_ids: Sequence[int], backend: str | None = None) -> None:
        if backend not in (None, XGRAMMAR, LLGUIDANCE):
            raise EngineError(f"unknown grammar_backend {backend!r}; use '{XGRAMMAR}' or '{LLGUIDANCE}'")
        self._tokenizer = tokenizer
        self.vocab_size = vocab_size
        self._stop_ids = sorted(stop_ids)
        self._backend = backend
        self._xgrammar_compiler: Any = None
        self._llguidance_tokenizer: Any = None
        self._compiled: OrderedDict[tuple[str, str], Any] = OrderedDict()

    def constraint(self, schema: Mapping[str, Any]) -> Constraint:
        text = json.dumps(schema, separators=(",", ":"))  # key order is generation order: keep it
        if self._backend in (None, XGRAMMAR):
            try:
                return self._start(GrammarTrace(XGRAMMAR, text))
            except Exception as exc:  # any failure here is a reason to try the other library
                if self._backend == XGRAMMAR:
                    raise EngineError(f"xgrammar cannot constrain this request: {_first_line(exc)}") from exc
        return self._start(GrammarTrace(LLGUIDANCE, text))

    @property
    def stop_ids(self) -> list[int]:
        return self._stop_ids

    def encode(self, text: str) -> list[int]:
        """``text`` in this tokenizer's own spelling, without special tokens."""
        return list(self._tokenizer(text, add_special_tokens=False)["input_ids"])

    def replay(self, trace: GrammarTrace, completion_ids: Sequence[int]) -> torch.Tensor:
        """``[len(completion_ids), packed_width]`` int32: the allowed set before each token.

        Raises ``EngineError`` when a token is one the grammar never allowed there: the completion
        was not sampled under this grammar (or with another tokenizer), and scoring it as if it had
        been would be wrong.
        """
        import torch

        constraint = self._start(trace)
        packed = torch.zeros((len(completion_ids), packed_width(self.vocab_size)), dtype=torch.int32)
        for position, token in enumerate(completion_ids):
            constraint.fill(packed[position])
            if not is_allowed(packed[position], token):
                raise EngineError(f"token {token} at position {position} is not allowed by the recorded grammar")
            constraint.accept(token)
        return packed

    def _start(self, trace: GrammarTrace) -> Constraint:
        if trace.backend == XGRAMMAR:
            return _XGrammarConstraint(trace, self._compiled_xgrammar(trace.schema), self)
        if trace.backend == LLGUIDANCE:
            return _LLGuidanceConstraint(trace, self._llguidance_matcher(trace.schema), self.vocab_size)
        raise EngineError(f"unknown grammar backend {trace.backend!r} in a token trace")

    def _cached(self, key: tuple[str, str]) -> Any:
        found = self._compiled.get(key)
        if found is not None:
            self._compiled.move_to_end(key)
        return found

    def _remember(self, key: tuple[str, str], value: Any) -> Any:
        self._compiled[key] = value
        if len(self._compiled) > _CACHE_SIZE:
            self._compiled.popitem(last=False)
        return value

    def _compiled_xgrammar(self, schema: str) -> Any:
        import xgrammar

        cached = self._cached((XGRAMMAR, schema))
        if cached is not None:
            return cached
        if self._xgrammar_compiler is None:
            info = xgrammar.TokenizerInfo.from_huggingface(
                self._tokenizer, vocab_size=self.vocab_size, stop_token_ids=self._stop_ids
            )
            self._xgrammar_compiler = xgrammar.GrammarCompiler(info)
        compiled = self._xgrammar_compiler.compile_grammar(xgrammar.Grammar.from_ebnf(json_schema_ebnf(schema)))
        return self._remember((XGRAMMAR, schema), compiled)

    def _llguidance_matcher(self, schema: str) -> Any:
        try:
            import llguidance
            import llguidance.hf
        except ImportError as exc:
            raise EngineUnavailable(f"json_schema requests need xgrammar or llguidance: {_INSTALL_HINT}") from exc
        if self._llguidance_tokenizer is None:
            self._llguidance_tokenizer = llguidance.hf.from_tokenizer(
                self._tokenizer, n_vocab=self.vocab_size, eos_token=self._stop_ids or None
            )
        grammar = self._cached((LLGUIDANCE, schema))
        if grammar is None:
            grammar = llguidance.LLMatcher.grammar_from_json_schema(
                json.loads(schema), overrides={"whitespace_flexible": False}
            )
            self._remember((LLGUIDANCE, schema), grammar)
        matcher = llguidance.LLMatcher(self._llguidance_tokenizer, grammar, log_level=0)
        if matcher.is_error():
            raise EngineError(f"llguidance cannot constrain this request: {matcher.get_error()}")
        return matcher


def json_schema_ebnf(schema: str) -> str:
    """The xgrammar grammar (EBNF text) this project constrains JSON to ``schema`` with.

    No free whitespace (``{"a": 1, "b": 2}`` spacing exactly) and only JSON-legal characters in
    length-bounded strings. The ``vllm`` engine hands vLLM this text rather than the schema, so that
    what vLLM samples under is what :meth:`GrammarFactory.replay` rebuilds.
    """
    import xgrammar

    grammar = xgrammar.Grammar.from_json_schema(schema, any_whitespace=False)
    return str(grammar).replace(_XGRAMMAR_LOOSE_CHAR, _XGRAMMAR_STRICT_CHAR)


#: xgrammar spells a character of a length-bounded string as "not a quote, backslash or newline",
#: which lets other control characters through and so breaks json.loads; JSON forbids all of them
#: (the unbounded rule already does). Escapes stay impossible in such strings, a harmless loss.
_XGRAMMAR_LOOSE_CHAR = r"[^\"\\\r\n]"
_XGRAMMAR_STRICT_CHAR = r"[^\"\\\0-\x1f]"


class _XGrammarConstraint:
    def __init__(self, trace: GrammarTrace, compiled: Any, factory: GrammarFactory) -> None:
        import xgrammar

        self.trace = trace
        self._matcher = xgrammar.GrammarMatcher(compiled)
        self._bitmask = xgrammar.allocate_token_bitmask(1, factory.vocab_size)
        self._factory = factory

    def fill(self, packed: torch.Tensor) -> None:
        self._matcher.fill_next_token_bitmask(self._bitmask)
        packed.copy_(self._bitmask[0])

    def accept(self, token: int) -> None:
        if not self._matcher.accept_token(token):
            raise EngineError(f"xgrammar rejected token {token} that its own mask allowed")

    def finished(self) -> bool:
        return bool(self._matcher.is_terminated())

    def forced_tokens(self) -> list[int]:
        """Longest vocabulary tokens over the forced text, leaving out a last token that a longer
        token could extend into the text that follows (that one is the model's to choose)...

        ...except where nothing follows: xgrammar leaves ``"}`` out at the end of a reply because a
        token such as ``"},`` starts with it, though the grammar allows only a stop after it. So a
        rest of forced text that ends the reply is written too (llguidance does this itself).
        """
        tokens = list(self._matcher.find_jump_forward_tokens())
        probe = self._matcher.fork()
        for token in tokens:
            probe.accept_token(token)
        rest = probe.find_jump_forward_string()
        if rest:
            extra = self._factory.encode(rest)
            if extra and all(probe.accept_token(token) for token in extra) and self._only_stops(probe):
                tokens += extra
        return tokens

    def _only_stops(self, matcher: Any) -> bool:
        matcher.fill_next_token_bitmask(self._bitmask)
        return _allows_only(self._bitmask[0], self._factory.vocab_size, self._factory.stop_ids)


class _LLGuidanceConstraint:
    def __init__(self, trace: GrammarTrace, matcher: Any, vocab_size: int) -> None:
        import torch

        self.trace = trace
        self._matcher = matcher
        self._bitmask = torch.zeros(packed_width(vocab_size), dtype=torch.int32)

    def fill(self, packed: torch.Tensor) -> None:
        row = self._bitmask
        self._matcher.unsafe_compute_mask_ptr(row.data_ptr(), row.numel() * row.element_size())
        packed.copy_(row)

    def accept(self, token: int) -> None:
        if not self._matcher.consume_token(token):
            raise EngineError(f"llguidance rejected token {token}: {self._matcher.get_error()}")

    def finished(self) -> bool:
        return bool(self._matcher.is_stopped())

    def forced_tokens(self) -> list[int]:
        return list(self._matcher.compute_ff_tokens())


def unpack(packed: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """Bool ``[..., vocab_size]``: True where a token's bit is set in ``packed`` (``[..., W]`` int32).

    Token ``32 w + k`` is bit ``k`` of word ``w``. On a little-endian machine that is bit ``k % 8``
    of the word's byte ``k // 8`` in memory, so the words are read as bytes and each byte spread
    into 8 flags: the temporaries are a byte per token, not the four an int32 shift takes, which
    matters when the trainer unpacks the sets of every trained position of a micro-batch at once.
    """
    import sys

    import torch

    if sys.byteorder == "little" and packed.is_contiguous():
        shifts = torch.arange(8, dtype=torch.uint8, device=packed.device)
        octets = packed.view(torch.uint8)
        bits = (octets.unsqueeze(-1) >> shifts).bitwise_and_(1).flatten(-2)
    else:
        shifts = torch.arange(32, dtype=torch.int32, device=packed.device)
        bits = ((packed.unsqueeze(-1) >> shifts) & 1).flatten(-2)
    return bits[..., :vocab_size].bool()


def only_stops_allowed(constraint: Constraint, vocab_size: int, stops: Collection[int]) -> bool:
    """Whether the grammar has nothing left to write but a stop token (the JSON is complete)."""
    import torch

    packed = torch.zeros(packed_width(vocab_size), dtype=torch.int32)
    constraint.fill(packed)
    return _allows_only(packed, vocab_size, stops)


def _allows_only(packed: torch.Tensor, vocab_size: int, tokens: Collection[int]) -> bool:
    """Whether the packed allowed set is not empty and holds nothing but ``tokens``."""
    allowed = unpack(packed, vocab_size).nonzero().flatten().tolist()
    return bool(allowed) and set(allowed) <= set(tokens)


def is_allowed(packed: torch.Tensor, token: int) -> bool:
    return bool((int(packed[token // 32]) >> (token % 32)) & 1)


def mask_logits(logits: torch.Tensor, packed: torch.Tensor) -> None:
    """Sets to -inf, in place, every logit whose token the packed allowed set leaves out.

    Logits may be wider than the bitmask (padded embeddings): the extra columns are never allowed.
    """
    import torch

    allowed = torch.zeros(logits.shape[-1], dtype=torch.bool, device=logits.device)
    bits = unpack(packed, min(logits.shape[-1], packed.shape[-1] * 32)).to(logits.device)
    allowed[: bits.shape[-1]] = bits
    logits.masked_fill_(~allowed, float("-inf"))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
