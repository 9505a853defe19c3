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

"""Image field <-> numpy conversion: every supported encoding and every malformed input."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from vad4space_ros.deploy.image_encoding import (
    array_to_image, decode_compressed, ENCODINGS, image_to_array, ImageEncodingError, RawImage,
    ScaleOptions, to_rgb8)

RNG = np.random.default_rng(7)


def random_pixels(encoding: str, height: int = 5, width: int = 7) -> np.ndarray:
    """Return random pixels of the dtype and channel count of ``encoding``."""
    dtype, channels = ENCODINGS[encoding]
    shape = (height, width) if channels == 1 else (height, width, channels)
    if dtype.kind == 'f':
        return RNG.uniform(0.0, 1.0, shape).astype(dtype)
    return RNG.integers(0, np.iinfo(dtype).max, shape, endpoint=True).astype(dtype)


@pytest.mark.parametrize('encoding', sorted(ENCODINGS))
def test_round_trip_every_encoding(encoding: str) -> None:
    pixels = random_pixels(encoding)
    raw = array_to_image(pixels, encoding)
    assert raw.step * raw.height == len(raw.data)
    np.testing.assert_array_equal(image_to_array(raw), pixels)


@pytest.mark.parametrize('encoding', ['mono16', 'rgb16', '32FC1', '16UC6'])
def test_big_endian_data_is_read_in_native_order(encoding: str) -> None:
    pixels = random_pixels(encoding)
    dtype = ENCODINGS[encoding][0]
    data = pixels.astype(dtype.newbyteorder('>')).tobytes()
    raw = RawImage(pixels.shape[0], pixels.shape[1], encoding, True,
                   len(data) // pixels.shape[0], data)
    decoded = image_to_array(raw)
    assert decoded.dtype == dtype and decoded.dtype.isnative
    np.testing.assert_array_equal(decoded, pixels)


def test_row_padding_is_dropped() -> None:
    pixels = random_pixels('rgb8', 4, 3)
    padded = np.zeros((4, 3 * 3 + 5), np.uint8)
    padded[:, :9] = pixels.reshape(4, 9)
    padded[:, 9:] = 255
    raw = RawImage(4, 3, 'rgb8', False, 14, padded.tobytes())
    np.testing.assert_array_equal(image_to_array(raw), pixels)


def test_colour_orders_become_rgb() -> None:
    rgb = random_pixels('rgb8')
    bgr = rgb[:, :, ::-1]
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 9, np.uint8)])
    bgra = np.dstack([bgr, np.full(rgb.shape[:2], 9, np.uint8)])
    for pixels, encoding in ((rgb, 'rgb8'), (bgr, 'bgr8'), (rgba, 'rgba8'), (bgra, 'bgra8')):
        np.testing.assert_array_equal(to_rgb8(pixels, encoding), rgb)


def test_sixteen_bit_and_float_scaling_follow_the_options() -> None:
    twelve_bit = np.array([[0, 4095, 2048]], np.uint16)
    assert to_rgb8(twelve_bit, 'mono16', ScaleOptions(sixteen_bit_max=4095)).tolist() \
        == [[0, 255, 128]]
    assert to_rgb8(twelve_bit, 'mono16').tolist() == [[0, 16, 8]]
    reflectance = np.array([[0.0, 0.25, 0.5, 0.9]], np.float32)
    assert to_rgb8(reflectance, '32FC1', ScaleOptions(float_max=0.5)).tolist() \
        == [[0, 128, 255, 255]]


def test_multispectral_bands_are_selected_in_order() -> None:
    cube = np.stack([np.full((2, 3), 10 * (band + 1), np.uint8) for band in range(6)], axis=2)
    default = to_rgb8(cube, '8UC6')
    assert default[0, 0].tolist() == [10, 20, 30]
    chosen = to_rgb8(cube, '8UC6', ScaleOptions(rgb_bands=(5, 3, 0)))
    assert chosen.shape == (2, 3, 3) and chosen[0, 0].tolist() == [60, 40, 10]
    with pytest.raises(ImageEncodingError, match='rgb_bands'):
        to_rgb8(cube, '8UC6', ScaleOptions(rgb_bands=(0, 1, 6)))


BAD_IMAGES = {
    'unknown encoding': (RawImage(2, 2, 'yuv422_yuy2', False, 4, bytes(8)), 'unsupported'),
    'zero height': (RawImage(0, 4, 'mono8', False, 4, b''), 'zero-size'),
    'zero width': (RawImage(4, 0, 'rgb8', False, 0, b''), 'zero-size'),
    'step too small': (RawImage(2, 4, 'rgb8', False, 8, bytes(16)), 'step 8'),
    'truncated data': (RawImage(4, 4, 'mono8', False, 4, bytes(15)), '15 bytes'),
    'extra data': (RawImage(4, 4, 'mono8', False, 4, bytes(17)), '17 bytes'),
    'nan 32FC1': (RawImage(1, 2, '32FC1', False, 8,
                           np.array([0.5, np.nan], np.float32).tobytes()), 'NaN'),
    'inf 32FC6': (RawImage(1, 1, '32FC6', False, 24,
                           np.array([0, 0, np.inf, 0, 0, 0], np.float32).tobytes()), 'NaN/inf'),
}


@pytest.mark.parametrize('case', sorted(BAD_IMAGES))
def test_malformed_images_raise_a_clear_value_error(case: str) -> None:
    raw, message = BAD_IMAGES[case]
    with pytest.raises(ImageEncodingError, match=message) as caught:
        image_to_array(raw)
    assert isinstance(caught.value, ValueError)


def test_array_that_does_not_fit_the_encoding_is_refused() -> None:
    with pytest.raises(ImageEncodingError, match='does not fit'):
        array_to_image(np.zeros((4, 4, 3), np.uint8), 'mono8')


@pytest.mark.parametrize('extension,encoding', [('.png', 'bgr8'), ('.jpg', 'bgr8')])
def test_compressed_colour_images_decode(extension: str, encoding: str) -> None:
    bgr = np.zeros((24, 32, 3), np.uint8)
    bgr[:, :16] = (255, 0, 0)  # blue left half in BGR order
    ok, buffer = cv2.imencode(extension, bgr)
    assert ok
    pixels, decoded_encoding = decode_compressed(extension[1:], buffer.tobytes())
    assert decoded_encoding == encoding and pixels.shape == (24, 32, 3)
    rgb = to_rgb8(pixels, decoded_encoding)
    assert rgb[12, 4, 2] > 200 and rgb[12, 4, 0] < 50  # blue stays blue after BGR -> RGB


def test_compressed_grey_and_16_bit_png_decode() -> None:
    grey = RNG.integers(0, 255, (8, 9), endpoint=True).astype(np.uint8)
    pixels, encoding = decode_compressed('png', cv2.imencode('.png', grey)[1].tobytes())
    assert encoding == 'mono8'
    np.testing.assert_array_equal(pixels, grey)
    deep = RNG.integers(0, 65535, (8, 9), endpoint=True).astype(np.uint16)
    pixels, encoding = decode_compressed('png', cv2.imencode('.png', deep)[1].tobytes())
    assert encoding == 'mono16'
    np.testing.assert_array_equal(pixels, deep)


def test_bad_compressed_data_raises() -> None:
    jpeg = cv2.imencode('.jpg', np.zeros((64, 64, 3), np.uint8))[1].tobytes()
    with pytest.raises(ImageEncodingError, match='no data'):
        decode_compressed('jpeg', b'')
    with pytest.raises(ImageEncodingError, match='neither JPEG nor PNG'):
        decode_compressed('tiff', b'II*\x00' + bytes(64))
    with pytest.raises(ImageEncodingError, match='truncated or corrupt'):
        decode_compressed('jpeg', jpeg[:20])
    with pytest.raises(ImageEncodingError, match='compressedDepth'):
        decode_compressed('16UC1; compressedDepth png', jpeg)
