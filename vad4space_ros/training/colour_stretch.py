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

"""Fit a decorrelation stretch on the pixels of normal training images.

The pixels' colour covariance ``C = V diag(lambda) V^T`` is dominated by brightness on Mars
and Moon images; the stretch ``V diag(s / sqrt(lambda)) V^T`` gives every principal axis the
same spread ``s`` (the mean per-channel standard deviation, so overall contrast stays about the
same), the classic decorrelation stretch of planetary colour imaging (Gillespie et al. 1986).
"""
from __future__ import annotations

from typing import Iterable

import numpy as np

from vad4space_ros.deploy.preprocess import as_rgb, DecorrelationStretch

SAMPLED_PIXELS = 2_000_000
# The weakest colour axis must vary by at least this much (in 8-bit DN) for a stretch to
# amplify colour rather than quantisation noise; grey images (LROC) fail it.
MIN_AXIS_STD_DN = 1.0


def fit_decorrelation_stretch(images: Iterable[np.ndarray], count: int,
                              seed: int = 0) -> DecorrelationStretch:
    """Fit the stretch on ``count`` RGB uint8 images, read one at a time.

    At most ``SAMPLED_PIXELS`` pixels are used, drawn evenly from the images. Raises
    ValueError when there are no images or the images have (almost) no colour.
    """
    if count < 1:
        raise ValueError('a decorrelation stretch needs training images')
    per_image = max(1, SAMPLED_PIXELS // count)
    rng = np.random.default_rng(seed)
    samples = []
    for image in images:
        pixels = as_rgb(image).reshape(-1, 3)
        if len(pixels) > per_image:
            pixels = pixels[rng.choice(len(pixels), per_image, replace=False)]
        samples.append(pixels)
    pixels = np.concatenate(samples).astype(np.float64) / 255.0
    covariance = np.cov(pixels, rowvar=False)
    variances, axes = np.linalg.eigh(covariance)
    weakest_dn = float(np.sqrt(max(variances[0], 0.0))) * 255.0
    if weakest_dn < MIN_AXIS_STD_DN:
        raise ValueError(f'the training images have too little colour for a decorrelation '
                         f'stretch (weakest colour axis varies by {weakest_dn:.2f} DN, '
                         f'need {MIN_AXIS_STD_DN}); grey images cannot be stretched')
    spread = float(np.mean(np.sqrt(np.diag(covariance))))
    matrix = axes @ np.diag(spread / np.sqrt(variances)) @ axes.T
    return DecorrelationStretch(tuple(pixels.mean(axis=0).tolist()),
                                tuple(tuple(row) for row in matrix.tolist()))
