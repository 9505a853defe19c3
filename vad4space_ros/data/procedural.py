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

"""Building blocks of the generators: per-file random streams, fractal noise, subtlety.

Shared by :mod:`.synthetic` (which writes datasets) and the renderers :mod:`.synthetic_lunar`
and :mod:`.synthetic_mars`; it imports none of them, so they form no import cycle.
"""
from __future__ import annotations

import numpy as np


def fractal_noise(rng: np.random.Generator, size: int, beta: float) -> np.ndarray:
    """Return a periodic ``size x size`` field with a 1/f^beta power spectrum, zero mean, std 1."""
    freq_y = np.fft.fftfreq(size)[:, None]
    freq_x = np.fft.rfftfreq(size)[None, :]
    radius = np.sqrt(freq_y ** 2 + freq_x ** 2)
    radius[0, 0] = 1.0
    spectrum = rng.standard_normal((size, size // 2 + 1)) + 1j * rng.standard_normal(
        (size, size // 2 + 1))
    spectrum *= radius ** (-beta / 2.0)
    spectrum[0, 0] = 0.0
    field = np.fft.irfft2(spectrum, s=(size, size))
    return (field - field.mean()) / (field.std() + 1e-12)


def file_rng(seed: int, *keys: str | int) -> np.random.Generator:
    """Return the random stream of one generated file, derived from the seed and its keys."""
    words = [seed] + [int.from_bytes(k.encode()[:8].ljust(8, b'\0'), 'little')
                      if isinstance(k, str) else k for k in keys]
    return np.random.default_rng(np.random.SeedSequence(words))


def check_subtlety(subtlety: float | None) -> float:
    """Return ``subtlety`` as a float in [0, 1] (None = 0); raise ValueError otherwise."""
    value = 0.0 if subtlety is None else float(subtlety)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f'subtlety must be in [0, 1], got {subtlety}')
    return value
