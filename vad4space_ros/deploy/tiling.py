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

"""Score frames of any size at native resolution: tiles, a frame-level calibration (numpy only).

A model fitted on 64x64 tiles (or 227x227 chips) sees a camera frame the way it was trained
when the frame is cut into pieces of that size instead of being shrunk whole:

- **Grid.** Tiles of ``tile`` pixels start every ``stride`` pixels from the top-left corner;
  the last row and column are moved to the bottom and right edge so every pixel is covered
  (:func:`tile_starts`). A side shorter than the tile gets one tile of that side's length.
- **Map.** Each tile's map (model resolution) is resized to the tile and blended into a
  full-resolution map with a tent window (weight highest at the tile centre, never 0), so
  overlapping tiles (``stride < tile``) meet without seams; a pixel seen by one tile keeps that
  tile's value. Stitching happens in row bands (:mod:`.strips`): memory grows with the tile
  batch and one band of rows, plus the output map.
- **Frame score.** The maximum raw score over the tiles.
- **Frame calibration** (:func:`frame_calibration`). The model's calibration sets the per-tile
  threshold at a false-alarm rate ``a`` (5% by default); a maximum over ``N`` tiles at that
  threshold would flag ``1 - (1 - a)^N`` of normal frames (every frame for N in the hundreds).
  The tile scores are themselves maxima over the map, so their upper tail is modelled by a
  Gumbel law, fitted through the two points the calibration holds (median = ``center``,
  ``1 - a`` quantile = ``threshold``). The maximum of ``N`` independent Gumbel(mu, beta)
  scores is Gumbel(mu + beta ln N, beta), so the frame threshold that keeps the whole-frame
  false-alarm rate at ``a`` is ``mu + beta ln N - beta ln(-ln(1 - a))``, and the frame centre
  is that law's median. For ``N = 1`` this is exactly the tile calibration. Correlated or
  overlapping tiles act like fewer independent ones (fewer false alarms). The estimate is only
  as good as the per-tile calibration: an error in its spread (``threshold - center``) moves
  the frame threshold by about ``ln N + 3`` times as much (x9 for 475 tiles), so calibrate the
  model on a few hundred normal tiles. A max-fused model's frame threshold is derived from its
  two branches' calibrated scales instead (:func:`derived_frame_calibration`). When normal
  frames are available, :func:`calibrate_on_frames` fits the frame threshold on their
  max-over-tiles scores instead (empirical quantile, no model); the model file stores it
  (:func:`with_frame_calibration`) for that tile side and count, under the id of the detector
  that scored the frames, so a fused model's threshold is not applied to its RGB branch alone
  (which has its own id).
"""
from __future__ import annotations

from dataclasses import dataclass
import math
from typing import Any, Mapping

import numpy as np

from vad4space_ros.deploy.calibration import CALIBRATED_THRESHOLD, Calibration

NATIVE_TILE = -1   # tile_size: the model's training image size (whole frame if unknown)
WHOLE_FRAME = 0    # tile_size: resize the whole frame to the model input (no tiling)
DEFAULT_TILE_BATCH = 16
FRAME_CALIBRATIONS = 'frame_calibrations'  # metadata key: fitted frame calibrations


@dataclass(frozen=True)
class TileOptions:
    """How frames are cut: tile side, stride (0 = tile side, no overlap), tiles per batch."""

    tile_size: int = NATIVE_TILE
    stride: int = 0
    batch_size: int = DEFAULT_TILE_BATCH

    def __post_init__(self) -> None:
        """Refuse sizes that cannot describe a grid."""
        if self.tile_size < NATIVE_TILE or self.stride < 0 or self.batch_size < 1:
            raise ValueError(f'bad tile options {self}: tile_size >= -1, stride >= 0, '
                             'batch_size >= 1')
        if self.tile_size > 0 and self.stride > self.tile_size:
            raise ValueError(f'tile stride {self.stride} exceeds the tile size {self.tile_size}:'
                             ' pixels between tiles would never be scored')

    def resolve(self, metadata: dict[str, Any]) -> tuple[int, int] | None:
        """Return the (tile side, stride) for a model, or None for whole-frame scoring."""
        tile = self.tile_size
        if tile == NATIVE_TILE:
            native = metadata.get('train_image_size')
            if not native:
                return None
            tile = int(min(native))
        if tile == WHOLE_FRAME:
            return None
        stride = self.stride or tile
        if stride > tile:
            raise ValueError(f'tile stride {stride} exceeds the tile size {tile}')
        return tile, stride


