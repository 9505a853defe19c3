"""Model input preparation: the NumPy fast path gives the torch reference's exact values."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from vad4space_ros.core.preprocess import to_model_input

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def reference(images: list[np.ndarray]) -> torch.Tensor:
    """(x / 255 - mean) / std in torch float32, images already at model size."""
    batch = torch.stack([torch.from_numpy(i).permute(2, 0, 1).float() / 255.0 for i in images])
    return (batch - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)


def test_images_at_model_size_are_normalised_exactly() -> None:
    """No resize needed: values equal the torch formula bit for bit; mono becomes RGB."""
    rng = np.random.default_rng(3)
    images = [rng.integers(0, 256, (48, 40, 3), dtype=np.uint8) for _ in range(3)]
    prepared = to_model_input(images, (48, 40), MEAN, STD)
    assert prepared.dtype == torch.float32 and prepared.shape == (3, 3, 48, 40)
    assert torch.equal(prepared, reference(images))
    mono = images[0][:, :, 0]
    assert torch.equal(to_model_input([mono], (48, 40), MEAN, STD)[0],
                       reference([np.repeat(mono[:, :, None], 3, axis=2)])[0])


def test_other_sizes_are_resized_and_bad_images_rejected() -> None:
    """A larger image is resized to the model input; non-uint8 or empty input is an error."""
    image = np.full((96, 80, 3), 128, np.uint8)
    prepared = to_model_input([image], (48, 40), MEAN, STD)
    assert prepared.shape == (1, 3, 48, 40)
    assert torch.allclose(prepared, reference([image[:48, :40]]), atol=1e-6)
    with pytest.raises(ValueError, match='uint8'):
        to_model_input([image.astype(np.float32)], (48, 40), MEAN, STD)
    with pytest.raises(ValueError, match='empty'):
        to_model_input([np.zeros((0, 5, 3), np.uint8)], (48, 40), MEAN, STD)
