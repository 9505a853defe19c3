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

"""How far colour alone can single out a float rock among a frame's typical rocks.

The SYNTHETIC Mars generator (``data/synthetic_mars.py``) draws every typical rock's spectrum
as ``SPECTRA['rock']`` with 5% independent jitter per band, and a float rock's as
``SPECTRA['float']`` with 3%. A colour detector at its very best sees each rock's spectrum
exactly: no shading, sensor noise, mixed edge pixels or soil around it. This script gives that
ideal detector the rocks' log-chromaticity (the RX branch's spectral-shape features), models the
typical rocks by their mean and covariance, and reports how often a float rock lies further out
(Mahalanobis) than every one of K typical rocks. A terrain frame of 1600x1200 holds several
thousand typical rocks (19 per 64x64 area in rocky patches, 7 elsewhere, before overlaps).

It prints one line per band set and K; no files. A few seconds.
"""
from __future__ import annotations

import argparse

import numpy as np

from vad4space_ros.data.synthetic_mars import SPECTRA
from vad4space_ros.deploy.spectral import pixel_features

BAND_SETS = {'RGB (805/527/447 nm)': [2, 1, 0], '6 bands': [0, 1, 2, 3, 4, 5]}


def chromaticity(spectra: np.ndarray, bands: list[int]) -> np.ndarray:
    """Return the RX branch's spectral-shape features of each spectrum (no brightness).

    Each spectrum is a 1x1 image for :func:`pixel_features`, whose last feature (brightness
    relative to the image's mean) is then always 0 and is dropped.
    """
    pixels = np.clip(spectra[:, None, None, bands], 0.0, 1.0).astype(np.float32)
    return pixel_features(pixels)[:, 0, 0, :-1].astype(np.float64)


def jittered(rng: np.random.Generator, name: str, jitter: float, count: int) -> np.ndarray:
    """Draw ``count`` spectra of ``name`` as the generator does."""
    return np.asarray(SPECTRA[name]) * (1.0 + rng.normal(0.0, jitter, (count, 6)))


def main() -> None:
    """Print the ideal colour detector's chance to rank a float rock above K typical rocks."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--typical', type=int, default=200_000, help='typical rocks drawn')
    parser.add_argument('--float-rocks', type=int, default=5_000)
    parser.add_argument('--rocks-per-frame', type=int, nargs='+', default=[100, 1000, 5000])
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    for name, bands in BAND_SETS.items():
        typical = chromaticity(jittered(rng, 'rock', 0.05, args.typical), bands)
        mean = typical.mean(axis=0)
        inverse = np.linalg.inv(np.cov(typical, rowvar=False))

        def distance(features: np.ndarray) -> np.ndarray:
            return (((features - mean) @ inverse) * (features - mean)).sum(axis=1)

        typical_sorted = np.sort(distance(typical))
        floats = distance(chromaticity(jittered(rng, 'float', 0.03, args.float_rocks), bands))
        below = np.searchsorted(typical_sorted, floats) / len(typical_sorted)
        for count in args.rocks_per_frame:
            print(f'{name}: float rock Mahalanobis^2 median {np.median(floats):.1f}; ranked '
                  f'above all of {count} typical rocks in {np.mean(below ** count):.0%} of '
                  f'draws')


if __name__ == '__main__':
    main()
