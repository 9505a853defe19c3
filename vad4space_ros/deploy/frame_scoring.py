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

"""Score decoded camera frames with any model file: plain, exported ``.onnx`` or fused.

The detector node decodes a frame (:mod:`.image_encoding`) and hands the pixels to a
:class:`FrameScorer`, which knows what the loaded model needs:

- **plain or exported model** (:class:`~.detector.Detector`): the frame becomes HxW or
  HxWx3 uint8 RGB by :func:`.image_encoding.to_rgb8` (6-band frames: the bands named
  by ``ScaleOptions.rgb_bands``);
- **6-band fused model** (:class:`~.spectral.FusedDetector`, ``vad4space fit --spectral-fusion``
  on 6-band tiles): the frame must have 6 bands (``8UC6``/``16UC6``/``32FC6``). It goes whole,
  as a band cube in ``[0, 1]`` (:func:`band_cube`), to the fused detector, whose RGB view uses
  the band choice stored in the model (``spectral.config.rgb_bands``), not
  ``ScaleOptions.rgb_bands``. With ``spectral_fusion=False`` only the model's RGB branch scores
  that same view (spectral branch skipped). A frame with fewer bands raises
  :class:`~.image_encoding.ImageEncodingError`: an RGB camera frame is not the band composite
  the RGB branch was fitted on, so there is no faithful fallback.
- **colour fused model** (``--spectral-fusion`` on RGB images: the RX branch models R, G, B):
  the frame must be colour (``rgb8``, ``bgr8``, ``rgba8``, 16-bit colour...); it becomes uint8
  RGB as for a plain model, and its cube is that image in ``[0, 1]``. Grey and 6-band frames
  raise :class:`~.image_encoding.ImageEncodingError`.

The published score and map are those of :attr:`FrameScorer.detector`: the fused ones, or the
RGB branch's (its own model id, without ``+rx``) when fusion is switched off.

**Tiling** (:attr:`FrameScorer.tiling`, see :mod:`.tiling`): the model scores the frame in
tiles at native resolution (by default the size of its training images, metadata
``train_image_size``); the score is the maximum over the tiles on the frame-level calibration
for that tile count, and the regions come from the tile grid (:func:`.regions.tile_regions`).
A fused model gets tiles of its bands (both branches per tile; its map stays on the calibrated
per-tile scale, as for whole frames), or RGB-view tiles of its RGB branch with
``spectral_fusion`` off. Without tiling the whole frame is resized to the model
input; regions then come from the map (:func:`.regions.map_regions`; none for fused models).
"""
from __future__ import annotations

from dataclasses import dataclass, field
import time
from typing import Callable

import numpy as np

from vad4space_ros.deploy.calibration import CALIBRATED_THRESHOLD, Calibration
from vad4space_ros.deploy.detector import Prediction
from vad4space_ros.deploy.heatmap import map_range_from_calibration
from vad4space_ros.deploy.image_encoding import (
    ENCODINGS, ImageEncodingError, MULTISPECTRAL_BANDS, ScaleOptions, to_rgb8)
from vad4space_ros.deploy.loading import Model
from vad4space_ros.deploy.preprocess import as_rgb
from vad4space_ros.deploy.records import Region
from vad4space_ros.deploy.regions import map_regions, tiled_frame_result
from vad4space_ros.deploy.spectral import as_bands, bands_to_rgb, FusedDetector
from vad4space_ros.deploy.strips import score_tiled
from vad4space_ros.deploy.tiling import (
    derived_threshold_warning, stored_tile_counts, TileOptions)

DEFAULT_MAX_REGIONS = 5


def band_cube(pixels: np.ndarray, encoding: str, options: ScaleOptions) -> np.ndarray:
    """Return a decoded 6-band frame as HxWx6 float32 in ``[0, 1]``.

    uint8 is divided by 255 (as :func:`.spectral.as_bands` does, so results match offline
    scoring of the same DN), uint16 by ``sixteen_bit_max``, float by ``float_max``; clipped.
    """
    channels = ENCODINGS[encoding][1] if encoding in ENCODINGS else None
    if channels != MULTISPECTRAL_BANDS or pixels.ndim != 3:
        raise ImageEncodingError(f'expected a {MULTISPECTRAL_BANDS}-band frame, got {encoding}')
    if pixels.dtype == np.uint8:
        scale = 255.0
    elif pixels.dtype == np.uint16:
        scale = float(options.sixteen_bit_max)
    else:
        scale = float(options.float_max)
    return np.clip(pixels.astype(np.float32) / np.float32(scale), 0.0, 1.0)


@dataclass(frozen=True)
class ScoredFrame:
    """One frame's prediction, its ranked regions and the uint8 image to draw the heatmap over.

    ``calibration`` is the one the score was computed with: the model's for whole frames, the
    frame-level one for the tile count in tiled mode (the heatmap range follows it).
    """

    prediction: Prediction
    display: np.ndarray
    regions: list[Region] = field(default_factory=list)
    calibration: Calibration | None = None


