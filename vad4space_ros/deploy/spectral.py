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

"""Spectral branch (RX detector) on an image's own bands, fused with an RGB VAD model.

Pretrained backbones see only a 3-band view of Mastcam's six filters, so a novelty that differs
only at 908-1013 nm is invisible to them; and ImageNet features barely register the small colour
differences between Mars materials. The spectral branch models the spectra of normal pixels and
flags pixels whose spectrum is unlikely under that model (Reed-Xiaoli / RX). It runs on the
bands the images have: the six filters of a 6-band cube, or the three colours of an RGB image
(a *colour* RX: the same detector on R, G, B).

- **Pixel features** (``F`` = band count), from bands ``b`` in ``[0, 1]``:
  ``l = log(b + 2/255)``; the spectral *shape* ``l_i - mean(l)`` for bands 1..F-1
  (log-chromaticity; shading and exposure multiply all bands alike, so they cancel; the last
  band is implied) and the relative *brightness* ``mean(l) - (tile mean of mean(l))``.
- **RX map**: squared Mahalanobis distance of each pixel's features to the mean and covariance
  of the normal training pixels (ridge ``ridge * trace/F`` added for stability), smoothed with a
  Gaussian of ``smoothing`` px, radius 4 sigma, edges replicated (noise suppression; thin veins
  survive sigma = 1); with ``line_length`` L > 0, then the best mean along a line of L pixels
  through each pixel (:mod:`.line_filter`: thin veins add up, blobs keep their value). With
  ``components`` K > 1 the normal pixels are modelled by K Gaussians
  (a mixture fitted in training, one per surface material roughly: soil, dust, sand, rock) and
  a pixel's distance is the one to the *nearest* component: one ellipse around all materials
  also covers the colours between and just beyond them, where a novel material can lie.
- **Image score**: the ``quantile`` (default 0.99) of the map, i.e. robust to a few noisy
  pixels but triggered by any feature covering ~1% of the tile.

Fusion rule (scale-free): each branch is calibrated on the same held-out normal images as
:mod:`.calibration` does (median -> 0, 95% quantile -> 0.5); the fused raw score is ``max``
(default) or ``mean`` of the two calibrated scores, and a final calibration of it on the held-out
normals restores "0.5 = threshold at the target false-alarm rate". Maps (the RGB map resized to
the image, the spectral map) are fused the same way.

Model files: the RGB model's file plus ``spectral.mean`` and ``spectral.inverse_covariance``
(tensors in ``.safetensors``, metadata lists in ``.onnx``) and a ``spectral`` metadata section
(config, both calibrations, band count, RGB view) that :func:`fused_from_metadata` reads.
NumPy/OpenCV only: the RX branch runs the same on the vehicle as in fitting
(``vad4space_ros.training.spectral_fitting`` estimates it).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
import time
from typing import Any, Sequence

import cv2
import numpy as np

from vad4space_ros.deploy.artifact import ArtifactError
from vad4space_ros.deploy.calibration import CALIBRATED_THRESHOLD, Calibration
from vad4space_ros.deploy.detector import Detector, Prediction
from vad4space_ros.deploy.line_filter import line_kernels, line_maximum
from vad4space_ros.deploy.preprocess import resize_map

SPECTRAL_PREFIX = 'spectral.'
FUSION_RULES = ('max', 'mean')
LOG_OFFSET = 2.0 / 255.0
MASTCAM_RGB_BANDS = (2, 1, 0)
RGB_IMAGE_BANDS = (0, 1, 2)
BAND_COUNTS = (3, 6)  # RGB images, Mastcam-like cubes
RX_SUFFIX = '+rx'
MAX_COMPONENTS = 32


@dataclass(frozen=True)
class SpectralConfig:
    """Options of the spectral branch and the fusion rule."""

    smoothing: float = 1.0
    quantile: float = 0.99
    ridge: float = 1e-4
    max_pixels: int = 400_000
    fusion: str = 'max'
    rgb_bands: tuple[int, int, int] = MASTCAM_RGB_BANDS
    components: int = 1
    line_length: int = 0  # 0: no line integration

    def __post_init__(self) -> None:
        """Validate the options."""
        if self.line_length:
            line_kernels(self.line_length)
        if not 1 <= self.components <= MAX_COMPONENTS:
            raise ValueError(f'components must be 1 (one Gaussian) to {MAX_COMPONENTS}')
        if self.fusion not in FUSION_RULES:
            raise ValueError(f'unknown fusion rule {self.fusion!r}: expected {FUSION_RULES}')
        if not 0.0 < self.quantile <= 1.0:
            raise ValueError('quantile must lie in (0, 1]')
        if not self.smoothing >= 0.0:
            raise ValueError('smoothing must be 0 (none) or a positive width in pixels')


def as_bands(cube: np.ndarray) -> np.ndarray:
    """Return an HxWxC multiband image as float32 in [0, 1] (uint8 DN are divided by 255)."""
    array = np.asarray(cube)
    if array.ndim != 3 or array.shape[2] < 2 or 0 in array.shape:
        raise ValueError(f'expected an HxWxC multiband image, got shape {array.shape}')
    if array.dtype == np.uint8:
        return array.astype(np.float32) / 255.0
    if not np.issubdtype(array.dtype, np.floating):
        raise ValueError(f'expected uint8 or float bands, got {array.dtype}')
    if not np.isfinite(array).all():
        raise ValueError('bands contain NaN or infinity')
    return np.clip(array, 0.0, 1.0).astype(np.float32)


def check_band_count(band_count: int) -> int:
    """Return ``band_count`` if the spectral branch models such images; raise ValueError if not."""
    if band_count not in BAND_COUNTS:
        raise ValueError(f'the spectral branch takes 6-band cubes or RGB images, not '
                         f'{band_count}-band images'
                         + (' (grey images have no colour to model)' if band_count == 1 else ''))
    return band_count


def bands_to_rgb(cube: np.ndarray, rgb_bands: Sequence[int] = MASTCAM_RGB_BANDS) -> np.ndarray:
    """Return the uint8 RGB view of a [0, 1] band cube (Mastcam: 805/527/447 nm)."""
    return np.rint(as_bands(cube)[..., list(rgb_bands)] * 255.0).astype(np.uint8)


def pixel_features(cube: np.ndarray) -> np.ndarray:
    """Return C features per pixel: C-1 log-chromaticity values and the relative log brightness.

    ``cube`` is one HxWxC image (uint8 DN or [0, 1]) or a BxHxWxC batch in [0, 1]; brightness is
    relative to each image's mean.
    """
    bands = as_bands(cube) if np.ndim(cube) == 3 else np.asarray(cube, np.float32)
    logs = np.log(bands + np.float32(LOG_OFFSET))
    brightness = logs.mean(axis=-1, keepdims=True)
    relative = brightness - brightness.mean(axis=(-3, -2), keepdims=True)
    return np.concatenate([(logs - brightness)[..., :-1], relative], axis=-1)


class SpectralRX:
    """RX detector on :func:`pixel_features`: distance to the nearest normal Gaussian.

    ``mean`` is F (one Gaussian, the classic global RX) or KxF, ``inverse_covariance`` FxF or
    KxFxF; both are kept as KxF and KxFxF.
    """

    def __init__(self, mean: np.ndarray, inverse_covariance: np.ndarray,
                 config: SpectralConfig) -> None:
        mean = np.asarray(mean, dtype=np.float64)
        inverse = np.asarray(inverse_covariance, dtype=np.float64)
        self.mean = mean[None] if mean.ndim == 1 else mean
        self.inverse_covariance = inverse[None] if inverse.ndim == 2 else inverse
        self.config = config

    @property
    def bands(self) -> int:
        """The band count of the images it models (the feature count)."""
        return int(self.mean.shape[-1])

    @property
    def components(self) -> int:
        """The number of Gaussians modelling the normal pixels."""
        return int(self.mean.shape[0])

    def anomaly_map(self, cube: np.ndarray) -> np.ndarray:
        """Return the smoothed squared Mahalanobis distance of each pixel (HxW float32)."""
        return self.anomaly_maps([cube])[0]

    def anomaly_maps(self, cubes: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Return :meth:`anomaly_map` of each cube; cubes of one size are computed together."""
        bands = [as_bands(cube) for cube in cubes]
        if len({b.shape for b in bands}) > 1:
            return [self.anomaly_maps([b])[0] for b in bands]
        features = pixel_features(np.stack(bands))
        if features.shape[-1] != self.bands:
            raise ValueError(f'the spectral branch models {self.bands}-band images, got '
                             f'{features.shape[-1]} bands')
        distances = None
        for mean, inverse in zip(self.mean.astype(np.float32),
                                 self.inverse_covariance.astype(np.float32)):
            centred = features - mean
            component = ((centred @ inverse) * centred).sum(axis=-1)
            distances = component if distances is None else np.minimum(distances, component)
        maps = list(distances)
        if self.config.smoothing > 0:
            radius = int(4.0 * self.config.smoothing + 0.5)
            maps = [cv2.GaussianBlur(d, (2 * radius + 1, 2 * radius + 1), self.config.smoothing,
                                     borderType=cv2.BORDER_REPLICATE) for d in maps]
        if self.config.line_length:
            kernels = line_kernels(self.config.line_length)
            maps = [line_maximum(d, kernels) for d in maps]
        return maps

    def score_map(self, anomaly_map: np.ndarray) -> float:
        """Return the image score of a map: its configured quantile."""
        return float(np.quantile(anomaly_map, self.config.quantile))

    def score_maps(self, anomaly_maps: Sequence[np.ndarray]) -> np.ndarray:
        """Return :meth:`score_map` of each map; maps of one size are computed together."""
        if len({m.shape for m in anomaly_maps}) != 1:
            return np.array([self.score_map(m) for m in anomaly_maps], dtype=np.float64)
        stacked = np.stack(anomaly_maps).reshape(len(anomaly_maps), -1)
        return np.quantile(stacked, self.config.quantile, axis=1).astype(np.float64)

    def score(self, cube: np.ndarray) -> float:
        """Return the image score of one band cube."""
        return self.score_map(self.anomaly_map(cube))

    def scores(self, cubes: Sequence[np.ndarray]) -> np.ndarray:
        """Return the image scores of many cubes."""
        return self.score_maps(self.anomaly_maps(cubes))

    def statistics(self) -> dict[str, np.ndarray]:
        """Return the statistics by their model-file names (``spectral.*``).

        One Gaussian is stored as F and FxF (the layout of files before mixtures), K > 1 as KxF
        and KxFxF.
        """
        single = self.components == 1
        return {SPECTRAL_PREFIX + 'mean': (self.mean[0] if single else self.mean).copy(),
                SPECTRAL_PREFIX + 'inverse_covariance': (
                    self.inverse_covariance[0] if single else self.inverse_covariance).copy()}


