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

"""Image message fields <-> numpy arrays, without cv_bridge (ROS-free).

``sensor_msgs/Image`` is described here by :class:`RawImage` (the same fields, plain Python), so
the conversion is testable without ROS. Supported encodings:

=============  ========  ========  ==========================================================
encoding       dtype     channels  uint8 view (:func:`to_rgb8`)
=============  ========  ========  ==========================================================
mono8, 8UC1    uint8     1         as is (grey)
mono16, 16UC1  uint16    1         ``value / sixteen_bit_max * 255`` (grey)
rgb8, 8UC3     uint8     3         as is (8UC3 is read as RGB)
bgr8           uint8     3         channels swapped to RGB
rgba8, bgra8   uint8     4         alpha dropped, RGB order
rgb16, bgr16   uint16    3         RGB order, scaled like mono16
rgba16, bgra16 uint16    4         alpha dropped, RGB order, scaled like mono16
32FC1          float32   1         ``value / float_max * 255``, clipped (grey)
8UC6           uint8     6         multispectral, see below
16UC6          uint16    6         multispectral, scaled like mono16
32FC6          float32   6         multispectral, scaled like 32FC1
=============  ========  ========  ==========================================================

**Multispectral convention (6 bands).** A 6-band frame is published band-interleaved by pixel
(``data[row*step + col*6*itemsize + band*itemsize]``) with encoding ``8UC6``, ``16UC6`` or
``32FC6``. Bands 0, 1, 2 are the broadband red, green and blue channels (for a Mastcam-like camera
the Bayer RGB filter) and bands 3..5 narrow-band filters. The models run on RGB, so
``rgb_bands`` (node parameter ``multispectral_rgb_bands``) picks which three bands feed R, G, B;
the default ``(0, 1, 2)`` uses the broadband colour bands.

Every malformed input raises :class:`ImageEncodingError` (a ``ValueError``) naming the problem:
zero size, unknown encoding, ``step`` smaller than a row, ``data`` length different from
``step * height``, NaN/inf in float images, undecodable compressed bytes.

**Frame size limit.** :func:`check_frame_size` refuses frames of more than ``max_pixels``
pixels with :class:`FrameTooLargeError`. Raw frames are checked from the message's ``width`` and
``height``; compressed ones from their header (:func:`compressed_dimensions`, Pillow's lazy
``Image.open``) *before* anything is decoded, so a small PNG that would decode to 10000x10000
costs nothing.
"""
from __future__ import annotations

from dataclasses import dataclass
import io
from pathlib import Path
import warnings

import numpy as np
from PIL import Image, UnidentifiedImageError

MULTISPECTRAL_BANDS = 6
DEFAULT_RGB_BANDS = (0, 1, 2)

# encoding -> (numpy dtype, channels)
ENCODINGS: dict[str, tuple[np.dtype, int]] = {
    'mono8': (np.dtype(np.uint8), 1),
    '8UC1': (np.dtype(np.uint8), 1),
    'mono16': (np.dtype(np.uint16), 1),
    '16UC1': (np.dtype(np.uint16), 1),
    'rgb8': (np.dtype(np.uint8), 3),
    '8UC3': (np.dtype(np.uint8), 3),
    'bgr8': (np.dtype(np.uint8), 3),
    'rgba8': (np.dtype(np.uint8), 4),
    'bgra8': (np.dtype(np.uint8), 4),
    'rgb16': (np.dtype(np.uint16), 3),
    'bgr16': (np.dtype(np.uint16), 3),
    'rgba16': (np.dtype(np.uint16), 4),
    'bgra16': (np.dtype(np.uint16), 4),
    '32FC1': (np.dtype(np.float32), 1),
    '8UC6': (np.dtype(np.uint8), MULTISPECTRAL_BANDS),
    '16UC6': (np.dtype(np.uint16), MULTISPECTRAL_BANDS),
    '32FC6': (np.dtype(np.float32), MULTISPECTRAL_BANDS),
}


DEFAULT_MAX_FRAME_PIXELS = 25_000_000  # 5,000 x 5,000; a 1600x1200 frame is 1.9 M


