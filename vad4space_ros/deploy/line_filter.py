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

"""Line integration of anomaly maps: the best mean along a short straight line through a pixel.

A thin linear feature (a vein, a fracture) one or two pixels wide changes each of its pixels only
a little; an isotropic blur spreads it over its flanks and loses it. Averaging the map along a
line of ``length`` pixels, in each of :data:`ORIENTATIONS` directions, and keeping the best
direction per pixel adds up the pixels of a line (its mean stays, the noise of normal pixels
drops by about ``sqrt(length)``), while a compact blob keeps roughly its value in every
direction. NumPy/OpenCV only (it runs in the deploy runtime).
"""
from __future__ import annotations

import math

import cv2
import numpy as np

ORIENTATIONS = 8


def line_kernels(length: int, orientations: int = ORIENTATIONS) -> list[np.ndarray]:
    """Return ``orientations`` ``length x length`` kernels, each a rasterised line of weight 1.

    ``length`` must be odd and at least 3; the lines pass through the centre, evenly spaced in
    angle over half a turn.
    """
    if length < 3 or length % 2 == 0:
        raise ValueError(f'line length must be an odd number >= 3, got {length}')
    centre, reach = length // 2, length / 2.0 - 0.5
    kernels = []
    for step in range(orientations):
        angle = math.pi * step / orientations
        dx, dy = round(reach * math.cos(angle)), round(reach * math.sin(angle))
        kernel = np.zeros((length, length), np.float32)
        cv2.line(kernel, (centre - dx, centre - dy), (centre + dx, centre + dy), 1.0)
        kernels.append(kernel / kernel.sum())
    return kernels


def line_maximum(anomaly_map: np.ndarray, kernels: list[np.ndarray]) -> np.ndarray:
    """Return, per pixel, the largest mean of ``anomaly_map`` along any of the kernels' lines."""
    source = np.asarray(anomaly_map, np.float32)
    best = None
    for kernel in kernels:
        mean = cv2.filter2D(source, -1, kernel, borderType=cv2.BORDER_REPLICATE)
        best = mean if best is None else np.maximum(best, mean)
    return best