def fuse(rgb_calibrated: np.ndarray | float, spectral_calibrated: np.ndarray | float,
         rule: str) -> np.ndarray:
    """Combine two calibrated scores (or maps) by ``max`` or ``mean``."""
    if rule == 'max':
        return np.maximum(rgb_calibrated, spectral_calibrated)
    if rule == 'mean':
        return 0.5 * (np.asarray(rgb_calibrated) + np.asarray(spectral_calibrated))
    raise ValueError(f'unknown fusion rule {rule!r}: expected {FUSION_RULES}')


class FusedDetector:
    """An RGB :class:`~.detector.Detector` plus the spectral RX branch, fused per the rule.

    It takes images of :attr:`bands` bands: 6-band cubes (RGB view per ``rgb_bands``) or RGB
    images (3 bands, the view is the image).
    """

    def __init__(self, rgb: Detector, spectral: SpectralRX,
                 spectral_calibration: Calibration, fusion_calibration: Calibration) -> None:
        self.rgb = rgb
        self.spectral = spectral
        self.spectral_calibration = spectral_calibration
        self.fusion_calibration = fusion_calibration

    @property
    def config(self) -> SpectralConfig:
        """The spectral branch and fusion options."""
        return self.spectral.config

    @property
    def bands(self) -> int:
        """The band count of the images it takes (6: multispectral cubes, 3: RGB images)."""
        return self.spectral.bands

    @property
    def metadata(self) -> dict[str, Any]:
        """The RGB model's metadata with the ``spectral`` section."""
        return {**self.rgb.metadata, 'model_id': self.model_id, 'spectral': {
            'config': {**asdict(self.config), 'rgb_bands': list(self.config.rgb_bands)},
            'calibration': self.spectral_calibration.to_dict(),
            'fusion_calibration': self.fusion_calibration.to_dict(),
            'bands': self.bands,
            'features': f'log-chromaticity({self.bands - 1})+relative-log-brightness(1)'}}

    @property
    def model_id(self) -> str:
        """The RGB model id with a ``+rx`` suffix."""
        return self.rgb.model_id + RX_SUFFIX

    @property
    def method(self) -> str:
        """Name of the RGB branch's VAD method."""
        return self.rgb.method

    @property
    def backbone(self) -> str:
        """Name of the RGB branch's backbone."""
        return self.rgb.backbone

    @property
    def input_size(self) -> tuple[int, int]:
        """The RGB branch's model input (height, width)."""
        return self.rgb.input_size

    def branch_scores(self, cubes: Sequence[np.ndarray],
                      batch_size: int = 16) -> tuple[np.ndarray, np.ndarray]:
        """Return (RGB, spectral) scores, each on its own calibrated scale."""
        rgb_raw = self.rgb.raw_scores([bands_to_rgb(c, self.config.rgb_bands) for c in cubes],
                                      batch_size)
        return (np.asarray(self.rgb.calibration.normalise(rgb_raw)),
                np.asarray(self.spectral_calibration.normalise(self.spectral.scores(cubes))))

    def calibrate_fusion(self, cubes: Sequence[np.ndarray],
                         false_alarm_rate: float) -> Calibration:
        """Return the calibration of the fused raw score on held-out normal band cubes."""
        rgb, spectral = self.branch_scores(cubes)
        return Calibration.from_normal_scores(fuse(rgb, spectral, self.config.fusion),
                                              false_alarm_rate)

    def scores(self, cubes: Sequence[np.ndarray], batch_size: int = 16) -> np.ndarray:
        """Fuse both branches' calibrated scores of many band cubes (0.5 = threshold)."""
        rgb, spectral = self.branch_scores(cubes, batch_size)
        return np.asarray(self.fusion_calibration.normalise(fuse(rgb, spectral,
                                                                 self.config.fusion)))

    @property
    def calibration(self) -> Calibration:
        """The calibration of the fused raw score (what :meth:`infer` returns)."""
        return self.fusion_calibration

    def infer(self, cubes: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Return fused raw scores (B), fused raw maps (BxHxW, cube resolution), embeddings.

        Raw = both branches on their calibrated scales, combined by the rule, before the final
        calibration (:attr:`calibration`); cubes of one call share their size (tiles).
        """
        bands = [as_bands(cube) for cube in cubes]
        raw, maps, embeddings = self.rgb.infer([bands_to_rgb(b, self.config.rgb_bands)
                                                for b in bands])
        spectral_maps = self.spectral.anomaly_maps(bands)
        rgb_scores = self.rgb.calibration.normalise(np.asarray(raw, np.float64))
        spectral_scores = self.spectral_calibration.normalise(
            self.spectral.score_maps(spectral_maps))
        fused_maps = [fuse(self.rgb.calibration.normalise(resize_map(rgb_map, cube.shape[:2])),
                           self.spectral_calibration.normalise(spectral_map), self.config.fusion)
                      for cube, rgb_map, spectral_map in zip(bands, maps, spectral_maps)]
        return (np.asarray(fuse(rgb_scores, spectral_scores, self.config.fusion), np.float64),
                np.stack(fused_maps).astype(np.float32), embeddings)

    def predict(self, cube: np.ndarray,
                threshold: float = CALIBRATED_THRESHOLD) -> Prediction:
        """Score one HxWx6 band cube; the map fuses both branches at the cube's resolution."""
        start = time.perf_counter()
        raw, maps, embeddings = self.infer([cube])
        score = float(self.fusion_calibration.normalise(float(raw[0])))
        return Prediction(score=score, raw_score=float(raw[0]),
                          is_anomaly=score >= threshold,
                          anomaly_map=np.asarray(self.fusion_calibration.normalise(maps[0]),
                                                 dtype=np.float32),
                          embedding=embeddings[0],
                          latency_ms=(time.perf_counter() - start) * 1000.0)

    def save(self, path: str | Path, metadata: dict[str, Any] | None = None) -> Path:
        """Write one model file: the RGB branch's, plus the RX statistics and fusion metadata.

        ``metadata`` replaces :attr:`metadata` (it must keep the ``spectral`` section). The RGB
        branch must be able to save itself (a torch model from fitting).
        """
        return self.rgb.save(path, metadata=metadata or self.metadata,
                             extra_arrays=self.spectral.statistics())


def fused_from_metadata(rgb: Detector, metadata: dict[str, Any],
                        statistics: dict[str, np.ndarray], source: Any) -> FusedDetector:
    """Rebuild a fused detector from its ``spectral`` metadata section and RX statistics.

    ``rgb`` is the already loaded RGB branch; ``source`` names the file in errors.
    """
    section = metadata['spectral']
    try:
        options = dict(section['config'])
        options['rgb_bands'] = tuple(options['rgb_bands'])
        spectral = SpectralRX(np.asarray(statistics[SPECTRAL_PREFIX + 'mean'], np.float64),
                              np.asarray(statistics[SPECTRAL_PREFIX + 'inverse_covariance'],
                                         np.float64), SpectralConfig(**options))
        spectral_calibration = Calibration(**section['calibration'])
        fusion_calibration = Calibration(**section['fusion_calibration'])
    except (KeyError, TypeError, ValueError) as error:
        raise ArtifactError(f'{source}: bad spectral section: {error}') from None
    bands = spectral.bands if spectral.mean.ndim == 2 else 0
    if (bands not in BAND_COUNTS or section.get('bands', 6) != bands
            or spectral.components != spectral.config.components
            or spectral.inverse_covariance.shape != (spectral.components, bands, bands)):
        raise ArtifactError(f'{source}: spectral statistics have the wrong shape')
    if bands == 3 and tuple(spectral.config.rgb_bands) != RGB_IMAGE_BANDS:
        raise ArtifactError(f'{source}: an RGB spectral branch must view bands (0, 1, 2)')
    return FusedDetector(rgb, spectral, spectral_calibration, fusion_calibration)


def with_id_suffix(metadata: dict[str, Any], suffix: str) -> str:
    """Return the model id with ``suffix`` on its RGB part (a fused id keeps ``+rx`` last)."""
    rx = RX_SUFFIX if 'spectral' in metadata else ''
    return metadata['model_id'].removesuffix(rx) + suffix + rx


def rgb_branch_metadata(metadata: dict[str, Any]) -> dict[str, Any]:
    """Return a fused model's metadata as its RGB branch's (no spectral section or suffix)."""
    rgb = {key: value for key, value in metadata.items() if key != 'spectral'}
    rgb['model_id'] = metadata['model_id'].removesuffix(RX_SUFFIX)
    return rgb
