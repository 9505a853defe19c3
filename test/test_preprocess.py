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

"""Model input preparation without torch reproduces the torch reference it replaced."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from vad4space_ros.deploy.preprocess import resize_map, to_model_input

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def reference(images: list[np.ndarray], size: tuple[int, int]) -> np.ndarray:
    """torch: antialiased bilinear resize of x / 255, then (x - mean) / std."""
    batch = torch.stack([torch.from_numpy(i).permute(2, 0, 1).float() / 255.0 for i in images])
    if tuple(batch.shape[-2:]) != size:
        batch = F.interpolate(batch, size=size, mode='bilinear', align_corners=False,
                              antialias=True)
    batch = (batch - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    return batch.numpy()


def test_images_at_model_size_are_normalised_exactly() -> None:
    """No resize needed: values equal the torch formula bit for bit; mono becomes RGB."""
    rng = np.random.default_rng(3)
    images = [rng.integers(0, 256, (48, 40, 3), dtype=np.uint8) for _ in range(3)]
    prepared = to_model_input(images, (48, 40), MEAN, STD)
    assert prepared.dtype == np.float32 and prepared.shape == (3, 3, 48, 40)
    np.testing.assert_array_equal(prepared, reference(images, (48, 40)))
    mono = images[0][:, :, 0]
    np.testing.assert_array_equal(to_model_input([mono], (48, 40), MEAN, STD)[0],
                                  reference([np.repeat(mono[:, :, None], 3, axis=2)],
                                            (48, 40))[0])


@pytest.mark.parametrize('shape', [(227, 227), (64, 64), (300, 200), (1200, 1600)])
def test_resizing_matches_torch_antialiased_bilinear(shape: tuple[int, int]) -> None:
    """Shrinking and enlarging give torch's values to float rounding."""
    image = np.random.default_rng(1).integers(0, 256, (*shape, 3), dtype=np.uint8)
    prepared = to_model_input([image], (128, 128), MEAN, STD)
    np.testing.assert_allclose(prepared, reference([image], (128, 128)), atol=1e-5)


def test_map_resize_matches_torch_bilinear() -> None:
    """Anomaly maps are brought to the image size as torch's bilinear (align_corners=False)."""
    grid = np.random.default_rng(2).random((32, 32)).astype(np.float32)
    for size in ((256, 256), (64, 48), (1200, 1600)):
        expected = F.interpolate(torch.from_numpy(grid)[None, None], size=size,
                                 mode='bilinear', align_corners=False)[0, 0].numpy()
        np.testing.assert_allclose(resize_map(grid, size), expected, atol=1e-5)


def test_bad_images_are_rejected() -> None:
    """Non-uint8 or empty input is an error naming the problem."""
    image = np.full((96, 80, 3), 128, np.uint8)
    with pytest.raises(ValueError, match='uint8'):
        to_model_input([image.astype(np.float32)], (48, 40), MEAN, STD)
    with pytest.raises(ValueError, match='empty'):
        to_model_input([np.zeros((0, 5, 3), np.uint8)], (48, 40), MEAN, STD)
