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

"""The scalable fits: PatchCore's fast coreset and PaDiM's streaming statistics vs anomalib."""
from anomalib.models.components import KCenterGreedy
from anomalib.models.components.stats import MultiVariateGaussian
import numpy as np
import pytest
import torch

from vad4space_ros.training.coreset import greedy_k_center, select_coreset
from vad4space_ros.training.padim_stats import fit_streaming_gaussian, make_streaming


def _embedding(seed: int, rows: int = 1500, dims: int = 48) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(rows, dims, generator=generator) * torch.linspace(0.2, 2.0, dims)


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_coreset_selects_exactly_what_anomalib_selects(seed):
    embedding = _embedding(seed)
    torch.manual_seed(seed)
    np.random.seed(seed)
    expected = KCenterGreedy(embedding, 0.1).select_coreset_idxs()
    torch.manual_seed(seed)
    np.random.seed(seed)
    assert select_coreset(embedding, 0.1, progress=False) == expected


def test_each_selected_point_is_the_farthest_from_those_before_it():
    features = _embedding(5, rows=3000, dims=16).numpy()
    chosen = greedy_k_center(features, 200, start=7, candidates=64)
    assert len(set(chosen)) == 200 and chosen[0] == 7
    points = features.astype(np.float64)
    nearest = np.linalg.norm(points - points[7], axis=1)
    for index in chosen[1:]:
        assert nearest[index] >= nearest.max() * (1 - 1e-5)
        nearest = np.minimum(nearest, np.linalg.norm(points - points[index], axis=1))


def test_coreset_rejects_an_empty_selection():
    with pytest.raises(ValueError, match='empty'):
        select_coreset(_embedding(0, rows=5), 0.1, progress=False)


class _PadimLike(torch.nn.Module):
    """The two attributes of anomalib's PadimModel that the streaming fit uses."""

    def __init__(self) -> None:
        super().__init__()
        self.gaussian = MultiVariateGaussian()
        self.memory_bank = []


def test_streaming_padim_statistics_equal_anomalibs():
    generator = torch.Generator().manual_seed(0)
    batches = [torch.randn(size, 12, 4, 5, generator=generator) * 3.0 + 5.0
               for size in (7, 16, 1, 9)]
    reference = MultiVariateGaussian()
    reference.fit(torch.vstack(batches))
    model = _PadimLike()
    make_streaming(model)
    for batch in batches:
        model.memory_bank.append(batch)
    assert len(model.memory_bank) == 33
    model.fit()
    torch.testing.assert_close(model.gaussian.mean, reference.mean, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(model.gaussian.inv_covariance, reference.inv_covariance,
                               rtol=1e-4, atol=1e-5)
    assert len(model.memory_bank) == 0


def test_streaming_padim_rejects_mismatched_or_missing_embeddings():
    model = _PadimLike()
    make_streaming(model)
    with pytest.raises(ValueError, match='empty'):
        fit_streaming_gaussian(model)
    model.memory_bank.append(torch.zeros(2, 3, 2, 2))
    with pytest.raises(ValueError, match='differs'):
        model.memory_bank.append(torch.zeros(2, 4, 2, 2))