def tile_count(height: int, width: int, tile: int, stride: int) -> int:
    """Return how many tiles :func:`tile_starts` cuts a height x width frame into."""
    return len(tile_starts(height, tile, stride)) * len(tile_starts(width, tile, stride))


def tile_starts(length: int, tile: int, stride: int) -> np.ndarray:
    """Return tile start offsets along one side: every ``stride``, the last at the edge."""
    if length <= tile:
        return np.zeros(1, np.int64)
    starts = list(range(0, length - tile + 1, stride))
    if starts[-1] != length - tile:
        starts.append(length - tile)
    return np.asarray(starts, np.int64)


def blend_window(height: int, width: int) -> np.ndarray:
    """Return the tent weights (float32, HxW, > 0) that blend one tile's map into the frame."""
    def tent(length: int) -> np.ndarray:
        index = np.arange(length, dtype=np.float32)
        return np.minimum(index + 1.0, length - index) / np.float32(math.ceil(length / 2))
    return np.outer(tent(height), tent(width)).astype(np.float32)


@dataclass
class TileScores:
    """Raw scores of a frame's tiles: grid[i, j] for the tile at (rows[i], cols[j])."""

    rows: np.ndarray
    cols: np.ndarray
    tile_height: int
    tile_width: int
    grid: np.ndarray
    best_embedding: np.ndarray

    @property
    def count(self) -> int:
        """Return the number of tiles."""
        return int(self.grid.size)

    @property
    def frame_raw_score(self) -> float:
        """Return the frame's raw score: the maximum over its tiles."""
        return float(self.grid.max())


def _gumbel_fit(calibration: Calibration) -> tuple[float, float]:
    """Return (mu, beta) of the Gumbel law through the calibration's median and threshold."""
    rate = calibration.false_alarm_rate
    median_term = math.log(math.log(2.0))
    tail_term = math.log(-math.log(1.0 - rate))
    beta = (calibration.threshold - calibration.center) / (median_term - tail_term)
    return calibration.center + beta * median_term, beta


def frame_calibration(tile_calibration: Calibration, tile_count: int,
                      false_alarm_rate: float | None = None) -> Calibration:
    """Derive the calibration of the max over ``tile_count`` tiles (see the module notes).

    ``false_alarm_rate`` is the whole-frame rate to keep (default: the tile calibration's).
    """
    if tile_count < 1:
        raise ValueError(f'tile_count must be >= 1, got {tile_count}')
    rate = tile_calibration.false_alarm_rate if false_alarm_rate is None else false_alarm_rate
    if not 0.0 < rate < 1.0:
        raise ValueError(f'false_alarm_rate must be in (0, 1), got {rate}')
    mu, beta = _gumbel_fit(tile_calibration)
    location = mu + beta * math.log(tile_count)
    threshold = location - beta * math.log(-math.log(1.0 - rate))
    center = location - beta * math.log(math.log(2.0))
    return Calibration(threshold, center, rate, tile_calibration.sample_count)


def calibrate_on_frames(frame_raw_scores: np.ndarray, false_alarm_rate: float) -> Calibration:
    """Fit the frame threshold on max-over-tiles raw scores of normal frames (empirical)."""
    return Calibration.from_normal_scores(frame_raw_scores, false_alarm_rate)


