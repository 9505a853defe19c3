"""Image preparation shared by fitting and inference: RGB uint8 in, normalised tensors out."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch.nn import functional as F


def as_rgb(image: np.ndarray) -> np.ndarray:
    """Return an HxWx3 uint8 view of a mono/RGB image; raise ValueError for anything else."""
    array = np.asarray(image)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f'expected an HxW or HxWx3 image, got shape {array.shape}')
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError('image is empty')
    if array.dtype != np.uint8:
        raise ValueError(f'expected uint8 pixels, got {array.dtype}')
    return array


def to_model_input(images: Sequence[np.ndarray], input_size: tuple[int, int],
                   mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """Stack RGB uint8 images into a resized, mean/std-normalised Bx3xHxW float tensor."""
    batch = []
    for image in images:
        tensor = torch.from_numpy(np.ascontiguousarray(as_rgb(image))).permute(2, 0, 1)
        tensor = tensor.float().div_(255.0).unsqueeze(0)
        if tuple(tensor.shape[-2:]) != tuple(input_size):
            tensor = F.interpolate(tensor, size=tuple(input_size), mode='bilinear',
                                   align_corners=False, antialias=True)
        batch.append(tensor)
    stacked = torch.cat(batch)
    return ((stacked - torch.tensor(mean).view(1, 3, 1, 1))
            / torch.tensor(std).view(1, 3, 1, 1))
