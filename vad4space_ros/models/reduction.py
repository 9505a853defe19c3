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

"""Smaller fitted models that equal fitting with a smaller setting (the scores change).

- PaDiM channels: the covariance of a channel subset is the submatrix of the full
  (regularised) covariance, so keeping random channels equals fitting with ``n_features`` set
  to that count, with the same random selection rule.
- PatchCore memory bank: the greedy k-center coreset picks entries one at a time and the bank
  stores them in that order (:mod:`vad4space_ros.training.coreset`), so its first ``count``
  entries are the coreset a smaller ``coreset_sampling_ratio`` would have kept from the same
  patches. A smaller bank makes the nearest-neighbour search proportionally cheaper.

Both change the scores: refit the threshold on held-out normal images afterwards.
"""
from __future__ import annotations

import torch
from torch import nn


def reduce_padim_features(model: nn.Module, count: int, seed: int) -> list[int]:
    """Keep ``count`` random PaDiM channels in place; return the kept positions (sorted)."""
    channels = model.gaussian.mean.shape[0]
    if not 0 < count <= channels:
        raise ValueError(f'padim_features must be in 1..{channels}, got {count}')
    generator = torch.Generator().manual_seed(seed)
    keep = torch.sort(torch.randperm(channels, generator=generator)[:count]).values
    covariance = torch.linalg.inv(model.gaussian.inv_covariance.double())
    subset = covariance[:, keep][:, :, keep]
    model.gaussian.inv_covariance = torch.linalg.inv(subset).float()
    model.gaussian.mean = model.gaussian.mean[keep].clone()
    model.idx = model.idx[keep].clone()
    return keep.tolist()


def keep_bank_entries(model: nn.Module, count: int) -> None:
    """Keep the first ``count`` entries of a PatchCore memory bank, in place."""
    entries = model.memory_bank.shape[0]
    if not 0 < count <= entries:
        raise ValueError(f'bank_entries must be in 1..{entries}, got {count}')
    model.memory_bank = model.memory_bank[:count].clone()


def reduce_model(model: nn.Module, method: str, padim_features: int | None,
                 bank_entries: int | None, seed: int) -> str:
    """Apply the requested reductions in place; return the model_id suffix ('' for none)."""
    suffix = ''
    if padim_features is not None:
        if method != 'padim':
            raise ValueError('padim_features applies to PaDiM models only')
        reduce_padim_features(model, padim_features, seed)
        suffix += f'-f{padim_features}'
    if bank_entries is not None:
        if method != 'patchcore':
            raise ValueError('bank_entries applies to PatchCore models only')
        keep_bank_entries(model, bank_entries)
        suffix += f'-b{bank_entries}'
    return suffix
