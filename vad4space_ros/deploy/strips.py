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

"""Tiled scoring in row bands: whole frames and push-broom strips (numpy/OpenCV only).

:class:`StripScorer` takes an image as consecutive blocks of rows (strips) and scores it as one
continuous image on the grid of :mod:`.tiling`: a row of tiles is scored as soon as the rows
it covers have arrived, each tile exactly once (tiles straddling two strips included), and map
rows no later tile can reach are handed back at once and forgotten. It holds the current strip
plus at most ``tile`` earlier image rows and the pending map rows (float32 sum and weight),
never the whole image: for 5,064-px-wide, 1,024-row strips at 227-px tiles about 70 MB. The
last tile row is moved to the bottom edge when the image ends (:meth:`StripScorer.finish`), as
for a whole frame, so strips fed in order give the same map and tile scores as
:func:`score_tiled` on the whole image.

Tiles go to the detector ``batch_size`` at a time: one ``detector.infer`` call (one ONNX
Runtime run) per batch. Pixels are HxW or HxWx3 uint8 for plain models; ``prepare`` converts
strips for other detectors (a fused model takes HxWx6 band cubes: ``spectral.as_bands``).
"""
from __future__ import annotations

from typing import Callable, Iterator, Protocol, Sequence

import numpy as np

from vad4space_ros.deploy.preprocess import as_rgb, resize_map
from vad4space_ros.deploy.tiling import blend_window, tile_starts, TileScores


