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

"""PatchCore's greedy k-center coreset, the same selection as anomalib's but much faster.

anomalib's ``KCenterGreedy`` projects the memory bank with a sparse random projection
(``eps=0.9``; for a few hundred thousand patches that is ~330 dimensions, *more* than
MobileNetV2's 128 channels of levels 2-3) and then, once per selected patch, recomputes the
distance of every patch to the new centre. At 2,656 LROC chips (~680k patches, a 68k coreset)
that is hours of memory-bound passes on a 2-core CPU.

:func:`select_coreset` keeps anomalib's result and changes only the arithmetic:

* the same projection (same random calls, so the same matrix and start point for the same torch
  and numpy random state) is applied as an *isometry of the original space*: with the projection
  ``P`` (k x d), ``|P(x - c)|^2 = (x - c)^T G (x - c)`` with ``G = P^T P``; writing
  ``G = L L^T`` gives features ``x L`` of at most ``d`` dimensions with the same distances;
* batched passes: instead of one memory-bound pass over all patches per selected patch, one
  pass (a compute-bound matrix product) per *batch* of selections. Between passes the greedy
  search runs on the few thousand farthest patches, which is exact as long as the best of them
  is farther than every other patch can be (distances only shrink as centres are added); see
  :func:`greedy_k_center`. Patches are compared with new centres lazily, only when they could
  be among the farthest (:class:`_LazyDistances`).

Ties aside (equal float distances), the selected indices equal anomalib's; a test checks this on a
small set. Distances are computed as ``|x|^2 + |c|^2 - 2 x.c`` in float32 on mean-centred
features, not as anomalib's ``norm(x - c)``, so a near-tie can resolve differently.
"""
from __future__ import annotations

import logging
import time
from typing import Callable

from anomalib.models.components.dimensionality_reduction import SparseRandomProjection
import numpy as np
from threadpoolctl import threadpool_limits
import torch
from tqdm import tqdm

logger = logging.getLogger(__name__)

CANDIDATES = 8192  # rows kept with exact distances between full passes
PASS_COLUMNS = 4096  # centres per matrix product of a refresh (bounds its temporary memory)
PROJECTION_EPS = 0.9  # anomalib KCenterGreedy's SparseRandomProjection(eps=0.9)


def isometric_features(embedding: torch.Tensor, projection: torch.Tensor) -> np.ndarray:
    """Return ``embedding`` mapped so Euclidean distances equal those after ``projection``.

    ``projection`` is anomalib's dense ``(k, d)`` projection matrix; the result has at most
    ``min(k, d)`` columns, is mean-centred (distances are unchanged) and float32.
    """
    matrix = projection.double()
    gram = matrix.T @ matrix
    values, vectors = torch.linalg.eigh(gram)
    keep = values > values.max() * 1e-10
    factor = vectors[:, keep] * values[keep].sqrt()
    data = embedding.double()
    data = data - data.mean(dim=0)
    return (data @ factor).float().numpy()


class _LazyDistances:
    """Upper bounds of every row's squared distance to the chosen centres, exact on demand.

    Row ``i`` has been compared with the first ``seen[i]`` centres only; its ``nearest`` value
    is then an upper bound (distances only shrink as centres are added). :meth:`refresh` brings
    given rows up to date with one matrix product per group of rows that saw the same centres.
    Most rows soon lie well inside the coreset and are never refreshed again.
    """

    def __init__(self, features: np.ndarray) -> None:
        self.features = features
        self.squares = np.einsum('ij,ij->i', features, features)
        self.nearest = np.full(features.shape[0], np.inf, dtype=np.float32)
        self.seen = np.zeros(features.shape[0], dtype=np.int64)
        self.centres: list[int] = []

    def refresh(self, rows: np.ndarray) -> None:
        """Compare ``rows`` with every centre they have not seen yet."""
        done = len(self.centres)
        centres = np.asarray(self.centres)
        for seen in np.unique(self.seen[rows]):
            group = rows[self.seen[rows] == seen]
            for start in range(seen, done, PASS_COLUMNS):
                columns = centres[start:min(start + PASS_COLUMNS, done)]
                distances = (self.squares[group, None] + self.squares[None, columns]
                             - 2.0 * (self.features[group] @ self.features[columns].T))
                self.nearest[group] = np.minimum(self.nearest[group], distances.min(axis=1))
            self.seen[group] = done

    def exact_top(self, count: int) -> tuple[np.ndarray, float]:
        """Return the ``count`` farthest rows (exact) and a bound on every other row."""
        rows = self.nearest.size
        while True:
            order = np.argpartition(self.nearest, rows - count - 1)
            top = order[rows - count:]
            stale = top[self.seen[top] < len(self.centres)]
            if not stale.size:
                return top, float(self.nearest[order[rows - count - 1]])
            self.refresh(stale)


