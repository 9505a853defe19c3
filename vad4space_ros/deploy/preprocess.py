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

"""Image preparation shared by fitting and inference: RGB uint8 in, normalised arrays out.

NumPy and Pillow only. A model fitted with a decorrelation stretch (``DecorrelationStretch``,
the colour enhancement planetary imaging teams use to bring out subtle colour differences)
applies it to the [0, 1] pixels first, in fitting and inference alike. Resizing an image to
the model input uses Pillow's bilinear filter on float32 planes, which is antialiased when
shrinking (a triangle filter over the source pixels, the filter torch's
``interpolate(..., antialias=True)`` reproduces). Anomaly maps are brought to the image size
with OpenCV's bilinear interpolation (pixel centres aligned, like torch's
``align_corners=False``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import cv2
import numpy as np
from PIL import Image


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


@dataclass(frozen=True)
class DecorrelationStretch:
    """Per-pixel colour transform ``clip(matrix @ (rgb - mean) + mean, 0, 1)`` on [0, 1] RGB.

    Fitted on normal training pixels (``training/colour_stretch.py``), it equalises the
    variance along the pixels' principal colour axes, so chroma differences that brightness
    dwarfs reach the backbone amplified. Stored in the model metadata under
    ``normalisation.decorrelation_stretch``.
    """

    mean: tuple[float, float, float]
    matrix: tuple[tuple[float, float, float], ...]

    METADATA_KEY = 'decorrelation_stretch'

    @classmethod
    def from_normalisation(cls, normalisation: Mapping[str, Any]) -> 'DecorrelationStretch | None':
        """Read the stretch of a model's ``normalisation`` metadata (None when it has none).

        Raises ValueError when the entry is not a 3-vector and a finite 3x3 matrix.
        """
        entry = normalisation.get(cls.METADATA_KEY)
        if entry is None:
            return None
        mean = np.asarray(entry['mean'], np.float64)
        matrix = np.asarray(entry['matrix'], np.float64)
        if mean.shape != (3,) or matrix.shape != (3, 3) or not (
                np.isfinite(mean).all() and np.isfinite(matrix).all()):
            raise ValueError('decorrelation_stretch needs a 3-value mean and a finite 3x3 matrix')
        return cls(tuple(mean.tolist()), tuple(tuple(row) for row in matrix.tolist()))

    def to_metadata(self) -> dict[str, list]:
        """Return the JSON-ready metadata entry."""
        return {'mean': list(self.mean), 'matrix': [list(row) for row in self.matrix]}

    def apply(self, planes: np.ndarray) -> np.ndarray:
        """Stretch 3xHxW float32 planes in [0, 1]; return new planes, clipped to [0, 1]."""
        mean = np.asarray(self.mean, np.float32).reshape(3, 1, 1)
        matrix = np.asarray(self.matrix, np.float32)
        stretched = np.tensordot(matrix, planes - mean, axes=1) + mean
        return np.clip(stretched, 0.0, 1.0, out=stretched)


def resize_plane(plane: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize one float32 HxW plane to ``size`` (height, width) with antialiased bilinear."""
    height, width = size
    resized = Image.fromarray(np.ascontiguousarray(plane, np.float32), mode='F').resize(
        (width, height), Image.Resampling.BILINEAR)
    return np.asarray(resized, np.float32)


def to_model_input(images: Sequence[np.ndarray], input_size: tuple[int, int],
                   mean: Sequence[float], std: Sequence[float],
                   stretch: DecorrelationStretch | None = None) -> np.ndarray:
    """Stack RGB uint8 images into a resized, mean/std-normalised Bx3xHxW float32 array.

    ``stretch`` (when given) is applied to each image's [0, 1] pixels before resizing.
    """
    size = tuple(input_size)
    batch = np.empty((len(images), 3, *size), np.float32)
    for index, image in enumerate(images):
        planes = as_rgb(image).transpose(2, 0, 1).astype(np.float32)
        planes /= np.float32(255.0)
        if stretch is not None:
            planes = stretch.apply(planes)
        if planes.shape[1:] != size:
            planes = np.stack([resize_plane(plane, size) for plane in planes])
        batch[index] = planes
    batch -= np.asarray(mean, np.float32).reshape(1, 3, 1, 1)
    batch /= np.asarray(std, np.float32).reshape(1, 3, 1, 1)
    return batch


def model_input(images: Sequence[np.ndarray], metadata: Mapping[str, Any]) -> np.ndarray:
    """:func:`to_model_input` as a model file describes it: input size, mean/std, stretch."""
    normalisation = metadata['normalisation']
    return to_model_input(images, metadata['input_size'], normalisation['mean'],
                          normalisation['std'],
                          DecorrelationStretch.from_normalisation(normalisation))


def resize_map(anomaly_map: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bring an HxW float map to ``size`` (height, width) with bilinear interpolation."""
    values = np.asarray(anomaly_map, np.float32)
    if values.shape == tuple(size):
        return values
    return cv2.resize(values, (int(size[1]), int(size[0])), interpolation=cv2.INTER_LINEAR)
