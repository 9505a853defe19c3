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

"""Decorrelation stretch: fitted on training pixels, carried in the model, applied everywhere."""
from __future__ import annotations

from dataclasses import replace
import json
from pathlib import Path

import numpy as np
import pytest

from vad4space_ros.cli import main as cli_main
from vad4space_ros.data.synthetic_frames import mars_tile
from vad4space_ros.deploy.artifact import ArtifactError, parse_metadata
from vad4space_ros.deploy.loading import load_model
from vad4space_ros.deploy.preprocess import DecorrelationStretch
from vad4space_ros.training.colour_stretch import fit_decorrelation_stretch


def brightness_dominated_images(rng: np.random.Generator, count: int) -> list[np.ndarray]:
    """RGB images whose colour varies mostly in brightness (std ~40 DN) and little in chroma."""
    images = []
    for _ in range(count):
        brightness = rng.normal(0.0, 40.0, (32, 32, 1))
        axes = np.array([[1.0, -1.0, 0.0], [0.5, 0.5, -1.0]])
        chroma = rng.normal(0.0, 4.0, (32, 32, 2)) @ axes
        images.append(np.clip(np.rint(128 + brightness + chroma), 0, 255).astype(np.uint8))
    return images


def stretched_covariance(stretch: DecorrelationStretch, images: list[np.ndarray]) -> np.ndarray:
    """Covariance (DN^2) of the stretched pixels."""
    planes = [stretch.apply(image.transpose(2, 0, 1).astype(np.float32) / 255.0)
              for image in images]
    pixels = np.concatenate([p.reshape(3, -1) for p in planes], axis=1) * 255.0
    return np.cov(pixels)


def test_stretch_equalises_and_decorrelates_the_colour_axes() -> None:
    """Brightness variance ~100x the chroma's before; after, every axis has the same spread."""
    images = brightness_dominated_images(np.random.default_rng(0), 40)
    stretch = fit_decorrelation_stretch(iter(images), len(images))
    before = np.linalg.eigvalsh(np.cov(np.concatenate([i.reshape(-1, 3) for i in images]).T))
    after = np.linalg.eigvalsh(stretched_covariance(stretch, images))
    assert before[-1] / before[0] > 50
    assert after[-1] / after[0] == pytest.approx(1.0, abs=0.1)
    assert np.sqrt(after).mean() == pytest.approx(
        np.mean(np.std(np.concatenate([i.reshape(-1, 3) for i in images]), axis=0)), rel=0.1)


def test_grey_images_are_refused_with_a_clear_error() -> None:
    """LROC-style grey chips have no colour axis to stretch."""
    grey = [np.repeat(image[:, :, :1], 3, axis=2)
            for image in brightness_dominated_images(np.random.default_rng(1), 5)]
    with pytest.raises(ValueError, match='too little colour'):
        fit_decorrelation_stretch(iter(grey), len(grey))
    with pytest.raises(ValueError, match='needs training images'):
        fit_decorrelation_stretch(iter([]), 0)


@pytest.mark.parametrize('entry', [{'mean': [0.5, 0.5], 'matrix': np.eye(3).tolist()},
                                   {'mean': [0.5] * 3, 'matrix': [[1, 0, 0], [0, 1, 0]]},
                                   {'mean': [0.5] * 3, 'matrix': [[float('nan')] * 3] * 3},
                                   [1, 2, 3]])
def test_a_malformed_stretch_in_a_model_file_is_refused(entry: object) -> None:
    """The metadata check catches a stretch that could not be applied."""
    metadata = {'format': 'vad4space-model/1', 'method': 'padim', 'backbone': 'mobilenet_v2',
                'input_size': [64, 64], 'model_id': 'x',
                'normalisation': {'mean': [0.4] * 3, 'std': [0.2] * 3,
                                  'decorrelation_stretch': entry},
                'calibration': {'threshold': 2.0, 'center': 1.0, 'false_alarm_rate': 0.05,
                                'sample_count': 10}}
    with pytest.raises(ArtifactError, match='normalisation'):
        parse_metadata(Path('m.safetensors'), {'vad4space': json.dumps(metadata)})


def test_a_model_fitted_with_a_stretch_applies_it_in_every_runtime(
        backbone: str, tmp_path: Path) -> None:
    """A PatchCore fitted with the stretch holds it; saved, exported and reloaded it scores alike.

    The scores depend on the stretch: dropping it from the metadata changes them.
    """
    from vad4space_ros.models.export import export_onnx
    from vad4space_ros.training.fitting import fit_detector, FitConfig

    rng = np.random.default_rng(5)
    train = [mars_tile(rng) for _ in range(24)]
    calibration = [mars_tile(rng) for _ in range(8)]
    test = [mars_tile(rng) for _ in range(3)] + [mars_tile(rng, 'bedrock') for _ in range(3)]
    config = FitConfig(method='patchcore', backbone=backbone, input_size=(64, 64),
                       progress=False, decorrelation_stretch=True)
    fitted = fit_detector(train, config, calibration=calibration)
    stretch = DecorrelationStretch.from_normalisation(fitted.metadata['normalisation'])
    assert stretch is not None
    scores = fitted.raw_scores(test)
    saved = load_model(fitted.save(tmp_path / 'stretched.safetensors'))
    assert saved.metadata['normalisation'] == fitted.metadata['normalisation']
    np.testing.assert_allclose(saved.raw_scores(test), scores, rtol=1e-5)
    exported = load_model(export_onnx(fitted, tmp_path / 'stretched.onnx'))
    np.testing.assert_allclose(exported.raw_scores(test), scores, rtol=1e-4)
    fitted.metadata['normalisation'] = {
        key: value for key, value in fitted.metadata['normalisation'].items()
        if key != DecorrelationStretch.METADATA_KEY}
    assert np.max(np.abs(fitted.raw_scores(test) - scores)) > 0.05 * np.max(np.abs(scores))
    plain = fit_detector(train, replace(config, decorrelation_stretch=False),
                         calibration=calibration)
    assert DecorrelationStretch.METADATA_KEY not in plain.metadata['normalisation']


@pytest.mark.parametrize('option, reason', [('--decorrelation-stretch', 'too little colour'),
                                            ('--spectral-fusion', 'grey images have no colour')])
def test_cli_fit_with_a_colour_option_on_grey_images_exits_with_the_reason(
        lunar_chips: Path, tmp_path: Path, capsys: pytest.CaptureFixture, option: str,
        reason: str) -> None:
    """Grey LROC chips cannot be stretched or given a colour RX: exit 2, reason, no file."""
    output = tmp_path / 'grey.safetensors'
    code = cli_main(['fit', '--method', 'padim', '--input-size', '64', option,
                     '--train-dir', str(lunar_chips / 'train' / 'none'),
                     '--output', str(output)])
    assert code == 2
    assert reason in capsys.readouterr().err
    assert not output.exists()
