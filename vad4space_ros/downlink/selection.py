# Copyright 2026 The vad4space_ros Authors
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.

"""What a pass carries: a 0/1 knapsack over the byte budget.

Each candidate product has a byte size and a value (its priority); the chosen set maximises the
total value while the sum of the sizes fits the budget ``B``. Dynamic programming over byte
*buckets*: sizes are rounded **up** to multiples of ``q = max(1, ceil(B / max_buckets))`` and
the capacity is ``floor(B / q)`` buckets, so every returned set fits the budget in real bytes.
With ``q = 1`` (budgets up to ``max_buckets`` bytes) the solution is exactly optimal; otherwise
it is optimal for the rounded sizes, which can lose at most ``q - 1`` bytes per chosen product;
a greedy pass (best value per byte first) then adds products into the bytes lost to rounding.
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
    """Sending a product costs ``size`` bytes and gains ``value`` (its priority)."""

    size: int
    value: float


def bucket_size(budget: int, max_buckets: int) -> int:
    """Return the byte quantum q used for a budget."""
    return max(1, math.ceil(budget / max_buckets))


def knapsack(options: Sequence[Option], budget: int, max_buckets: int = 4096) -> list[int]:
    """Return the indices (ascending) of the options maximising total value within ``budget``.

    Options with a non-positive value or that cannot fit are never chosen.
    """
    if budget <= 0 or not options:
        return []
    quantum = bucket_size(budget, max_buckets)
    capacity = budget // quantum
    weights = [math.ceil(max(option.size, 1) / quantum) for option in options]
    best = np.zeros(capacity + 1)  # best[c] = best value using at most c buckets
    taken = np.zeros((len(options), capacity + 1), dtype=bool)
    for index, (option, weight) in enumerate(zip(options, weights)):
        if option.value <= 0 or weight > capacity:
            continue
        with_option = best[:capacity + 1 - weight] + option.value
        better = with_option > best[weight:]
        taken[index, weight:] = better
        best[weight:] = np.where(better, with_option, best[weight:])
    chosen = []
    remaining = capacity
    for index in range(len(options) - 1, -1, -1):
        if taken[index, remaining]:
            chosen.append(index)
            remaining -= weights[index]
    return sorted(chosen + _fill(options, chosen, budget))


def _fill(options: Sequence[Option], chosen: list[int], budget: int) -> list[int]:
    """Greedily add options (best value per byte first) into the bytes lost to rounding."""
    left = budget - sum(options[index].size for index in chosen)
    added = []
    taken = set(chosen)
    for index in sorted(range(len(options)), key=lambda i: -options[i].value / max(
            options[i].size, 1)):
        if index not in taken and options[index].value > 0 and options[index].size <= left:
            added.append(index)
            left -= options[index].size
    return added
