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

"""Reading one benchmark file: images, Mastcam ``.npy`` tiles, and the error both raise.

The lowest layer of :mod:`vad4space_ros.data` (it imports no other data module), so
:mod:`.samples`, :mod:`.lroc` and :mod:`.mastcam` can all use it without import cycles. The tile
format (six bands R1..R6 = 447..1013 nm, DN 0..255, the 805/527/447 nm RGB view) is described in
:mod:`.mastcam`. A sample is a :class:`~.samples.Sample` or a path.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Union

import numpy as np
from PIL import Image, UnidentifiedImageError

IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png', '.tif', '.tiff', '.bmp')
BANDS_SUFFIX = '.npy'
TILE_SHAPE = (64, 64, 6)
BAND_FILTERS = ('R1', 'R2', 'R3', 'R4', 'R5', 'R6')
BAND_WAVELENGTHS_NM = (447, 527, 805, 908, 937, 1013)
RGB_BANDS = (2, 1, 0)
DN_MAX = 255.0


class DatasetError(ValueError):
    """A dataset root has the wrong layout or a file cannot be read."""


def read_tile(path: Path | str) -> np.ndarray:
    """Read one tile as a float array ``HxWx6``; raise DatasetError when unreadable."""
    try:
        tile = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as error:
        raise DatasetError(f'cannot read tile {path}: {error}') from error
    if tile.ndim != 3 or tile.shape[2] != len(BAND_FILTERS) or not np.issubdtype(
            tile.dtype, np.number):
        raise DatasetError(
            f'tile {path} has shape {tile.shape} dtype {tile.dtype}, expected HxWx6 numbers')
    return tile


def check_tile_header(path: Path) -> None:
    """Validate a tile's ``.npy`` header and size without reading its data."""
    with open(path, 'rb') as handle:
        version = np.lib.format.read_magic(handle)
        reader = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                  else np.lib.format.read_array_header_2_0)
        shape, _, dtype = reader(handle)
        expected = handle.tell() + int(np.prod(shape)) * dtype.itemsize
    if len(shape) != 3 or shape[2] != len(BAND_FILTERS):
        raise ValueError(f'shape {shape} is not HxWx6')
    if path.stat().st_size < expected:
        raise ValueError(f'truncated: {path.stat().st_size} bytes, header needs {expected}')


def _dn_scale(tile: np.ndarray) -> float:
    """Return the factor that maps the tile's values to DN (1, or 255 for [0, 1] tiles)."""
    finite = tile[np.isfinite(tile)]
    return DN_MAX if finite.size and float(finite.max()) <= 1.0 else 1.0


def normalise_tile(tile: np.ndarray) -> np.ndarray:
    """Return all bands as float32 in ``[0, 1]`` (DN / 255, clipped; NaN becomes 0)."""
    dn = np.nan_to_num(tile.astype(np.float64) * _dn_scale(tile), nan=0.0)
    return np.clip(dn / DN_MAX, 0.0, 1.0).astype(np.float32)


def rgb_view(tile: np.ndarray) -> np.ndarray:
    """Return the documented false-colour RGB view (bands 805/527/447 nm) as uint8."""
    dn = np.nan_to_num(tile[..., list(RGB_BANDS)].astype(np.float64) * _dn_scale(tile), nan=0.0)
    return np.clip(np.rint(dn), 0, 255).astype(np.uint8)


PathLike = Union[Path, str]


def _path_of(sample_or_path: Any) -> Path:
    """Return the path of a Sample (anything with ``.path``) or of a path itself."""
    return Path(getattr(sample_or_path, 'path', sample_or_path))


def load_rgb(sample_or_path: Any) -> np.ndarray:
    """Read a sample as an ``HxWx3 uint8`` RGB array; raise DatasetError when unreadable."""
    path = _path_of(sample_or_path)
    if path.suffix.lower() == BANDS_SUFFIX:
        return rgb_view(read_tile(path))
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert('RGB'), dtype=np.uint8).copy()
    except (OSError, UnidentifiedImageError, SyntaxError) as error:
        raise DatasetError(f'cannot read image {path}: {error}') from error


def load_bands(sample_or_path: Any) -> np.ndarray:
    """Read all bands of a sample as ``HxWxC float32`` in ``[0, 1]``.

    Mastcam tiles give their six filters (see :data:`BAND_WAVELENGTHS_NM`); images give
    one band (grayscale) or three (colour).
    """
    path = _path_of(sample_or_path)
    if path.suffix.lower() == BANDS_SUFFIX:
        return normalise_tile(read_tile(path))
    rgb = load_rgb(path).astype(np.float32) / 255.0
    if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 1], rgb[..., 2]):
        return rgb[..., :1].copy()
    return rgb


def is_readable(path: Path) -> str | None:
    """Check a file cheaply (header only); return None when fine, else the reason."""
    try:
        if path.suffix.lower() == BANDS_SUFFIX:
            check_tile_header(path)
        else:
            with Image.open(path) as image:
                image.verify()
    except (OSError, ValueError, UnidentifiedImageError, SyntaxError) as error:
        return str(error) or type(error).__name__
    return None
