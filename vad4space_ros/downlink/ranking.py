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

"""Priority = calibrated score with DEMUD-like redundancy suppression.

Greedy ranking (in the spirit of DEMUD, Wagstaff et al. 2013: each pick is judged relative to
what was already picked). Let ``M`` be the embeddings of recently released full products and
``S`` the items ranked so far. For every remaining item ``i``::

    s_i = max cosine similarity of e_i to M ∪ S          (0 when both are empty)
    r_i = clip((s_i - floor) / (1 - floor), 0, 1)         redundancy in [0, 1]
    priority_i = max(score_i, 0) * (1 - weight * r_i)

The item with the highest priority is ranked next (ties: input order), joins ``S``, and the
similarities of the others are updated. Ten near-identical frames therefore cost one slot at
full priority; the other nine drop to ``(1 - weight)`` of their score (for r = 1) and rank after
distinct anomalies. Items with an empty embedding, or one whose length differs from another's,
are never similar to it. Cost: O(n·(n + m)·d) for the similarity matrices plus O(n²) for the
greedy loop (n items, m remembered products, d embedding length).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

NO_MATCH = -1


@dataclass(frozen=True)
class Ranking:
    """Result of :func:`rank`: ``order`` lists input indices from best to worst.

    ``priority``, ``redundancy``, ``similarity`` (max cosine similarity when ranked, NaN if
    none) and ``similar_to`` are indexed by input index. ``similar_to`` is the input index of
    the most similar item ranked earlier, ``memory_offset + k`` for the k-th remembered
    product, or ``NO_MATCH``.
    """

    order: np.ndarray
    priority: np.ndarray
    redundancy: np.ndarray
    similarity: np.ndarray
    similar_to: np.ndarray
    memory_offset: int


def _unit_rows(vectors: Sequence[np.ndarray]) -> np.ndarray:
    """Stack equal-length vectors into unit-norm float32 rows (zero rows stay zero)."""
    matrix = np.asarray(np.stack(vectors), dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return np.divide(matrix, norms, out=np.zeros_like(matrix), where=norms > 0)


def similarity_matrix(rows: Sequence[np.ndarray], columns: Sequence[np.ndarray]) -> np.ndarray:
    """Cosine similarities of every row vector to every column vector.

    Pairs whose lengths differ, or that involve an empty vector, get -inf (never similar).
    """
    lengths = {len(vector) for vector in rows} | {len(vector) for vector in columns}
    if len(lengths) == 1 and 0 not in lengths:
        return _unit_rows(rows) @ _unit_rows(columns).T
    result = np.full((len(rows), len(columns)), -np.inf, dtype=np.float32)
    row_groups: dict[int, list[int]] = {}
    column_groups: dict[int, list[int]] = {}
    for index, vector in enumerate(rows):
        row_groups.setdefault(len(vector), []).append(index)
    for index, vector in enumerate(columns):
        column_groups.setdefault(len(vector), []).append(index)
    for length, row_index in row_groups.items():
        column_index = column_groups.get(length)
        if length == 0 or not column_index:
            continue
        block = _unit_rows([rows[i] for i in row_index]) @ _unit_rows(
            [columns[j] for j in column_index]).T
        result[np.ix_(row_index, column_index)] = block
    return result


def redundancy_of(similarity: np.ndarray, floor: float) -> np.ndarray:
    """Map max cosine similarities to redundancy r in [0, 1] (see module docstring)."""
    return np.clip((similarity - floor) / (1.0 - floor), 0.0, 1.0)


def rank(scores: Sequence[float], embeddings: Sequence[np.ndarray],
         memory: Sequence[np.ndarray], weight: float, floor: float) -> Ranking:
    """Rank items by redundancy-suppressed priority (greedy, see module docstring)."""
    count = len(scores)
    base = np.maximum(np.asarray(scores, dtype=np.float64), 0.0)
    similarity = np.full(count, -np.inf)
    similar_to = np.full(count, NO_MATCH, dtype=np.int64)
    if count and len(memory):
        to_memory = similarity_matrix(embeddings, memory)
        similar_to = np.where(np.isfinite(to_memory.max(axis=1)),
                              count + to_memory.argmax(axis=1), NO_MATCH)
        similarity = to_memory.max(axis=1).astype(np.float64)
    gram = similarity_matrix(embeddings, embeddings).astype(np.float64) if count else None
    remaining = np.ones(count, dtype=bool)
    order = np.empty(count, dtype=np.int64)
    redundancy = redundancy_of(similarity, floor)
    current = base * (1.0 - weight * redundancy)
    priority = np.zeros(count)
    picked_similarity = np.where(np.isfinite(similarity), similarity, np.nan)
    for step in range(count):
        pick = int(np.argmax(current))
        order[step] = pick
        priority[pick] = current[pick]
        current[pick] = -np.inf
        remaining[pick] = False
        closer = np.flatnonzero(remaining & (gram[pick] > similarity))
        if closer.size:
            similarity[closer] = gram[pick, closer]
            similar_to[closer] = pick
            redundancy[closer] = redundancy_of(similarity[closer], floor)
            current[closer] = base[closer] * (1.0 - weight * redundancy[closer])
            picked_similarity[closer] = similarity[closer]
    return Ranking(order, priority, redundancy, picked_similarity, similar_to, count)
