"""Fixed, seeded samples: ``--limit N --seed S`` picks the same items of a set every time.

Each set is shuffled by a generator seeded with ``"<seed>/<benchmark>"`` (string seeds are hashed
deterministically by :mod:`random`, unlike ``hash()``), and the first ``N`` are taken, so a larger
limit extends a smaller one's sample instead of drawing a new one: a run with ``--limit 100``
resumes a run with ``--limit 50``.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")


def sample(items: Sequence[T], limit: int | None, seed: int, *, name: str) -> list[T]:
    if limit is None or limit >= len(items):
        return list(items)
    order = list(range(len(items)))
    random.Random(f"{seed}/{name}").shuffle(order)
    return [items[i] for i in sorted(order[:limit])]
