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

"""Push-broom images that arrive as strips, one image in progress per camera (numpy only).

An orbiter camera delivers a long image as consecutive blocks of rows. Each strip comes with
its place (:class:`StripPlacement`: row offset, and the image's height and width when known);
strips of one image share a camera key (the ROS ``frame_id``) and arrive in order.
:class:`StripImages` keeps one :class:`~.strips.StripScorer` per key, so an image is scored as
one continuous picture at native resolution without being held whole.

An image ends when its last row arrives (height known), when a strip at row 0 starts the next
image on the same key, or after ``timeout`` seconds without a strip (:meth:`StripImages.expire`;
height unknown). A strip that does not continue its image (a lost, repeated or reordered strip,
another width) raises :class:`~.strips.StripError`; the image in progress is dropped (its
regions would be wrong) and later strips of it are refused until the next row 0.
"""
from __future__ import annotations

from dataclasses import dataclass, field
import time

import numpy as np

from vad4space_ros.deploy.calibration import CALIBRATED_THRESHOLD
from vad4space_ros.deploy.loading import Model
from vad4space_ros.deploy.preprocess import as_rgb
from vad4space_ros.deploy.records import Region
from vad4space_ros.deploy.regions import tiled_frame_result
from vad4space_ros.deploy.strips import StripError, StripScorer
from vad4space_ros.deploy.tiling import TileOptions


@dataclass(frozen=True)
class StripPlacement:
    """Where a strip lies in its image: row offset; image height and width (0 = unknown)."""

    row_offset: int
    image_height: int = 0
    image_width: int = 0


@dataclass(frozen=True)
class MapRows:
    """Finished rows of an image's anomaly map (float32 raw scores) from ``first_row``."""

    key: str
    stamp_ns: int            # the image's stamp (its first strip's)
    first_row: int
    rows: np.ndarray


@dataclass(frozen=True)
class FinishedImage:
    """The result of one whole image: calibrated score, regions in full-image pixels."""

    key: str
    stamp_ns: int            # the stamp of its first strip
    height: int
    width: int
    complete: bool           # False when the known height was not reached (a later row 0 came)
    score: float
    raw_score: float
    is_anomaly: bool
    tile_count: int
    regions: list[Region]
    embedding: np.ndarray
    scoring_ms: float


@dataclass
class _Image:
    scorer: StripScorer
    stamp_ns: int
    expected_height: int
    last_strip: float
    scoring_s: float = 0.0


@dataclass
class StripUpdate:
    """What one strip produced: finished map rows, and the images it completed."""

    map_rows: list[MapRows] = field(default_factory=list)
    finished: list[FinishedImage] = field(default_factory=list)


class StripImages:
    """Score strips of long images in tiles, one image in progress per key."""

    def __init__(self, model: Model, tiling: TileOptions, max_regions: int) -> None:
        """Score with ``model`` on its tile grid; raise ValueError without a tile size."""
        grid = tiling.resolve(model.metadata)
        if grid is None:
            raise ValueError(f'strips are scored in tiles: set tile_size (model {model.model_id} '
                             'records no training image size)')
        self.model = model
        self.tile, self.stride = grid
        self.batch_size = tiling.batch_size
        self.max_regions = max_regions
        self._images: dict[str, _Image] = {}

    @property
    def in_progress(self) -> int:
        """Return how many images are being received."""
        return len(self._images)

    def add(self, key: str, stamp_ns: int, strip: np.ndarray, place: StripPlacement,
            threshold: float = CALIBRATED_THRESHOLD) -> StripUpdate:
        """Score one HxW or HxWx3 uint8 strip of image ``key``; raise StripError if misplaced."""
        update = StripUpdate()
        try:
            strip = as_rgb(strip)  # checked before an earlier image is finished
        except ValueError as error:
            raise StripError(f'{key}: {error}') from None
        width = strip.shape[1]
        if place.image_width and place.image_width != width:
            raise StripError(f'{key}: strip is {width} px wide, its camera info says '
                             f'{place.image_width}')
        if place.row_offset == 0 and key in self._images:
            self._finish(key, threshold, update)
        image = self._images.get(key)
        if image is None:
            if place.row_offset != 0:
                raise StripError(f'{key}: strip at row {place.row_offset} but no image in '
                                 'progress (its earlier strips were lost or refused)')
            image = _Image(StripScorer(self.model, width, self.tile, self.stride,
                                       self.batch_size), stamp_ns, place.image_height, 0.0)
            self._images[key] = image
        started = time.perf_counter()
        try:
            blocks = image.scorer.add(strip, place.row_offset)
        except StripError as error:
            del self._images[key]
            raise StripError(f'{key}: {error}; the image in progress was dropped') from None
        image.scoring_s += time.perf_counter() - started
        image.last_strip = time.monotonic()
        update.map_rows += [MapRows(key, image.stamp_ns, row, rows) for row, rows in blocks]
        if image.expected_height and image.scorer.received >= image.expected_height:
            self._finish(key, threshold, update)
        return update

    def expire(self, timeout: float, threshold: float = CALIBRATED_THRESHOLD) -> StripUpdate:
        """Finish the images whose last strip came more than ``timeout`` seconds ago."""
        update = StripUpdate()
        now = time.monotonic()
        for key in [k for k, image in self._images.items() if now - image.last_strip > timeout]:
            self._finish(key, threshold, update)
        return update

    def _finish(self, key: str, threshold: float, update: StripUpdate) -> None:
        """End image ``key``: score its bottom tile row; add its last rows and result."""
        image = self._images.pop(key)
        started = time.perf_counter()
        blocks, tiles = image.scorer.finish()
        update.map_rows += [MapRows(key, image.stamp_ns, row, rows) for row, rows in blocks]
        result = tiled_frame_result(tiles, self.model.calibration, threshold, self.max_regions,
                                    self.model.metadata)
        height = image.scorer.received
        update.finished.append(FinishedImage(
            key=key, stamp_ns=image.stamp_ns, height=height, width=image.scorer.width,
            complete=not image.expected_height or height >= image.expected_height,
            score=result.score, raw_score=tiles.frame_raw_score,
            is_anomaly=result.score >= threshold, tile_count=tiles.count,
            regions=result.regions,
            embedding=tiles.best_embedding,
            scoring_ms=(image.scoring_s + time.perf_counter() - started) * 1000.0))
