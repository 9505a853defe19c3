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

"""6-band RX branch and RGB fusion: NIR-only anomalies, fusion rule, one-file round trip."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from vad4space_ros.deploy.artifact import ArtifactError
from vad4space_ros.deploy.line_filter import line_kernels
from vad4space_ros.deploy.loading import load_model
from vad4space_ros.deploy.spectral import (
    as_bands, bands_to_rgb, fuse, FusedDetector, SpectralConfig, SpectralRX)
from vad4space_ros.models.torch_detector import TorchDetector
from vad4space_ros.training.fitting import fit_detector, FitConfig
from vad4space_ros.training.spectral_fitting import fit_rx, fit_spectral_fusion

SOIL = np.array([0.075, 0.12, 0.30, 0.31, 0.305, 0.30])
ROCK = np.array([0.065, 0.095, 0.20, 0.195, 0.19, 0.195])
PATCH = (slice(12, 19), slice(14, 21))


def normal_cube(rng: np.random.Generator, size: int = 32) -> np.ndarray:
    """Render a shaded soil/rock surface: relief times a two-spectrum mixture, plus noise."""
    rock = np.clip(gaussian_filter(rng.normal(size=(size, size)), 3) * 6 - 0.3, 0, 1)[..., None]
    shading = 0.6 + 0.4 * np.clip(gaussian_filter(rng.normal(size=(size, size)), 2) * 4, -1, 1)
    cube = ((1 - rock) * SOIL + rock * ROCK) * shading[..., None] * rng.uniform(1.6, 2.4)
    return np.clip(cube + rng.normal(0, 0.004, cube.shape), 0, 1).astype(np.float32)


def nir_only_anomaly(cube: np.ndarray) -> np.ndarray:
    """Return the cube with a 7x7 patch whose 908-1013 nm bands drop by 20% (visible untouched)."""
    anomaly = cube.copy()
    anomaly[PATCH[0], PATCH[1], 3:] *= 0.8
    return anomaly


@pytest.fixture(scope='module')
def cubes() -> dict[str, list[np.ndarray]]:
    """Make normal train/calibration/test cubes and NIR-only anomalies of the test cubes."""
    rng = np.random.default_rng(5)
    test = [normal_cube(rng) for _ in range(12)]
    return {'train': [normal_cube(rng) for _ in range(24)],
            'calibration': [normal_cube(rng) for _ in range(20)],
            'test': test, 'anomalies': [nir_only_anomaly(c) for c in test]}


def test_rx_flags_a_spectrum_only_anomaly_the_rgb_view_cannot_see(cubes):
    """The RGB views are bit-identical, yet every anomaly outscores every normal cube."""
    for normal, anomaly in zip(cubes['test'], cubes['anomalies']):
        assert np.array_equal(bands_to_rgb(normal), bands_to_rgb(anomaly))
    rx = fit_rx(cubes['train'])
    normal_scores = rx.scores(cubes['calibration'] + cubes['test'])
    anomaly_scores = rx.scores(cubes['anomalies'])
    assert anomaly_scores.min() > normal_scores.max()
    peak = np.unravel_index(np.argmax(rx.anomaly_map(cubes['anomalies'][0])), (32, 32))
    assert PATCH[0].start <= peak[0] < PATCH[0].stop and PATCH[1].start <= peak[1] < PATCH[1].stop


def test_rx_features_ignore_exposure_and_shading():
    """Scaling all bands alike (exposure) leaves the spectral-shape features unchanged."""
    rng = np.random.default_rng(2)
    cube = normal_cube(rng)
    rx = fit_rx([normal_cube(rng) for _ in range(8)], SpectralConfig(smoothing=0))
    brighter = np.clip(cube * 1.3, 0, 1)
    assert abs(rx.score(brighter) - rx.score(cube)) < 0.15 * rx.score(cube)


def two_material_cube(rng: np.random.Generator, size: int = 32) -> np.ndarray:
    """Render pure soil and pure rock areas (no mixed pixels), shaded, plus noise."""
    rock = (gaussian_filter(rng.normal(size=(size, size)), 3) > 0)[..., None]
    cube = np.where(rock, ROCK, SOIL) * rng.uniform(1.6, 2.4)
    return np.clip(cube + rng.normal(0, 0.004, cube.shape), 0, 1).astype(np.float32)


def test_mixture_rx_flags_a_spectrum_between_the_normal_materials():
    """A patch of a spectrum halfway between soil and rock in every band ratio.

    One Gaussian around both materials puts that spectrum near its centre and misses it; two
    components (one per material) flag it.
    """
    rng = np.random.default_rng(8)
    train, test = ([two_material_cube(rng) for _ in range(n)] for n in (24, 12))
    between = []
    for cube in test:
        anomaly = cube.copy()
        anomaly[PATCH] = np.sqrt(SOIL * ROCK) * 2.0
        between.append(anomaly)
    rx = {k: fit_rx(train, SpectralConfig(components=k)) for k in (1, 2)}
    assert rx[2].components == 2 and rx[2].mean.shape == (2, 6)
    assert rx[1].scores(between).min() < rx[1].scores(test).max()
    assert rx[2].scores(between).min() > rx[2].scores(test).max()
    with pytest.raises(ValueError, match='components'):
        SpectralConfig(components=0)


def faint_soil(rng: np.random.Generator, rows=(), cols=(), drop: float = 0.012) -> np.ndarray:
    """Render flat soil plus noise; pixels at (rows, cols) lose ``drop`` of their NIR bands."""
    cube = np.broadcast_to(SOIL * 2.0, (48, 48, 6)) + rng.normal(0, 0.003, (48, 48, 6))
    cube[rows, cols, 3:] *= 1.0 - drop
    return np.clip(cube, 0, 1).astype(np.float32)


def test_line_integration_adds_up_a_faint_thin_line():
    """A faint 1-px line stands out once the map is averaged along lines; scattered pixels not.

    Each line pixel is barely off normal: per pixel (no smoothing, best pixel) the scattered
    pixels score at least as high as the line.
    """
    rng = np.random.default_rng(5)
    train = [faint_soil(rng) for _ in range(24)]
    normal = [faint_soil(rng) for _ in range(12)]
    diagonal = np.arange(8, 40)
    lines = [faint_soil(rng, diagonal, diagonal) for _ in range(12)]
    scattered = [faint_soil(rng, *np.unravel_index(rng.choice(48 * 48, diagonal.size, False),
                                                   (48, 48))) for _ in range(12)]
    per_pixel = fit_rx(train, SpectralConfig(smoothing=0, quantile=1.0))
    assert per_pixel.scores(scattered).max() >= per_pixel.scores(lines).min()
    rx = fit_rx(train, SpectralConfig(smoothing=0, line_length=9))
    line_scores = rx.scores(lines)
    assert line_scores.min() > 1.5 * rx.scores(normal).max()
    assert line_scores.min() > rx.scores(scattered).max()
    row, col = np.unravel_index(np.argmax(rx.anomaly_map(lines[0])), (48, 48))
    assert abs(row - col) <= 1 and 8 <= row < 40


def test_line_kernels():
    """Odd lengths only; each of the 8 kernels is a line of ``length`` pixels with weight 1."""
    kernels = line_kernels(9)
    assert len(kernels) == 8
    for kernel in kernels:
        assert kernel.shape == (9, 9) and np.isclose(kernel.sum(), 1.0)
        assert 7 <= np.count_nonzero(kernel) <= 9 and kernel[4, 4] > 0
    assert np.count_nonzero(kernels[0][4]) == 9  # horizontal
    with pytest.raises(ValueError, match='odd'):
        line_kernels(8)
    with pytest.raises(ValueError, match='odd'):
        SpectralConfig(line_length=2)


def test_fusion_rule_math():
    """``max`` and ``mean`` of calibrated scores or maps; unknown rules are rejected."""
    rgb, spectral = np.array([0.2, 0.9, -0.1]), np.array([0.7, 0.1, -0.3])
    assert np.allclose(fuse(rgb, spectral, 'max'), [0.7, 0.9, -0.1])
    assert np.allclose(fuse(rgb, spectral, 'mean'), [0.45, 0.5, -0.2])
    maps = fuse(np.ones((2, 3)), np.full((2, 3), 3.0), 'mean')
    assert maps.shape == (2, 3) and np.allclose(maps, 2.0)
    with pytest.raises(ValueError):
        fuse(rgb, spectral, 'sum')
    with pytest.raises(ValueError):
        SpectralConfig(fusion='sum')


def test_band_input_validation():
    """uint8 DN are scaled to [0, 1]; NaN, 2-D and integer non-uint8 input are refused."""
    assert as_bands(np.full((2, 2, 6), 255, np.uint8)).max() == 1.0
    for bad in (np.full((4, 4, 6), np.nan), np.zeros((4, 4)), np.zeros((4, 4, 6), np.int32)):
        with pytest.raises(ValueError):
            as_bands(bad)


@pytest.fixture(scope='module')
def fused(backbone, cubes) -> FusedDetector:
    """Fit PaDiM on the RGB views plus the spectral branch, calibrated on the same normals."""
    rgb = fit_detector([bands_to_rgb(c) for c in cubes['train']],
                       FitConfig('padim', backbone=backbone, input_size=(64, 64), progress=False),
                       [bands_to_rgb(c) for c in cubes['calibration']])
    return fit_spectral_fusion(rgb, cubes['train'], cubes['calibration'])


def test_fused_detector_sees_what_rgb_misses(fused, cubes):
    """RGB scores twins identically; the fused score flags every NIR-only anomaly."""
    rgb_normal, _ = fused.branch_scores(cubes['test'])
    rgb_anomaly, spectral_anomaly = fused.branch_scores(cubes['anomalies'])
    assert np.array_equal(rgb_normal, rgb_anomaly)
    assert (spectral_anomaly >= 0.5).all()
    assert (fused.scores(cubes['anomalies']) >= 0.5).all()
    assert np.mean(fused.scores(cubes['calibration']) >= 0.5) <= 0.1
    prediction = fused.predict(cubes['anomalies'][0])
    assert prediction.is_anomaly and prediction.anomaly_map.shape == (32, 32)
    peak = np.unravel_index(np.argmax(prediction.anomaly_map), (32, 32))
    assert PATCH[0].start - 2 <= peak[0] < PATCH[0].stop + 2


def test_fused_artifact_round_trip(fused, cubes, tmp_path):
    """One safetensors file holds both branches; reloading reproduces scores and maps."""
    path = fused.save(tmp_path / 'fused.safetensors')
    loaded = load_model(path)
    assert isinstance(loaded, FusedDetector)
    assert loaded.model_id == fused.model_id and loaded.model_id.endswith('+rx')
    assert loaded.metadata['spectral'] == fused.metadata['spectral']
    both = cubes['test'] + cubes['anomalies']
    assert np.array_equal(loaded.scores(both), fused.scores(both))
    assert np.array_equal(loaded.predict(both[-1]).anomaly_map,
                          fused.predict(both[-1]).anomaly_map)
    plain = fused.rgb.save(tmp_path / 'rgb.safetensors')
    assert isinstance(load_model(plain), TorchDetector)


def test_mixture_statistics_round_trip(fused, cubes, tmp_path):
    """A 3-component RX branch is stored as 3x6 and 3x6x6 and scores the same after loading."""
    mixture = fit_rx(cubes['train'], SpectralConfig(components=3))
    detector = FusedDetector(fused.rgb, mixture, fused.spectral_calibration,
                             fused.fusion_calibration)
    loaded = load_model(detector.save(tmp_path / 'mixture.safetensors'))
    assert loaded.spectral.components == 3 and loaded.config.components == 3
    assert loaded.spectral.inverse_covariance.shape == (3, 6, 6)
    both = cubes['test'] + cubes['anomalies']
    assert np.array_equal(loaded.spectral.scores(both), mixture.scores(both))


def test_bad_spectral_artifacts_raise_artifact_error(fused, tmp_path):
    """A missing file or spectral statistics of the wrong shape give ArtifactError."""
    with pytest.raises(ArtifactError):
        load_model(tmp_path / 'absent.safetensors')
    broken = FusedDetector(fused.rgb, SpectralRX(np.zeros(5), np.eye(5), fused.config),
                           fused.spectral_calibration, fused.fusion_calibration)
    with pytest.raises(ArtifactError, match='spectral'):
        load_model(broken.save(tmp_path / 'broken.safetensors'))
    two = FusedDetector(fused.rgb, SpectralRX(np.zeros((2, 6)), np.stack([np.eye(6)] * 2),
                                              fused.config),
                        fused.spectral_calibration, fused.fusion_calibration)
    with pytest.raises(ArtifactError, match='spectral'):  # 2 components, config says 1
        load_model(two.save(tmp_path / 'two.safetensors'))
