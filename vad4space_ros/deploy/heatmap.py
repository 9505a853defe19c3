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

"""Colour-mapped anomaly-map overlays for display (ROS-free).

**Normalisation.** A map is brought to 0..1 with a fixed range ``(low, high)`` before colouring:
``(map - low) / (high - low)``, clipped. With a fixed range the colours mean the same thing in
every frame (a uniformly normal frame stays blue) — the detector node passes the model's
calibrated range (see :func:`map_range_from_calibration`). When no range is given the map is
stretched to its own min..max, which makes the hottest pixel of every frame red, normal or not;
that mode only suits looking at one image in isolation.

The colour map is OpenCV's JET (blue = low, red = high); the overlay is
``(1 - alpha) * image + alpha * colour`` per pixel, returned as HxWx3 uint8 RGB (``rgb8``).
"""
from __future__ import annotations

import numpy as np


class HeatmapError(ValueError):
    """The map or image cannot be rendered (shape mismatch, bad range or alpha)."""


def normalise_map(anomaly_map: np.ndarray,
                  value_range: tuple[float, float] | None = None) -> np.ndarray:
    """Return the map scaled to 0..1 (float32) with the fixed range, or its own min..max."""
    values = np.asarray(anomaly_map, dtype=np.float32)
    if values.ndim != 2 or values.size == 0:
        raise HeatmapError(f'anomaly map must be a non-empty HxW array, got shape {values.shape}')
    values = np.nan_to_num(values, nan=0.0, posinf=np.finfo(np.float32).max, neginf=0.0)
    if value_range is None:
        low, high = float(values.min()), float(values.max())
    else:
        low, high = (float(v) for v in value_range)
        if not (np.isfinite(low) and np.isfinite(high)) or high <= low:
            raise HeatmapError(f'map range must be finite with high > low, got {value_range}')
    if high <= low:
        return np.zeros_like(values)
    return np.clip((values - low) / (high - low), 0.0, 1.0)


def map_range_from_calibration(threshold_raw: float, normal_raw: float) -> tuple[float, float]:
    """Return a fixed display range from a calibration: typical normal blue, 2x threshold red.

    ``normal_raw`` is the raw value of a typical normal pixel and ``threshold_raw`` the raw
    decision threshold; the threshold lands in the middle of the colour scale (green).
    """
    span = threshold_raw - normal_raw
    if not np.isfinite(span) or span <= 0:
        raise HeatmapError(
            f'calibration needs threshold_raw > normal_raw, got {threshold_raw} <= {normal_raw}')
    return normal_raw, threshold_raw + span


def colorize(normalised: np.ndarray) -> np.ndarray:
    """Colour a 0..1 map with the JET colour map; return HxWx3 uint8 RGB."""
    import cv2

    levels = np.rint(np.clip(normalised, 0.0, 1.0) * 255).astype(np.uint8)
    return cv2.applyColorMap(levels, cv2.COLORMAP_JET)[:, :, ::-1].copy()


def _as_rgb(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise HeatmapError(f'background image must be uint8, got {image.dtype}')
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim == 3 and image.shape[2] == 3:
        return image
    raise HeatmapError(f'background image must be HxW or HxWx3, got shape {image.shape}')


def overlay(image: np.ndarray, anomaly_map: np.ndarray, alpha: float = 0.5,
            value_range: tuple[float, float] | None = None) -> np.ndarray:
    """Blend the colour-mapped map over the image (grey or RGB uint8); return rgb8 HxWx3.

    A map of a different size than the image (for example at model resolution) is resized to
    the image with bilinear interpolation.
    """
    import cv2

    if not 0.0 <= alpha <= 1.0:
        raise HeatmapError(f'alpha must be in [0, 1], got {alpha}')
    background = _as_rgb(image)
    values = np.asarray(anomaly_map, dtype=np.float32)
    if values.ndim != 2 or values.size == 0:
        raise HeatmapError(f'anomaly map must be a non-empty HxW array, got shape {values.shape}')
    height, width = background.shape[:2]
    if values.shape != (height, width):
        values = cv2.resize(values, (width, height), interpolation=cv2.INTER_LINEAR)
    colours = colorize(normalise_map(values, value_range)).astype(np.float32)
    blended = (1.0 - alpha) * background.astype(np.float32) + alpha * colours
    return np.clip(np.rint(blended), 0, 255).astype(np.uint8)