class TileModel(Protocol):
    """What tiled scoring needs from a detector."""

    def infer(self, images: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Return raw scores (B), maps (BxHxW) and embeddings (BxD)."""


class StripError(ValueError):
    """A strip does not continue the image (wrong row offset, width or channels)."""


class StripScorer:
    """Score one long image delivered as strips of rows, in order."""

    def __init__(self, detector: TileModel, width: int, tile: int, stride: int,
                 batch_size: int = 16,
                 prepare: Callable[[np.ndarray], np.ndarray] = as_rgb) -> None:
        """Prepare for an image ``width`` pixels wide, cut into ``tile`` tiles every ``stride``.

        ``prepare`` turns a strip into the HxWxC array the detector takes (ValueError if it
        cannot).
        """
        if width < 1 or tile < 1 or not 1 <= stride <= tile or batch_size < 1:
            raise ValueError(f'bad strip scoring setup: width {width}, tile {tile}, '
                             f'stride {stride}, batch {batch_size}')
        self.detector = detector
        self.width = width
        self.tile = tile
        self.stride = stride
        self.batch_size = batch_size
        self.prepare = prepare
        self.tile_width = min(tile, width)
        self.cols = tile_starts(width, tile, stride)
        self.received = 0             # rows received so far
        self._pixels: np.ndarray | None = None  # image rows from _pixels_start
        self._pixels_start = 0
        self._sum = np.zeros((0, width), np.float32)      # blended map rows from _map_start
        self._weight = np.zeros((0, width), np.float32)
        self._map_start = 0
        self._next_row = 0            # start of the next regular tile row
        self._rows: list[int] = []
        self._scores: list[np.ndarray] = []
        self._best = (-np.inf, np.zeros(0, np.float32))
        self._finished = False

    def add(self, strip: np.ndarray, row_offset: int) -> list[tuple[int, np.ndarray]]:
        """Feed the next strip (HxW or HxWx3 uint8) starting at image row ``row_offset``.

        Return (first row, map rows) blocks of the map rows no later tile can change.
        """
        if self._finished:
            raise StripError('the image is finished; start a new StripScorer')
        if row_offset != self.received:
            raise StripError(f'strip starts at row {row_offset}, expected {self.received} '
                             '(strips must arrive in order, without gaps or repeats)')
        try:
            pixels = self.prepare(strip)
        except ValueError as error:
            raise StripError(str(error)) from None
        if pixels.shape[1] != self.width:
            raise StripError(f'strip is {pixels.shape[1]} px wide, the image {self.width}')
        if self._pixels is not None and pixels.shape[2:] != self._pixels.shape[2:]:
            raise StripError(f'strip has {pixels.shape[2]} channels, the image '
                             f'{self._pixels.shape[2]}')
        self._pixels = (pixels if self._pixels is None
                        else np.concatenate([self._pixels, pixels]))
        self.received += pixels.shape[0]
        self._grow_map(self.received)
        ready = []
        while self._next_row + self.tile <= self.received:
            ready.append(self._next_row)
            self._next_row += self.stride
        self._score_rows(ready, self.tile)
        return list(self._release(min(self._next_row, self.received - self.tile)))

    def finish(self) -> tuple[list[tuple[int, np.ndarray]], TileScores]:
        """End the image: score the bottom-edge tile row; return the last map rows and scores."""
        if self._finished:
            raise StripError('finish() was already called')
        if self.received == 0:
            raise StripError('no strip was received')
        self._finished = True
        height = self.received
        tile_height = min(self.tile, height)
        last = height - tile_height
        if not self._rows or self._rows[-1] != last:
            self._score_rows([last], tile_height)
        blocks = list(self._release(height))
        scores = TileScores(  # tile rows are scored top to bottom, the edge row last
            rows=np.asarray(self._rows, np.int64), cols=self.cols, tile_height=tile_height,
            tile_width=self.tile_width, grid=np.stack(self._scores),
            best_embedding=self._best[1])
        return blocks, scores

    def _grow_map(self, rows: int) -> None:
        extra = rows - (self._map_start + self._sum.shape[0])
        if extra > 0:
            padding = np.zeros((extra, self.width), np.float32)
            self._sum = np.concatenate([self._sum, padding])
            self._weight = np.concatenate([self._weight, padding])

    def _tiles(self, rows: list[int], tile_height: int) -> Iterator[tuple[int, int, np.ndarray]]:
        for row in rows:
            top = row - self._pixels_start
            for col in self.cols:
                yield row, int(col), self._pixels[top:top + tile_height,
                                                  col:col + self.tile_width]

    def _score_rows(self, rows: list[int], tile_height: int) -> None:
        """Score every tile of ``rows`` in batches and blend their maps in."""
        if not rows:
            return
        window = blend_window(tile_height, self.tile_width)
        grid = {row: np.zeros(len(self.cols), np.float32) for row in rows}
        col_index = {int(col): index for index, col in enumerate(self.cols)}
        pending = list(self._tiles(rows, tile_height))
        for start in range(0, len(pending), self.batch_size):
            batch = pending[start:start + self.batch_size]
            raw, maps, embeddings = self.detector.infer([crop for _, _, crop in batch])
            for (row, col, _), score, tile_map, embedding in zip(batch, raw, maps, embeddings):
                grid[row][col_index[col]] = score
                if score > self._best[0]:
                    self._best = (float(score), np.asarray(embedding, np.float32))
                values = resize_map(tile_map, (tile_height, self.tile_width))
                top = row - self._map_start
                self._sum[top:top + tile_height, col:col + self.tile_width] += values * window
                self._weight[top:top + tile_height, col:col + self.tile_width] += window
        for row in rows:
            self._rows.append(row)
            self._scores.append(grid[row])

    def _release(self, until: int) -> Iterator[tuple[int, np.ndarray]]:
        """Yield finished map rows below ``until``; drop image rows no tile needs any more."""
        count = until - self._map_start
        if count > 0:
            block = self._sum[:count] / self._weight[:count]
            yield self._map_start, block
            self._sum = self._sum[count:]
            self._weight = self._weight[count:]
            self._map_start = until
        keep_from = max(min(self._next_row, self.received - self.tile), 0)
        if keep_from > self._pixels_start:
            self._pixels = self._pixels[keep_from - self._pixels_start:]
            self._pixels_start = keep_from


def score_tiled(detector: TileModel, image: np.ndarray, tile: int, stride: int,
                batch_size: int = 16, prepare: Callable[[np.ndarray], np.ndarray] = as_rgb
                ) -> tuple[np.ndarray, TileScores]:
    """Score a whole frame in tiles (see StripScorer); return (full-res raw map, tile scores)."""
    height, width = image.shape[:2]
    scorer = StripScorer(detector, width, tile, stride, batch_size, prepare)
    anomaly_map = np.empty((height, width), np.float32)
    blocks = scorer.add(image, 0)
    last_blocks, scores = scorer.finish()
    for first, block in blocks + last_blocks:
        anomaly_map[first:first + block.shape[0]] = block
    return anomaly_map, scores