@dataclass(frozen=True)
class FrameScorer:
    """A loaded model file with the options that turn decoded frames into its input."""

    model: Model
    spectral_fusion: bool = True
    scale: ScaleOptions = field(default_factory=ScaleOptions)
    tiling: TileOptions = field(default_factory=lambda: TileOptions(tile_size=0))
    max_regions: int = DEFAULT_MAX_REGIONS

    @property
    def is_fused_model(self) -> bool:
        """Whether the model file holds a spectral branch (needs frames of its bands)."""
        return isinstance(self.model, FusedDetector)

    @property
    def fusing(self) -> bool:
        """Whether published scores fuse the spectral branch with the RGB one."""
        return self.is_fused_model and self.spectral_fusion

    @property
    def detector(self) -> Model:
        """The detector whose scores are published (a fused model's RGB branch if not fusing)."""
        if isinstance(self.model, FusedDetector) and not self.spectral_fusion:
            return self.model.rgb
        return self.model

    @property
    def tile_grid(self) -> tuple[int, int] | None:
        """Return (tile side, stride) used on frames, or None when frames are scored whole."""
        return self.tiling.resolve(self.model.metadata)

    def score(self, pixels: np.ndarray, encoding: str,
              threshold: float = CALIBRATED_THRESHOLD) -> ScoredFrame:
        """Score decoded pixels of ``encoding``; raise ImageEncodingError for unusable frames."""
        model, grid = self.model, self.tile_grid
        if not isinstance(model, FusedDetector):
            image = to_rgb8(pixels, encoding, self.scale)
            if grid is not None:
                return self._score_tiled(model, image, image, as_rgb, threshold, grid)
            prediction = model.predict(image, threshold)
            return ScoredFrame(prediction, image, map_regions(
                prediction.anomaly_map, model.calibration, threshold, self.max_regions),
                model.calibration)
        cube, rgb_view = self._fused_input(model, pixels, encoding)
        if self.spectral_fusion:
            if grid is not None:
                return self._score_tiled(model, cube, rgb_view, as_bands, threshold, grid)
            return ScoredFrame(model.predict(cube, threshold), rgb_view)
        if grid is not None:
            return self._score_tiled(model.rgb, rgb_view, rgb_view, as_rgb, threshold, grid)
        return ScoredFrame(model.rgb.predict(rgb_view, threshold), rgb_view)

    def _fused_input(self, model: FusedDetector, pixels: np.ndarray,
                     encoding: str) -> tuple[np.ndarray, np.ndarray]:
        """Return (band cube in [0, 1], uint8 RGB view) of a frame for a fused model."""
        channels = ENCODINGS.get(encoding, (None, 0))[1]
        if model.bands == MULTISPECTRAL_BANDS and channels == MULTISPECTRAL_BANDS:
            cube = band_cube(pixels, encoding, self.scale)
            return cube, bands_to_rgb(cube, model.config.rgb_bands)
        if model.bands == 3 and channels in (3, 4):
            image = to_rgb8(pixels, encoding, self.scale)
            return as_bands(image), image
        needs = ('8UC6/16UC6/32FC6 frames' if model.bands == MULTISPECTRAL_BANDS
                 else 'colour frames (rgb8, bgr8, rgba8, rgb16...)')
        raise ImageEncodingError(
            f'model {model.model_id} is a {model.bands}-band fused model (vad4space fit '
            f'--spectral-fusion) and needs {needs}; got {encoding} '
            f'({pixels.shape[2] if pixels.ndim == 3 else 1} band(s))')

    def _score_tiled(self, detector: Model, pixels: np.ndarray, display: np.ndarray,
                     prepare: Callable[[np.ndarray], np.ndarray], threshold: float,
                     grid: tuple[int, int]) -> ScoredFrame:
        """Score a frame in tiles of ``grid`` (side, stride) on the frame-level calibration."""
        start = time.perf_counter()
        anomaly_map, tiles = score_tiled(detector, pixels, *grid, self.tiling.batch_size,
                                         prepare)
        if isinstance(detector, FusedDetector):  # fused maps are published calibrated
            anomaly_map = np.asarray(detector.calibration.normalise(anomaly_map), np.float32)
        result = tiled_frame_result(tiles, detector.calibration, threshold, self.max_regions,
                                    detector.metadata)
        prediction = Prediction(
            score=result.score, raw_score=tiles.frame_raw_score,
            is_anomaly=result.score >= threshold, anomaly_map=anomaly_map,
            embedding=tiles.best_embedding,
            latency_ms=(time.perf_counter() - start) * 1000.0)
        return ScoredFrame(prediction, display, result.regions, result.calibration)

    def describe(self) -> str:
        """Return a one-line description of the model and how frames feed it (for logs)."""
        detector = self.detector
        frames = ('8UC6/16UC6/32FC6' if self.is_fused_model
                  and self.model.bands == MULTISPECTRAL_BANDS else 'colour')
        if self.fusing:
            mode = f', {self.model.bands}-band spectral fusion: needs {frames} frames'
        elif self.is_fused_model:
            mode = f', fused model with spectral_fusion off: RGB branch on {frames} frames'
        else:
            mode = ''
        grid = self.tile_grid
        if grid is not None:
            counts = stored_tile_counts(detector.metadata, grid[0])
            mode += (f'; {grid[0]}-px tiles every {grid[1]} px, frame threshold '
                     + (f'fitted on normal frames for {counts} tiles, derived otherwise'
                        if counts else 'derived from the tile calibration; vad4space '
                                       'calibrate-frames fits it on normal frames'))
        return f'model {detector.model_id} ({detector.method}/{detector.backbone}{mode})'

    def frame_threshold_warning(self) -> str | None:
        """Return :func:`.tiling.derived_threshold_warning` for tiled scoring, else None."""
        grid = self.tile_grid
        return None if grid is None else derived_threshold_warning(self.detector.metadata,
                                                                   grid[0])

    def map_range(self, calibration: Calibration | None = None) -> tuple[float, float]:
        """Return the heatmap range: typical normal blue, threshold green (see :mod:`.heatmap`).

        A fused map is already on the calibrated scale (0 = typical, 0.5 = tile threshold);
        other maps are raw, placed by ``calibration`` (a scored frame's; default the model's).
        """
        if self.fusing:
            return map_range_from_calibration(CALIBRATED_THRESHOLD, 0.0)
        calibration = calibration or self.detector.calibration
        return map_range_from_calibration(calibration.threshold, calibration.center)