def greedy_k_center(features: np.ndarray, count: int, start: int,
                    candidates: int = CANDIDATES,
                    on_selected: Callable[[int], None] | None = None) -> list[int]:
    """Select ``count`` rows of ``features`` greedily by largest distance to those chosen.

    Starts from row ``start``; returns the indices in selection order (the start first), as
    anomalib's ``KCenterGreedy.select_coreset_idxs``. ``on_selected`` is called with the number
    selected so far (for progress).

    Exact batched search: the ``candidates`` farthest rows are brought up to date (see
    :class:`_LazyDistances`); every other row is bounded by the largest distance outside them.
    The greedy choice continues inside the candidates, whose distances are lowered after every
    choice, for as long as the best candidate is farther than that bound: it is then the global
    farthest row. When it no longer is, the candidates are chosen anew.
    """
    rows = features.shape[0]
    if not 0 < count <= rows:
        raise ValueError(f'coreset size must be in 1..{rows}, got {count}')
    if not 0 <= start < rows:
        raise ValueError(f'start index {start} outside 0..{rows - 1}')
    state = _LazyDistances(features)
    squares = state.squares
    selected = [start]
    state.centres.append(start)
    state.refresh(np.arange(rows))
    with threadpool_limits(1):  # many small products: a second thread only adds waiting
        while len(selected) < count:
            if candidates < rows:
                pool, bound = state.exact_top(candidates)
            else:
                pool, bound = np.arange(rows), -np.inf
            pool_features = features[pool]
            pool_squares = squares[pool]
            pool_nearest = state.nearest[pool].copy()
            while len(selected) < count:
                best = int(np.argmax(pool_nearest))
                if pool_nearest[best] <= bound:
                    break  # a row outside the pool may be farther: choose the pool anew
                index = int(pool[best])
                selected.append(index)
                state.centres.append(index)
                distances = pool_squares + squares[index] - 2.0 * (pool_features @ features[index])
                np.minimum(pool_nearest, distances, out=pool_nearest)
                pool_nearest[best] = 0.0
                if on_selected is not None:
                    on_selected(len(selected))
            state.nearest[pool] = pool_nearest  # compared with every centre chosen so far
            state.seen[pool] = len(selected)
    return selected


def select_coreset(embedding: torch.Tensor, sampling_ratio: float,
                   progress: bool = True) -> list[int]:
    """Return anomalib ``KCenterGreedy(embedding, sampling_ratio)``'s coreset indices, faster.

    Draws the projection and the start point with the same random calls as anomalib 2.7.0.
    """
    rows = embedding.shape[0]
    count = int(rows * sampling_ratio)
    if count <= 0:
        raise ValueError(f'coreset of {rows} patches at ratio {sampling_ratio} is empty')
    began = time.perf_counter()
    projector = SparseRandomProjection(eps=PROJECTION_EPS).fit(embedding)
    features = isometric_features(embedding, projector.sparse_random_matrix)
    start = int(torch.randint(high=rows, size=(1,)).squeeze())
    with tqdm(total=count, desc='coreset', unit='patch', disable=not progress,
              mininterval=2.0) as bar:
        indices = greedy_k_center(features, count, start,
                                  on_selected=lambda done: bar.update(done - bar.n))
    logger.info('coreset: %d of %d patches (%d dims) in %.1f s', count, rows,
                features.shape[1], time.perf_counter() - began)
    return indices


def subsample_memory_bank(model: torch.nn.Module, sampling_ratio: float,
                          progress: bool = True) -> None:
    """Replace a PatchcoreModel's stored embeddings by their coreset (its subsample_embedding)."""
    if len(model.embedding_store) == 0:
        raise ValueError('embedding store is empty: no training patches to select a coreset from')
    bank = torch.vstack(model.embedding_store)
    model.embedding_store.clear()
    model.memory_bank = bank[select_coreset(bank, sampling_ratio, progress)]
