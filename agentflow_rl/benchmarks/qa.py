"""Open-domain QA scoring: normalised exact match and token F1 against every gold alias.

As in Search-R1 and the HotpotQA evaluation script: a reply is correct when one of its answer
spans (see :func:`~agentflow_rl.benchmarks.extract.candidates`) normalises to the same string as one
gold alias; token F1 is the graded value, best over spans and aliases. Two numbers that are equal
(``138,535`` and ``138535``) also match. This is stricter than the paper's GPT-4o judge: a right
answer buried in a sentence scores F1, not EM (``--judge-engine`` reports the judge's view beside it).

>>> from agentflow_core import BenchmarkItem
>>> item = BenchmarkItem("demo", "0", "Who wrote Dune?", answers=("Frank Herbert",))
>>> score_qa(item, "Frank Herbert. He published it in 1965.").correct
True
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from agentflow_core import BenchmarkItem, Score
from agentflow_rl.benchmarks.extract import candidates
from agentflow_rl.benchmarks.normalize import answer_tokens, as_number, normalize_answer


def exact_match(prediction: str, golds: Iterable[str]) -> bool:
    normalized = normalize_answer(prediction)
    number = as_number(prediction)
    for gold in golds:
        gold_number = as_number(gold)
        if number is not None and gold_number is not None:
            if number == gold_number:  # numbers compare as numbers: "1.5" is not "15", though both normalise so
                return True
        elif normalized and normalize_answer(gold) == normalized:
            return True
    return False


def token_f1(prediction: str, golds: Iterable[str]) -> float:
    """The best token-overlap F1 over the gold aliases.

    As in the HotpotQA script, yes/no/noanswer golds score only on an exact match: a long reply
    that happens to contain "no" must not earn partial credit.
    """
    predicted = answer_tokens(prediction)
    best = 0.0
    for gold in golds:
        wanted = answer_tokens(gold)
        if normalize_answer(gold) in ("yes", "no", "noanswer") and predicted != wanted:
            continue
        common = sum((Counter(predicted) & Counter(wanted)).values())
        if common == 0:
            continue
        precision, recall = common / len(predicted), common / len(wanted)
        best = max(best, 2 * precision * recall / (precision + recall))
    return best


def score_qa(item: BenchmarkItem, response: str) -> Score:
    spans = candidates(response)
    for span in spans:
        if exact_match(span, item.answers):
            return Score(correct=True, value=1.0, method="exact_match", extracted=span)
    f1 = max((token_f1(span, item.answers) for span in spans), default=0.0)
    return Score(correct=False, value=f1, method="exact_match", extracted=spans[0] if spans else "")
