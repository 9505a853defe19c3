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

"""SYNTHETIC lunar chipouts in the style of LROCNet (227x227 grayscale JPEG).

Each chipout is rendered from a height field and an albedo field lit by a low sun:

* terrain: fractal (1/f^beta) regolith relief plus a few small background craters, so ``none``
  chips are not featureless;
* ``ejecta``: a fresh bowl crater (depth ~0.2 of its diameter, sharp raised rim) with a bright
  continuous ejecta blanket and radial rays in the albedo;
* ``oldcrater``: a shallow crater whose rim and walls are smoothed away (degraded), partly
  infilled, with no bright ejecta;
* ``subtlety`` (0 = the default look above, towards 1 = barely visible; ``None`` = 0 with the
  exact files of earlier versions) makes each anomaly class harder without changing any random
  draw: ``ejecta`` blanket and ray brightness scale by ``1 - s`` and their reach (e-folding
  lengths) by ``1 - 0.7 s``; ``oldcrater`` depth and rim scale by ``1 - s``, its burial (the
  infilled floor) rises towards the rim and its smoothing widens by ``1 + s``. At ``s = 1`` an
  old crater vanishes into the terrain and ejecta leave a bare fresh bowl;
* shading: Lommel-Seeliger-like reflectance for a sun at a random azimuth and 45-78 degrees
  incidence (the class never sets the light), random gain/offset and sensor noise.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter

from vad4space_ros.data.procedural import check_subtlety, fractal_noise

CHIP_SIZE = 227
WORK_SIZE = 256
JPEG_QUALITY = 90


def _crater_height(radius_map: np.ndarray, radius: float, depth: float,
                   rim: float) -> np.ndarray:
    """Return a bowl with a raised rim and an r^-3 falloff outside (fresh crater profile)."""
    rr = radius_map / radius
    inside = depth * (rr ** 2 - 1.0) + rim
    outside = rim * np.clip(rr, 1.0, None) ** -3
    return np.where(rr < 1.0, inside, outside)


_GRID_Y, _GRID_X = np.mgrid[0:WORK_SIZE, 0:WORK_SIZE].astype(np.float64)


def _polar(center: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    dy, dx = _GRID_Y - center[0], _GRID_X - center[1]
    return np.hypot(dy, dx), np.arctan2(dy, dx)


def _background_craters(rng: np.random.Generator, height: np.ndarray) -> None:
    """Add small craters, each computed in a window around it (the r^-3 tail is cut off)."""
    for _ in range(rng.poisson(5)):
        radius = rng.uniform(2.0, 9.0)
        cy, cx = rng.uniform(0, WORK_SIZE, 2)
        half = int(5 * radius) + 3
        y0, y1 = max(int(cy) - half, 0), min(int(cy) + half, WORK_SIZE)
        x0, x1 = max(int(cx) - half, 0), min(int(cx) + half, WORK_SIZE)
        dist = np.hypot(_GRID_Y[y0:y1, x0:x1] - cy, _GRID_X[y0:y1, x0:x1] - cx)
        crater = _crater_height(dist, radius, 0.3 * radius, 0.06 * radius)
        height[y0:y1, x0:x1] += gaussian_filter(crater, rng.uniform(0.3, 1.5), mode='nearest')


def _add_fresh_crater(rng: np.random.Generator, height: np.ndarray, albedo: np.ndarray,
                      center: tuple[float, float], subtlety: float = 0.0) -> None:
    radius = rng.uniform(12.0, 42.0)
    dist, angle = _polar(center)
    height += _crater_height(dist, radius, rng.uniform(0.35, 0.45) * radius,
                             rng.uniform(0.06, 0.1) * radius)
    rr = dist / radius
    reach = 1.0 - 0.7 * subtlety
    blanket = np.exp(-np.clip(rr - 0.9, 0, None) / (rng.uniform(0.5, 1.0) * reach)) * (rr > 0.6)
    rays = np.zeros_like(dist)
    beyond_rim = np.clip(rr - 1.0, 0, None) + (rr <= 0.9) * 1e3
    for _ in range(rng.integers(6, 18)):
        direction = rng.uniform(-np.pi, np.pi)
        width = rng.uniform(0.03, 0.12)
        delta = (angle - direction + np.pi) % (2 * np.pi) - np.pi
        rays += np.exp(-(delta / width) ** 2 - beyond_rim / (rng.uniform(2.0, 5.0) * reach)
                       ) * rng.uniform(0.4, 1.0)
    brightness = 1.0 - subtlety
    albedo += brightness * (rng.uniform(0.35, 0.7) * blanket + rng.uniform(0.2, 0.45) * rays)


def _add_old_crater(rng: np.random.Generator, height: np.ndarray,
                    center: tuple[float, float], subtlety: float = 0.0) -> None:
    radius = rng.uniform(15.0, 55.0)
    dist, _ = _polar(center)
    relief = 1.0 - subtlety
    crater = _crater_height(dist, radius, rng.uniform(0.18, 0.3) * radius * relief,
                            rng.uniform(0.03, 0.06) * radius * relief)
    burial = rng.uniform(0.5, 0.8)
    floor = -(burial + (1.0 - burial) * subtlety) * crater.max() - 0.05 * radius * relief
    crater = np.maximum(crater, floor)
    height += gaussian_filter(crater, rng.uniform(0.12, 0.25) * radius * (1.0 + subtlety),
                              mode='wrap')


def _shade(rng: np.random.Generator, height: np.ndarray, albedo: np.ndarray) -> np.ndarray:
    azimuth = rng.uniform(-np.pi, np.pi)
    incidence = np.radians(rng.uniform(45.0, 78.0))
    grad_y, grad_x = np.gradient(height)
    norm = np.sqrt(grad_x ** 2 + grad_y ** 2 + 1.0)
    sun = (np.sin(incidence) * np.cos(azimuth), np.sin(incidence) * np.sin(azimuth),
           np.cos(incidence))
    cos_i = np.clip((-grad_x * sun[0] - grad_y * sun[1] + sun[2]) / norm, 0.0, None)
    cos_e = 1.0 / norm
    flat = np.cos(incidence) / (np.cos(incidence) + 1.0)
    return albedo * (cos_i / (cos_i + cos_e)) / flat


def render_chip(rng: np.random.Generator, category: str,
                subtlety: float | None = None) -> np.ndarray:
    """Render one ``none``/``ejecta``/``oldcrater`` chipout as a 227x227 uint8 array.

    ``subtlety`` in [0, 1] makes the anomaly harder to see (module docstring); normal chips
    ignore it.
    """
    subtlety = check_subtlety(subtlety)
    height = fractal_noise(rng, WORK_SIZE, rng.uniform(2.4, 3.0))
    grad_y, grad_x = np.gradient(height)
    height *= rng.uniform(0.08, 0.2) / np.sqrt(np.mean(grad_x ** 2 + grad_y ** 2))
    albedo = 1.0 + 0.06 * fractal_noise(rng, WORK_SIZE, 2.0)
    _background_craters(rng, height)
    center = (WORK_SIZE / 2 + rng.uniform(-25, 25), WORK_SIZE / 2 + rng.uniform(-25, 25))
    if category == 'ejecta':
        _add_fresh_crater(rng, height, albedo, center, subtlety)
    elif category == 'oldcrater':
        _add_old_crater(rng, height, center, subtlety)
    elif category != 'none':
        raise ValueError(f'unknown LROC category {category!r}')
    radiance = _shade(rng, height, albedo)
    offset = (WORK_SIZE - CHIP_SIZE) // 2
    radiance = radiance[offset:offset + CHIP_SIZE, offset:offset + CHIP_SIZE]
    image = radiance * rng.uniform(95, 135) + rng.uniform(-10, 10)
    image += rng.normal(0.0, rng.uniform(1.5, 4.0), image.shape)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def save_chip(chip: np.ndarray, path: Path) -> None:
    """Write a chipout as a grayscale JPEG (quality 90)."""
    Image.fromarray(chip, mode='L').save(path, quality=JPEG_QUALITY)
