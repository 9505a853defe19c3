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

"""Fit the RX branch (:mod:`vad4space_ros.deploy.spectral`); fuse it with an RGB model."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from sklearn.mixture import GaussianMixture

from vad4space_ros.data.samples import load_bands
from vad4space_ros.deploy.calibration import Calibration
from vad4space_ros.deploy.detector import Detector
from vad4space_ros.deploy.spectral import (
    as_bands, bands_to_rgb, check_band_count, FusedDetector, pixel_features,
    RGB_IMAGE_BANDS, SpectralConfig, SpectralRX)
from vad4space_ros.training.fitting import fit_detector, FitConfig, split_calibration


def _band_count(cubes: Sequence[np.ndarray]) -> int:
    """Return the band count the cubes share (6 or 3); raise ValueError otherwise."""
    counts = {np.shape(c)[2] if np.ndim(c) == 3 else 1 for c in cubes}
    if len(counts) != 1:
        raise ValueError(f'the spectral branch needs images of one band count, got '
                         f'{sorted(counts)}')
    return check_band_count(counts.pop())


def fit_rx(cubes: Sequence[np.ndarray], config: SpectralConfig = SpectralConfig(),
           seed: int = 0) -> SpectralRX:
    """Estimate the normal pixels' mean and covariance (a random pixel subset if many).

    With ``config.components`` K > 1, a mixture of K full-covariance Gaussians (scikit-learn's
    EM, seeded) instead of one. The cubes share one band count, 6 (multispectral) or 3 (RGB
    images, whose RGB view is the image itself, whatever ``config.rgb_bands`` says); others
    are refused.
    """
    if not cubes:
        raise ValueError('the spectral branch needs training images')
    count = _band_count(cubes)
    if count == 3:
        config = replace(config, rgb_bands=RGB_IMAGE_BANDS)
    features = np.concatenate([pixel_features(c).reshape(-1, count) for c in cubes])
    if len(features) > config.max_pixels:
        rng = np.random.default_rng(seed)
        features = features[rng.choice(len(features), config.max_pixels, replace=False)]
    if config.components == 1:
        means = features.mean(axis=0, dtype=np.float64)[None]
        covariances = np.cov(features, rowvar=False, dtype=np.float64)[None]
    else:
        mixture = GaussianMixture(config.components, covariance_type='full', random_state=seed,
                                  verbose=1, verbose_interval=10)  # EM iterations as progress
        mixture.fit(features.astype(np.float64))
        means, covariances = mixture.means_, mixture.covariances_
    traces = np.trace(covariances, axis1=1, axis2=2)[:, None, None]
    covariances = covariances + np.eye(count) * config.ridge * traces / count
    return SpectralRX(means, np.linalg.inv(covariances), config)


def fit_spectral_fusion(rgb: Detector, train: Sequence[np.ndarray],
                        calibration: Sequence[np.ndarray],
                        config: SpectralConfig = SpectralConfig(), seed: int = 0,
                        false_alarm_rate: float | None = None) -> FusedDetector:
    """Add a spectral branch fitted on normal band cubes to a fitted RGB detector.

    ``calibration`` (held-out normal cubes, ideally the RGB model's own calibration images)
    calibrates the spectral score and the fused score; the false-alarm rate defaults to the
    RGB model's.
    """
    rate = false_alarm_rate or rgb.calibration.false_alarm_rate
    spectral = fit_rx(train, config, seed)
    spectral_calibration = Calibration.from_normal_scores(spectral.scores(calibration), rate)
    partial = FusedDetector(rgb, spectral, spectral_calibration, Calibration(1.0, 0.0, rate, 0))
    partial.fusion_calibration = partial.calibrate_fusion(calibration, rate)
    return partial


def fit_fused_detector(train: Sequence[str | Path], fit_config: FitConfig,
                       calibration: Sequence[str | Path] | None = None,
                       config: SpectralConfig = SpectralConfig(),
                       load_cube: Callable[[Path], np.ndarray] | None = None) -> FusedDetector:
    """Fit the RGB method and the spectral branch on 6-band files or RGB images.

    The spectral branch models all bands of the files (6-band ``.npy`` tiles: the six filters,
    the RGB view per ``config.rgb_bands``; RGB images: their three colours, the view is the
    image). With ``fit_config.robust`` set, it skips the images the screening dropped.
    """
    read = load_cube or load_bands
    if calibration is None:
        train, calibration = split_calibration(list(train), fit_config.calibration_fraction,
                                               fit_config.seed)
    train_cubes = [read(Path(p)) for p in train]
    calibration_cubes = [read(Path(p)) for p in calibration]
    view = (RGB_IMAGE_BANDS if _band_count(train_cubes + calibration_cubes) == 3
            else config.rgb_bands)
    train_cubes, calibration_cubes = ([as_bands(c) for c in cubes]
                                      for cubes in (train_cubes, calibration_cubes))
    rgb = fit_detector([bands_to_rgb(c, view) for c in train_cubes], fit_config,
                       [bands_to_rgb(c, view) for c in calibration_cubes])
    dropped = set(rgb.metadata.get('robust', {}).get('dropped_indices', []))
    kept_cubes = [c for i, c in enumerate(train_cubes) if i not in dropped]
    return fit_spectral_fusion(rgb, kept_cubes, calibration_cubes, config, fit_config.seed,
                               fit_config.false_alarm_rate)
