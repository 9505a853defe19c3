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

"""SYNTHETIC full camera frames built from generated tiles (tests and benchmarks/full_frames.py).

- :func:`mars_frame`: a Mastcam-like RGB frame (for example 1600x1200) tiled with generated
  64x64 ``typical`` tiles (:mod:`.synthetic_mars`, RGB view), optionally with one generated novel
  tile at a random cell. Tiles sit on a 64-px grid from the top-left corner; when the height is
  not a multiple of 64 the bottom tile row is moved up to end at the frame edge (it overlaps the
  row above), as the tiled scorer cuts it. The scorer's tiles then hold whole generated tiles,
  except the row above the bottom one, which holds a seam between two (in 1600x1200 frames: 25
  of 475 tiles). A seam is a mosaic artefact, not terrain, and raises those tiles' scores;
  heights that are multiples of 64 (1216) have no seam row. This is the
  favourable case for tiling: real frames are continuous terrain whose texture does not line
  up with any grid. With ``anywhere`` the novel tile is pasted at a random pixel position
  instead, so 64-px grid tiles each see only a part of it (next to typical texture).
- :func:`mars_terrain_frame`: a frame of continuous generated terrain
  (:func:`.synthetic_mars.render_terrain`: no tiles, no seams, patches that span many tiles),
  optionally with one novelty feathered in at a random pixel position; its typical tiles are
  :func:`terrain_tiles`, cut at random places from normal terrain frames, so a model fits on
  the same camera's normal frames instead of on the tile generator.
- :class:`ChipMosaic`: an arbitrarily long grey orbiter image (for example NAC size, 5,064 x
  52,224) tiled with a small pool of generated 227x227 LROC ``none`` chips, produced row block
  by row block so the whole image never exists in memory.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np

from vad4space_ros.data import synthetic_lunar, synthetic_mars
from vad4space_ros.data.files import rgb_view

MARS_TILE = synthetic_mars.SIZE
# Novel classes that show in the RGB view (half of the 'veins' and 'meteorite' tiles differ
# only in the near infrared, invisible to an RGB model, so they are left out).
RGB_VISIBLE_NOVELTIES = ('drill-hole', 'dump-pile', 'float', 'drt', 'broken-rock', 'bedrock')


@dataclass(frozen=True)
class Box:
    """A pixel box (top-left origin)."""

    x: int
    y: int
    width: int
    height: int

    def overlaps(self, x: int, y: int, width: int, height: int) -> bool:
        """Return whether this box and the given one share at least one pixel."""
        return (x < self.x + self.width and self.x < x + width
                and y < self.y + self.height and self.y < y + height)


def mars_tile(rng: np.random.Generator, category: str = 'typical',
              bands: bool = False) -> np.ndarray:
    """Render one 64x64 Mastcam-like tile of ``category``: RGB view, or 6 bands, as uint8."""
    tile = synthetic_mars.render_tile(rng, category)
    return tile.astype(np.uint8) if bands else rgb_view(tile)


def _starts(length: int) -> list[int]:
    starts = list(range(0, length - MARS_TILE + 1, MARS_TILE))
    if starts[-1] != length - MARS_TILE:
        starts.append(length - MARS_TILE)
    return starts


def _pooled_tile(rng: np.random.Generator, pool: Sequence[np.ndarray]) -> np.ndarray:
    """Return a pool tile, randomly rotated by a multiple of 90 degrees and maybe mirrored."""
    tile = np.rot90(pool[int(rng.integers(len(pool)))], int(rng.integers(4)))
    return tile[:, ::-1] if rng.random() < 0.5 else tile


def mars_frame(rng: np.random.Generator, height: int = 1200, width: int = 1600,
               novel: str | None = None, typical_pool: Sequence[np.ndarray] | None = None,
               bands: bool = False, anywhere: bool = False) -> tuple[np.ndarray, Box | None]:
    """Return an HxWx3 (``bands``: HxWx6) uint8 frame of typical tiles and the novel tile's box.

    The box is None for a normal frame. Typical tiles are rendered afresh, or (much faster)
    drawn from ``typical_pool`` (rendered tiles of the same kind) with a random rotation and
    mirroring each. The novel tile replaces a random grid cell, or with ``anywhere`` is pasted
    over the typical tiles at a random pixel position.
    """
    if height < MARS_TILE or width < MARS_TILE:
        raise ValueError(f'a frame must be at least {MARS_TILE}x{MARS_TILE}')
    frame = np.empty((height, width, 6 if bands else 3), np.uint8)
    rows, cols = _starts(height), _starts(width)
    cell = ((int(rng.integers(len(rows))), int(rng.integers(len(cols))))
            if novel and not anywhere else None)
    box = None
    for i, y in enumerate(rows):
        for j, x in enumerate(cols):
            if (i, j) == cell:
                tile = mars_tile(rng, novel, bands)
                box = Box(x, y, MARS_TILE, MARS_TILE)
            elif typical_pool is not None:
                tile = _pooled_tile(rng, typical_pool)
            else:
                tile = mars_tile(rng, bands=bands)
            frame[y:y + MARS_TILE, x:x + MARS_TILE] = tile
    if novel and anywhere:
        y, x = (int(rng.integers(side - MARS_TILE + 1)) for side in (height, width))
        frame[y:y + MARS_TILE, x:x + MARS_TILE] = mars_tile(rng, novel, bands)
        box = Box(x, y, MARS_TILE, MARS_TILE)
    return frame, box


def mars_terrain_frame(rng: np.random.Generator, height: int = 1200, width: int = 1600,
                       novel: str | None = None,
                       bands: bool = False) -> tuple[np.ndarray, Box | None]:
    """Return an HxWx3 (``bands``: HxWx6) uint8 terrain frame and its novelty's 64x64 box."""
    dn, corner = synthetic_mars.render_terrain(rng, height, width, novel)
    frame = dn.astype(np.uint8) if bands else rgb_view(dn)
    return frame, None if corner is None else Box(corner[1], corner[0], MARS_TILE, MARS_TILE)