class ImageEncodingError(ValueError):
    """An image message cannot be converted (bad size, layout, encoding or values)."""


class FrameTooLargeError(ImageEncodingError):
    """A frame has more pixels than the configured limit (checked before decoding)."""


def check_frame_size(width: int, height: int, max_pixels: int) -> None:
    """Raise FrameTooLargeError when ``width * height`` exceeds ``max_pixels`` (0: no limit)."""
    if max_pixels > 0 and width * height > max_pixels:
        raise FrameTooLargeError(
            f'frame of {width}x{height} = {width * height:,} pixels exceeds max_frame_pixels '
            f'{max_pixels:,}; send it as strips or raise the limit')


def compressed_dimensions(source: bytes | str | Path) -> tuple[int, int]:
    """Return (width, height) of JPEG/PNG bytes or file from the header alone (no decoding)."""
    try:
        with warnings.catch_warnings():  # the size check below is the warning that matters
            warnings.simplefilter('ignore', Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as image:
                return image.size
    except Image.DecompressionBombError as error:
        raise FrameTooLargeError(f'compressed frame header: {error}') from None
    except (OSError, UnidentifiedImageError, SyntaxError) as error:
        raise ImageEncodingError(f'cannot read the compressed image header: {error}') from None


@dataclass
class RawImage:
    """The fields of a ``sensor_msgs/Image`` (without the header)."""

    height: int
    width: int
    encoding: str
    is_bigendian: bool
    step: int
    data: bytes | memoryview


@dataclass
class ScaleOptions:
    """How 16-bit and float images are brought to the 0..255 range the models expect."""

    sixteen_bit_max: int = 65535
    float_max: float = 1.0
    rgb_bands: tuple[int, int, int] = DEFAULT_RGB_BANDS


def image_to_array(image: RawImage) -> np.ndarray:
    """Return the pixels as an HxW (1 channel) or HxWxC array in native byte order.

    Rows are copied out of the message buffer (padding at the end of each row is dropped).
    """
    if image.encoding not in ENCODINGS:
        raise ImageEncodingError(
            f'unsupported encoding {image.encoding!r}; supported: {", ".join(ENCODINGS)}')
    dtype, channels = ENCODINGS[image.encoding]
    if image.height <= 0 or image.width <= 0:
        raise ImageEncodingError(f'zero-size image ({image.width}x{image.height})')
    row_bytes = image.width * channels * dtype.itemsize
    if image.step < row_bytes:
        raise ImageEncodingError(
            f'step {image.step} is smaller than one row of {image.width} {image.encoding} '
            f'pixels ({row_bytes} bytes)')
    expected = image.step * image.height
    if len(image.data) != expected:
        raise ImageEncodingError(
            f'data holds {len(image.data)} bytes but step*height = {image.step}*{image.height}'
            f' = {expected}')
    buffer = np.frombuffer(image.data, dtype=np.uint8).reshape(image.height, image.step)
    rows = buffer[:, :row_bytes]
    wire_dtype = dtype.newbyteorder('>' if image.is_bigendian else '<')
    pixels = np.ascontiguousarray(rows).view(wire_dtype).astype(dtype, copy=False)
    shape = (image.height, image.width) if channels == 1 else (
        image.height, image.width, channels)
    pixels = pixels.reshape(shape)
    if dtype.kind == 'f' and not np.isfinite(pixels).all():
        bad = int(np.count_nonzero(~np.isfinite(pixels)))
        raise ImageEncodingError(f'{image.encoding} image holds {bad} NaN/inf value(s)')
    return pixels


def array_to_image(array: np.ndarray, encoding: str) -> RawImage:
    """Pack an array into little-endian, unpadded :class:`RawImage` fields."""
    if encoding not in ENCODINGS:
        raise ImageEncodingError(f'unsupported encoding {encoding!r}')
    dtype, channels = ENCODINGS[encoding]
    array = np.asarray(array)
    if array.ndim == 2 and channels == 1:
        height, width = array.shape
    elif array.ndim == 3 and array.shape[2] == channels:
        height, width = array.shape[:2]
    else:
        raise ImageEncodingError(
            f'array of shape {array.shape} does not fit encoding {encoding} '
            f'({channels} channel(s))')
    if height == 0 or width == 0:
        raise ImageEncodingError(f'zero-size image ({width}x{height})')
    packed = np.ascontiguousarray(array, dtype=dtype.newbyteorder('<'))
    return RawImage(height=height, width=width, encoding=encoding, is_bigendian=False,
                    step=width * channels * dtype.itemsize, data=packed.tobytes())


def _to_uint8(pixels: np.ndarray, options: ScaleOptions) -> np.ndarray:
    """Scale uint16 or float pixels to uint8 with the documented convention."""
    if pixels.dtype == np.uint8:
        return pixels
    if pixels.dtype == np.uint16:
        scale = 255.0 / options.sixteen_bit_max
    else:
        scale = 255.0 / options.float_max
    return np.clip(np.rint(pixels.astype(np.float32) * scale), 0, 255).astype(np.uint8)


def to_rgb8(pixels: np.ndarray, encoding: str,
            options: ScaleOptions | None = None) -> np.ndarray:
    """Convert decoded pixels to what the models take: HxW (grey) or HxWx3 uint8 RGB."""
    options = options or ScaleOptions()
    if encoding not in ENCODINGS:
        raise ImageEncodingError(f'unsupported encoding {encoding!r}')
    channels = ENCODINGS[encoding][1]
    if channels == MULTISPECTRAL_BANDS:
        bands = tuple(options.rgb_bands)
        if len(bands) != 3 or not all(0 <= b < MULTISPECTRAL_BANDS for b in bands):
            raise ImageEncodingError(
                f'rgb_bands must be three band indices in 0..{MULTISPECTRAL_BANDS - 1}, '
                f'got {bands}')
        pixels = pixels[:, :, list(bands)]
    elif encoding.startswith('bgr'):
        pixels = pixels[:, :, [2, 1, 0]]
    elif channels == 4:
        pixels = pixels[:, :, :3]
    return np.ascontiguousarray(_to_uint8(pixels, options))


_JPEG_MAGIC = b'\xff\xd8\xff'
_PNG_MAGIC = b'\x89PNG\r\n\x1a\n'


def decode_compressed(image_format: str, data: bytes,
                      max_pixels: int = 0) -> tuple[np.ndarray, str]:
    """Decode ``sensor_msgs/CompressedImage`` bytes (JPEG or PNG) to (pixels, encoding).

    The format string is informational (``jpeg``, ``png``, ``bgr8; jpeg compressed bgr8``);
    the container is recognised from its magic bytes. ``compressedDepth`` PNGs (depth images
    with an extra header) are not camera images and are rejected. With ``max_pixels`` > 0 the
    header's dimensions are checked first (:func:`check_frame_size`).
    """
    import cv2

    if 'compresseddepth' in image_format.lower():
        raise ImageEncodingError('compressedDepth images are not supported')
    data = bytes(data)
    if not data:
        raise ImageEncodingError('compressed image has no data')
    if not (data.startswith(_JPEG_MAGIC) or data.startswith(_PNG_MAGIC)):
        raise ImageEncodingError(
            f'compressed image (format {image_format!r}) is neither JPEG nor PNG')
    if max_pixels > 0:
        check_frame_size(*compressed_dimensions(data), max_pixels)
    decoded = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if decoded is None or decoded.size == 0:
        raise ImageEncodingError(
            f'cannot decode compressed image (format {image_format!r}, {len(data)} bytes; '
            'truncated or corrupt?)')
    if decoded.ndim == 2:
        encoding = 'mono16' if decoded.dtype == np.uint16 else 'mono8'
        return decoded, encoding
    depth = '16' if decoded.dtype == np.uint16 else '8'
    if decoded.shape[2] in (3, 4):
        return decoded, ('bgr' if decoded.shape[2] == 3 else 'bgra') + depth
    raise ImageEncodingError(
        f'decoded compressed image has unsupported layout {decoded.shape} {decoded.dtype}')
