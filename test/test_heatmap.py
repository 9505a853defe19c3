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

"""Heatmap overlay: normalisation, colour order, blending and input checks."""
from __future__ import annotations

import numpy as np
import pytest

from vad4space_ros.deploy.heatmap import (
    HeatmapError, map_range_from_calibration, normalise_map, overlay)


def test_fixed_range_keeps_colours_comparable_between_frames() -> None:
    quiet = np.full((4, 4), 1.0, np.float32)
    loud = np.full((4, 4), 9.0, np.float32)
    assert normalise_map(quiet, (0.0, 10.0)).max() == pytest.approx(0.1)
    assert normalise_map(loud, (0.0, 10.0)).max() == pytest.approx(0.9)
    stretched = normalise_map(np.array([[1.0, 3.0]], np.float32))
    assert stretched.tolist() == [[0.0, 1.0]]
    assert normalise_map(np.array([[-5.0, 50.0]], np.float32), (0.0, 10.0)).tolist() \
        == [[0.0, 1.0]]


def test_calibrated_range_puts_the_threshold_mid_scale() -> None:
    low, high = map_range_from_calibration(threshold_raw=12.0, normal_raw=10.0)
    assert (low, high) == (10.0, 14.0)
    assert normalise_map(np.array([[12.0]], np.float32), (low, high))[0, 0] == 0.5
    with pytest.raises(HeatmapError):
        map_range_from_calibration(threshold_raw=1.0, normal_raw=1.0)


def test_overlay_is_red_where_the_map_is_high_and_blue_where_low() -> None:
    image = np.full((8, 8), 128, np.uint8)
    anomaly_map = np.zeros((8, 8), np.float32)
    anomaly_map[:, 4:] = 1.0
    rgb = overlay(image, anomaly_map, alpha=1.0, value_range=(0.0, 1.0))
    assert rgb.shape == (8, 8, 3) and rgb.dtype == np.uint8
    low_r, _, low_b = rgb[0, 0].astype(int)
    high_r, _, high_b = rgb[0, 7].astype(int)
    assert low_b > low_r and high_r > high_b
    untouched = overlay(image, anomaly_map, alpha=0.0)
    assert (untouched == 128).all()


def test_map_at_model_resolution_is_resized_to_the_image() -> None:
    image = np.zeros((30, 40, 3), np.uint8)
    rgb = overlay(image, np.random.default_rng(0).random((8, 8)).astype(np.float32), 0.5)
    assert rgb.shape == (30, 40, 3)


@pytest.mark.parametrize('image,anomaly_map,alpha', [
    (np.zeros((4, 4), np.float32), np.zeros((4, 4)), 0.5),
    (np.zeros((4, 4, 4), np.uint8), np.zeros((4, 4)), 0.5),
    (np.zeros((4, 4), np.uint8), np.zeros((0, 4)), 0.5),
    (np.zeros((4, 4), np.uint8), np.zeros((4, 4)), 1.5),
])
def test_bad_overlay_inputs_raise(image: np.ndarray, anomaly_map: np.ndarray,
                                  alpha: float) -> None:
    with pytest.raises(HeatmapError):
        overlay(image, anomaly_map, alpha)