def derived_frame_calibration(tile_calibration: Calibration, tile_count: int,
                              metadata: Mapping[str, Any],
                              false_alarm_rate: float | None = None) -> Calibration:
    """Derive the frame calibration of a model from its tile calibration (module notes).

    A max-fused model (``spectral`` section, fusion ``max``) scores a tile by the larger of its
    two branch scores, each on its own calibrated scale (median 0, ``CALIBRATED_THRESHOLD`` at
    the tile rate), so a frame's score is the maximum of ``2 * tile_count`` branch scores, each
    with the Gumbel tail of that scale. This ignores the fused score's own calibration, whose
    shape (a maximum of two differently tailed scores) extrapolated badly: 15% false alarms
    at 5% on 120 normal 6-band terrain frames, against 6% this way (docs/full_frames.md).
    One tile keeps the tile calibration, which was fitted on exactly that score.
    """
    spectral = metadata.get('spectral')
    if tile_count > 1 and spectral and spectral['config']['fusion'] == 'max':
        branch = spectral['calibration']
        tile_calibration = Calibration(CALIBRATED_THRESHOLD, 0.0, branch['false_alarm_rate'],
                                       branch['sample_count'])
        tile_count *= 2
    return frame_calibration(tile_calibration, tile_count, false_alarm_rate)


def frame_calibration_for(tile_calibration: Calibration, tile_side: int, tile_count: int,
                          metadata: Mapping[str, Any]) -> Calibration:
    """Return the frame calibration stored for this model, tile side and count, else derive it."""
    for entry in _stored_entries(metadata, tile_side):
        if entry['tile_count'] == tile_count:
            return Calibration(**entry['calibration'])
    return derived_frame_calibration(tile_calibration, tile_count, metadata)


def stored_tile_counts(metadata: Mapping[str, Any], tile_side: int) -> list[int]:
    """Return the tile counts with a frame calibration stored for this model and tile side."""
    return sorted(entry['tile_count'] for entry in _stored_entries(metadata, tile_side))


def derived_threshold_warning(metadata: Mapping[str, Any], tile_side: int) -> str | None:
    """Return a warning for logs when no frame calibration is stored for this tile side.

    The derived threshold held for plain PatchCore on synthetic frames (0-2% false alarms at
    5%), but in runs with heavy-tailed tile scores (fused, ensemble, CFA models) 7-50% of normal
    frames went through (docs/full_frames.md), and 500 calibration tiles do not show that tail.
    """
    if stored_tile_counts(metadata, tile_side):
        return None
    return (f'no frame threshold fitted for {tile_side}-px tiles: it is derived from the tile '
            'calibration, which can flag several times the configured rate of normal frames '
            'when tile scores are heavy-tailed (fused, ensemble and CFA models); fit it on '
            'normal frames with vad4space calibrate-frames')


def _stored_entries(metadata: Mapping[str, Any], tile_side: int) -> list[dict[str, Any]]:
    """Return the stored frame calibrations of the metadata's model for this tile side.

    Entries without a ``model_id`` (written before frame calibrations were keyed by the scoring
    model) match no model, so such a file falls back to the derived frame threshold until
    ``vad4space calibrate-frames`` fits it again (and drops them).
    """
    return [entry for entry in metadata.get(FRAME_CALIBRATIONS, ())
            if (entry.get('model_id'), entry['tile_size']) == (metadata['model_id'], tile_side)]


def with_frame_calibration(metadata: Mapping[str, Any], tile_side: int, tile_count: int,
                           calibration: Calibration, frames: int) -> dict[str, Any]:
    """Return a copy of ``metadata`` storing ``calibration`` for its model, tile side, count."""
    key = (metadata['model_id'], tile_side, tile_count)
    kept = [entry for entry in metadata.get(FRAME_CALIBRATIONS, ()) if 'model_id' in entry
            and (entry['model_id'], entry['tile_size'], entry['tile_count']) != key]
    entry = {'model_id': metadata['model_id'], 'tile_size': tile_side, 'tile_count': tile_count,
             'frames': frames, 'calibration': calibration.to_dict()}
    return {**metadata, FRAME_CALIBRATIONS: kept + [entry]}