def terrain_tiles(rng: np.random.Generator, count: int, per_frame: int = 50,
                  shape: tuple[int, int] = (1200, 1600)) -> Iterator[np.ndarray]:
    """Yield ``count`` 64x64x6 uint8 tiles cut at random places from normal terrain frames."""
    for first in range(0, count, per_frame):
        frame, _ = mars_terrain_frame(rng, *shape, bands=True)
        for _ in range(min(per_frame, count - first)):
            y, x = (int(rng.integers(side - MARS_TILE + 1)) for side in shape)
            yield frame[y:y + MARS_TILE, x:x + MARS_TILE].copy()


class ChipMosaic:
    """A long grey image of 227x227 generated lunar chips, generated in row blocks."""

    def __init__(self, width: int, height: int, seed: int = 0, pool_size: int = 24) -> None:
        """Render ``pool_size`` normal chips; the chip at each grid cell is drawn from the pool."""
        rng = np.random.default_rng(seed)
        self.width, self.height = width, height
        self.chip = synthetic_lunar.CHIP_SIZE
        self.pool = [synthetic_lunar.render_chip(rng, 'none') for _ in range(pool_size)]
        chip_rows = -(-height // self.chip)
        chip_cols = -(-width // self.chip)
        self._layout = rng.integers(pool_size, size=(chip_rows, chip_cols))

    def rows(self, start: int, stop: int) -> np.ndarray:
        """Return image rows ``start:stop`` as an (stop - start) x width uint8 array."""
        stop = min(stop, self.height)
        block = np.empty((stop - start, self.width), np.uint8)
        chip = self.chip
        for chip_row in range(start // chip, -(-stop // chip)):
            top = chip_row * chip
            first, last = max(start, top), min(stop, top + chip)
            for chip_col, index in enumerate(self._layout[chip_row]):
                left = chip_col * chip
                right = min(left + chip, self.width)
                block[first - start:last - start, left:right] = \
                    self.pool[index][first - top:last - top, :right - left]
        return block

    def strips(self, rows_per_strip: int) -> Iterator[tuple[int, np.ndarray]]:
        """Yield (row offset, strip) over the whole image, top to bottom."""
        for start in range(0, self.height, rows_per_strip):
            yield start, self.rows(start, start + rows_per_strip)
