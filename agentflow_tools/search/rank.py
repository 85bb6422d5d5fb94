"""Order passages for a query with the ranker a tool's settings name."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Literal

#: ``bm25``: word overlap, fast, no model. ``embeddings``: meaning, needs the ``embeddings`` extra.
Ranker = Literal["bm25", "embeddings"]


def rank(query: str, passages: Sequence[str], k: int, ranker: Ranker = "bm25") -> list[int]:
    """Indices of the ``k`` passages most relevant to ``query``, best first."""
    if ranker == "embeddings":
        from agentflow_tools.search.embeddings import rank_embeddings

        return rank_embeddings(query, passages, k)
    from agentflow_tools.search.bm25 import rank_bm25

    return rank_bm25(query, passages, k)


async def arank(query: str, passages: Sequence[str], k: int, ranker: Ranker = "bm25") -> list[int]:
    """``rank`` in a worker thread: ranking is CPU work and would stall the event loop."""
    return await asyncio.to_thread(rank, query, passages, k, ranker)
