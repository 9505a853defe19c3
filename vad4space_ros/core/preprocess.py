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
    """Stack RGB uint8 images into a resized, mean/std-normalised Bx3xHxW float tensor.

    Images already at ``input_size`` are prepared with NumPy alone (the same float32
    operations, so the same values): no torch kernel runs, so torch's worker threads do not
    compete with an ONNX Runtime or OpenVINO session for the cores.
    """
    rgb = [as_rgb(image) for image in images]
    if all(image.shape[:2] == tuple(input_size) for image in rgb):
        batch = np.empty((len(rgb), 3, *input_size), np.float32)
        for index, image in enumerate(rgb):
            batch[index] = image.transpose(2, 0, 1)
        batch /= np.float32(255.0)
        batch -= np.asarray(mean, np.float32).reshape(1, 3, 1, 1)
        batch /= np.asarray(std, np.float32).reshape(1, 3, 1, 1)
        return torch.from_numpy(batch)
    batch = []
    for image in rgb:
        tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)
        tensor = tensor.float().div_(255.0).unsqueeze(0)
        if tuple(tensor.shape[-2:]) != tuple(input_size):
            tensor = F.interpolate(tensor, size=tuple(input_size), mode='bilinear',
                                   align_corners=False, antialias=True)
        batch.append(tensor)
    stacked = torch.cat(batch)
    return ((stacked - torch.tensor(mean).view(1, 3, 1, 1))
            / torch.tensor(std).view(1, 3, 1, 1))
