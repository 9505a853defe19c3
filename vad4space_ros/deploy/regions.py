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

"""Anomalous regions of a frame: ranked boxes from tile scores or from a map (numpy/OpenCV).

- **Tiled frames** (:func:`tile_regions`): tiles whose calibrated score (on the *frame*
  calibration, :mod:`.tiling`) reaches the threshold are grouped into 8-connected groups on the
  tile grid; each group becomes the box around its tiles, scored by its best tile. A frame is
  anomalous exactly when it has at least one region. :func:`tiled_frame_result` gives a tiled
  frame its calibration, score and regions (frames and push-broom images alike).
- **Whole frames** (:func:`map_regions`): pixels of the map at image resolution at or above the
  raw threshold form 8-connected areas; each becomes its bounding box, scored by its peak.

Boxes are :class:`~.records.Region` (x, y, width, height in pixels, top-left origin; calibrated
score), best first, at most ``max_regions``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import cv2
import numpy as np

from vad4space_ros.deploy.calibration import CALIBRATED_THRESHOLD, Calibration
from vad4space_ros.deploy.records import Region
from vad4space_ros.deploy.tiling import frame_calibration_for, TileScores

REGION_COLOUR = (255, 0, 255)  # magenta: not in the JET colour map of the heatmap


def raw_threshold(calibration: Calibration, threshold: float) -> float:
    """Return the raw value that ``calibration`` maps to the calibrated ``threshold``."""
    return calibration.center + (threshold / CALIBRATED_THRESHOLD) * (
        calibration.threshold - calibration.center)


def _components(mask: np.ndarray) -> tuple[int, np.ndarray]:
    count, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    return count, labels


def _ranked(regions: list[Region], max_regions: int) -> list[Region]:
    return sorted(regions, key=lambda region: -region.score)[:max(max_regions, 0)]


def tile_regions(scores: TileScores, calibration: Calibration, threshold: float,
                 max_regions: int) -> list[Region]:
    """Return boxes around connected tiles with calibrated score >= ``threshold``."""
    calibrated = np.asarray(calibration.normalise(scores.grid.astype(np.float64)))
    count, labels = _components(calibrated >= threshold)
    regions = []
    for label in range(1, count):
        rows, cols = np.nonzero(labels == label)
        top, left = int(scores.rows[rows].min()), int(scores.cols[cols].min())
        bottom = int(scores.rows[rows].max()) + scores.tile_height
        right = int(scores.cols[cols].max()) + scores.tile_width
        regions.append(Region(left, top, right - left, bottom - top,
                              float(calibrated[rows, cols].max())))
    return _ranked(regions, max_regions)


@dataclass(frozen=True)
class TiledFrameResult:
    """A tiled frame's calibration (for its tile count), calibrated score and regions."""

    calibration: Calibration
    score: float
    regions: list[Region]


def tiled_frame_result(scores: TileScores, tile_calibration: Calibration, threshold: float,
                       max_regions: int, metadata: Mapping[str, Any]) -> TiledFrameResult:
    """Score a frame from its tiles on the frame-level calibration of their count.

    A frame calibration fitted on normal frames and stored in the model's ``metadata`` is used
    when one matches the tile side and count; otherwise it is derived (:mod:`.tiling`).
    """
    calibration = frame_calibration_for(tile_calibration, scores.tile_height, scores.count,
                                        metadata)
    return TiledFrameResult(calibration, float(calibration.normalise(scores.frame_raw_score)),
                            tile_regions(scores, calibration, threshold, max_regions))


def map_regions(anomaly_map: np.ndarray, calibration: Calibration, threshold: float,
                max_regions: int) -> list[Region]:
    """Return boxes around connected map pixels at or above the raw ``threshold`` equivalent."""
    values = np.asarray(anomaly_map, np.float32)
    count, labels = _components(values >= raw_threshold(calibration, threshold))
    regions = []
    for label in range(1, count):
        rows, cols = np.nonzero(labels == label)
        peak = float(values[rows, cols].max())
        regions.append(Region(int(cols.min()), int(rows.min()), int(cols.max() - cols.min() + 1),
                              int(rows.max() - rows.min() + 1),
                              float(calibration.normalise(peak))))
    return _ranked(regions, max_regions)


def draw_regions(image: np.ndarray, regions: list[Region]) -> np.ndarray:
    """Return a copy of an rgb8 image with each region's box and score drawn in magenta."""
    canvas = np.ascontiguousarray(image).copy()
    thickness = max(1, round(max(canvas.shape[:2]) / 400))
    for rank, region in enumerate(regions, start=1):
        top_left = (region.x, region.y)
        bottom_right = (region.x + region.width - 1, region.y + region.height - 1)
        cv2.rectangle(canvas, top_left, bottom_right, REGION_COLOUR, thickness)
        cv2.putText(canvas, f'{rank}: {region.score:.2f}',
                    (region.x + 2, max(region.y - 4, 12)), cv2.FONT_HERSHEY_SIMPLEX,
                    0.4 * thickness, REGION_COLOUR, thickness, cv2.LINE_AA)
    return canvas
