"""BM25 ranking with bm25s: English stop words removed, words stemmed with PyStemmer.

The same tokenization serves the throwaway index over one page's passages and the saved index
of ``local_search``, so a query means the same thing to both.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

from agentflow_tools.search.extras import need

#: Name of the Snowball stemmer used; recorded in saved indexes so queries are stemmed alike.
STEMMER = "english"


@functools.cache
def stemmer(name: str | None = STEMMER) -> Callable[[list[str]], list[str]] | None:
    """PyStemmer's ``stemWords`` for ``name``; ``None`` (no stemming) for no name."""
    if name is None:
        return None
    return need("Stemmer").Stemmer(name).stemWords


def tokenize_corpus(texts: Sequence[str], stemmer_name: str | None = STEMMER) -> Any:
    """bm25s ``Tokenized`` ids and vocabulary for ``texts``."""
    return need("bm25s").tokenize(list(texts), stopwords="en", stemmer=stemmer(stemmer_name), show_progress=False)


def query_terms(query: str, vocabulary: Any, stemmer_name: str | None = STEMMER) -> list[str]:
    """The query's terms that occur in ``vocabulary``; empty when nothing can match."""
    [terms] = need("bm25s").tokenize(
        [query], stopwords="en", stemmer=stemmer(stemmer_name), return_ids=False, show_progress=False
    )
    return [term for term in terms if term in vocabulary]


def rank_bm25(query: str, passages: Sequence[str], k: int) -> list[int]:
    """Indices of the ``k`` passages that best match ``query``, best first.

    Ties (including "no query word occurs anywhere") keep document order, so a page with no
    match still yields its opening passages, which usually say what the page is about.
    """
    in_order = list(range(min(k, len(passages))))
    tokenized = tokenize_corpus(passages)
    if not tokenized.vocab:  # nothing but stop words: bm25s cannot index that
        return in_order
    retriever = need("bm25s").BM25()
    retriever.index(tokenized, show_progress=False)
    terms = query_terms(query, retriever.vocab_dict)
    if not terms:
        return in_order
    scores = retriever.get_scores(terms)
    return sorted(range(len(passages)), key=lambda i: (-float(scores[i]), i))[:k]
