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

"""Streaming PaDiM statistics: running mean and covariance per patch position.

anomalib's PadimModel keeps every training embedding (``N x C x H x W`` float32: 5 GB for the
2,125 LROC training chips at 256 px with all 152 channels) and fits the Gaussians at the end.
:class:`RunningPatchGaussian` takes its place as the model's ``memory_bank``: each batch is
merged into a running mean and centred sum of outer products (Chan et al.'s pairwise update), so
memory stays at the size of the result (``C x C x H x W``) whatever the training set size.
:func:`fit_streaming_gaussian` then sets the model's mean and inverse covariance exactly as
anomalib's ``MultiVariateGaussian`` does (unbiased covariance ``+ 0.01 I``, then ``+ 1e-5 I``),
equal to its result to float tolerance (tested).
"""
from __future__ import annotations

import torch


class RunningPatchGaussian:
    """Running mean and centred second moment of ``(B, C, H, W)`` embeddings, per position."""

    def __init__(self) -> None:
        self.count = 0
        self.mean: torch.Tensor | None = None  # (C, H*W)
        self.scatter: torch.Tensor | None = None  # (H*W, C, C), centred sums of outer products

    def __len__(self) -> int:
        """Return the number of embeddings merged so far."""
        return self.count

    def append(self, embeddings: torch.Tensor) -> None:
        """Merge one batch of embeddings (the list API anomalib's forward uses)."""
        batch, channels, height, width = embeddings.shape
        vectors = embeddings.detach().reshape(batch, channels, height * width).float()
        batch_mean = vectors.mean(dim=0)
        centred = vectors - batch_mean
        batch_scatter = torch.einsum('bcl,bdl->lcd', centred, centred)
        if self.mean is None:
            self.count, self.mean, self.scatter = batch, batch_mean, batch_scatter
            return
        if batch_mean.shape != self.mean.shape:
            raise ValueError(f'embedding shape {tuple(embeddings.shape[1:])} differs from the '
                             f'earlier batches ({channels} channels x {height * width} positions '
                             f'expected {tuple(self.mean.shape)})')
        total = self.count + batch
        delta = batch_mean - self.mean
        self.scatter += batch_scatter + torch.einsum('cl,dl->lcd', delta, delta) * (
            self.count * batch / total)
        self.mean += delta * (batch / total)
        self.count = total

    def covariance(self) -> torch.Tensor:
        """Return the unbiased covariance per position, ``(H*W, C, C)``."""
        if self.count < 2:
            raise ValueError(f'need at least 2 training embeddings, got {self.count}')
        return self.scatter / (self.count - 1)


def fit_streaming_gaussian(model: torch.nn.Module) -> None:
    """Fit a PadimModel's Gaussian from its :class:`RunningPatchGaussian` (its ``fit``)."""
    stats = model.memory_bank
    if len(stats) == 0:
        raise ValueError('no training embeddings: the memory bank is empty')
    channels = stats.mean.shape[0]
    identity = torch.eye(channels)
    covariance = stats.covariance() + 0.01 * identity + 1e-5 * identity
    model.gaussian.mean = stats.mean.clone()
    model.gaussian.inv_covariance = torch.linalg.inv(covariance)
    model.memory_bank = RunningPatchGaussian()


def make_streaming(model: torch.nn.Module) -> None:
    """Make a PadimModel accumulate running statistics instead of storing its embeddings."""
    model.memory_bank = RunningPatchGaussian()
    model.fit = lambda: fit_streaming_gaussian(model)
