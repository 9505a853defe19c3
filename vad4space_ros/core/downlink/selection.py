"""What a pass carries: a multiple-choice 0/1 knapsack over the byte budget.

Each candidate offers up to two mutually exclusive options, its full product and its thumbnail,
each with a byte size and a value; at most one option per candidate is taken, and the sum of the
chosen sizes must fit the budget ``B``. Dynamic programming over byte *buckets*: sizes are
rounded **up** to multiples of ``q = max(1, ceil(B / max_buckets))`` and the capacity is
``floor(B / q)`` buckets, so every returned set fits the budget in real bytes. With ``q = 1``
(budgets up to ``max_buckets`` bytes) the solution is exactly optimal; otherwise it is optimal
for the rounded sizes, which can lose at most ``q - 1`` bytes per chosen option.
Time O(n · C) and memory O(n · C) bytes for the choice table (n candidates, C = B / q ≤
max_buckets buckets); e.g. 512 candidates × 4096 buckets ≈ 2 MB and a few ms with numpy.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
import math

import numpy as np


@dataclass(frozen=True)
class Option:
    """One way of sending a candidate: ``size`` bytes for ``value`` units of priority."""

    size: int
    value: float


@dataclass(frozen=True)
class Choice:
    """Candidate ``index`` is sent as option ``option`` (0 = first option offered)."""

    index: int
    option: int


def bucket_size(budget: int, max_buckets: int) -> int:
    """Return the byte quantum q used for a budget."""
    return max(1, math.ceil(budget / max_buckets))


def knapsack(candidates: Sequence[Sequence[Option]], budget: int,
             max_buckets: int = 4096) -> list[Choice]:
    """Pick at most one option per candidate maximising total value within ``budget`` bytes.

    Options with a non-positive value or that cannot fit are never chosen. Returns choices in
    candidate order.
    """
    if budget <= 0 or not candidates:
        return []
    quantum = bucket_size(budget, max_buckets)
    capacity = budget // quantum
    best = np.zeros(capacity + 1)  # best[c] = best value using at most c buckets
    taken = np.full((len(candidates), capacity + 1), -1, dtype=np.int8)
    for index, options in enumerate(candidates):
        updated = best.copy()
        for option_index, option in enumerate(options):
            weight = math.ceil(max(option.size, 1) / quantum)
            if option.value <= 0 or weight > capacity:
                continue
            with_option = best[:capacity + 1 - weight] + option.value
            better = with_option > updated[weight:]
            updated[weight:][better] = with_option[better]
            taken[index, weight:][better] = option_index
        best = updated
    choices = []
    remaining = capacity
    for index in range(len(candidates) - 1, -1, -1):
        option_index = int(taken[index, remaining])
        if option_index >= 0:
            choices.append(Choice(index, option_index))
            remaining -= math.ceil(max(candidates[index][option_index].size, 1) / quantum)
    return choices[::-1]
