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

"""The seven VAD methods fit on generated lunar chips, detect craters and survive a save/load."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from vad4space_ros.catalog import METHOD_NAMES
from vad4space_ros.data.synthetic_lunar import render_chip
from vad4space_ros.deploy.artifact import ArtifactError
from vad4space_ros.deploy.loading import load_model
from vad4space_ros.models.backbones import get_backbone
from vad4space_ros.models.methods import build_method, EDGE_OPTIONS, get_method
from vad4space_ros.training.fitting import fit_detector, FitConfig

# Per-method training budget for the test: small inputs, few epochs, 2-core CPU.
TEST_INPUT = {'simplenet': get_method('simplenet').min_input_size}
TEST_EPOCHS = {'cfa': 3, 'stfpm': 10, 'rd4ad': 3, 'simplenet': 10, 'fastflow': 3}
AUROC_FLOOR = 0.8


@pytest.fixture(scope='module')
def chips() -> dict[str, list]:
    """30 normal training chips; 20 normal and 20 fresh-crater test chips."""
    rng = np.random.default_rng(7)
    return {
        'train': [render_chip(rng, 'none') for _ in range(30)],
        'test_normal': [render_chip(rng, 'none') for _ in range(20)],
        'test_anomalous': [render_chip(rng, 'ejecta') for _ in range(20)],
    }


@pytest.fixture(scope='module')
def padim_file(backbone, chips, tmp_path_factory) -> Path:
    """Return a fitted PaDiM artifact shared by the bad-artifact tests."""
    detector = fit_detector(chips['train'], FitConfig(
        method='padim', backbone=backbone, input_size=(64, 64), progress=False))
    return detector.save(tmp_path_factory.mktemp('padim') / 'padim.safetensors')


@pytest.mark.parametrize('method', METHOD_NAMES)
def test_method_detects_craters_and_round_trips(method, backbone, chips, tmp_path):
    """Each method beats the AUROC floor; its saved file reproduces the scores exactly."""
    size = TEST_INPUT.get(method, 96)
    detector = fit_detector(chips['train'], FitConfig(
        method=method, backbone=backbone, input_size=(size, size),
        epochs=TEST_EPOCHS.get(method), batch_size=8, progress=False))
    test_images = chips['test_normal'] + chips['test_anomalous']
    labels = [0] * len(chips['test_normal']) + [1] * len(chips['test_anomalous'])
    scores = detector.raw_scores(test_images)
    auroc = roc_auc_score(labels, scores)
    assert auroc > AUROC_FLOOR, f'{method} AUROC {auroc:.3f}'

    loaded = load_model(detector.save(tmp_path / f'{method}.safetensors'))
    assert loaded.metadata == detector.metadata
    np.testing.assert_array_equal(loaded.raw_scores(test_images), scores)
    prediction = loaded.predict(test_images[-1])
    assert prediction.anomaly_map.shape == test_images[-1].shape[:2]
    assert np.isclose(np.linalg.norm(prediction.embedding), 1.0, atol=1e-4)


def test_calibration_holds_false_alarm_rate_on_normals(padim_file, chips):
    """About 5% of fresh normal chips exceed the calibrated threshold, anomalies mostly do."""
    detector = load_model(padim_file)
    normal = [detector.predict(image).is_anomaly for image in chips['test_normal']]
    anomalous = [detector.predict(image).is_anomaly for image in chips['test_anomalous']]
    assert sum(normal) <= 4
    assert sum(anomalous) >= 14
    assert detector.metadata['calibration']['false_alarm_rate'] == 0.05


def test_missing_model_file_is_a_clear_error(tmp_path):
    """A path that does not exist names itself in the error."""
    with pytest.raises(ArtifactError, match='not found'):
        load_model(tmp_path / 'absent.safetensors')


def test_truncated_model_file_is_rejected(padim_file, tmp_path):
    """Half a file is not loaded."""
    truncated = tmp_path / 'truncated.safetensors'
    truncated.write_bytes(padim_file.read_bytes()[: padim_file.stat().st_size // 2])
    with pytest.raises(ArtifactError, match='not a readable'):
        load_model(truncated)


def test_pickle_file_is_rejected_without_being_executed(tmp_path):
    """A torch pickle posing as a model is refused and its payload never runs."""
    import pickle

    marker = tmp_path / 'executed'

    class Payload:
        def __reduce__(self):
            return (Path.touch, (marker,))

    bad = tmp_path / 'model.safetensors'
    bad.write_bytes(pickle.dumps(Payload()))
    with pytest.raises(ArtifactError):
        load_model(bad)
    assert not marker.exists()


def test_metadata_that_does_not_match_the_tensors_is_rejected(padim_file, tmp_path):
    """Tensors of a PaDiM labelled as PatchCore fail the strict load with a clear error."""
    import json

    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(padim_file), framework='pt') as artifact:
        metadata = json.loads(artifact.metadata()['vad4space'])
        tensors = {key: artifact.get_tensor(key) for key in artifact.keys()}
    metadata['method'] = 'patchcore'
    mislabelled = tmp_path / 'mislabelled.safetensors'
    save_file(tensors, str(mislabelled), metadata={'vad4space': json.dumps(metadata)})
    with pytest.raises(ArtifactError, match='does not match'):
        load_model(mislabelled)


def test_unknown_format_is_rejected(padim_file, tmp_path):
    """A file from another tool (no vad4space metadata) is refused."""
    from safetensors.torch import load_file, save_file

    foreign = tmp_path / 'foreign.safetensors'
    save_file(load_file(str(padim_file)), str(foreign))
    with pytest.raises(ArtifactError, match='no vad4space metadata'):
        load_model(foreign)


@pytest.mark.parametrize('method', sorted(EDGE_OPTIONS))
def test_edge_profile_detects_craters_and_round_trips(method, backbone, chips, tmp_path):
    """The edge options shrink the model, still detect craters and are rebuilt on load."""
    options = {**EDGE_OPTIONS[method], 'coreset_sampling_ratio': 0.05} if method == 'patchcore' \
        else EDGE_OPTIONS[method]
    config = FitConfig(method=method, backbone=backbone, input_size=(96, 96), progress=False,
                       method_options=options)
    detector = fit_detector(chips['train'], config)
    test_images = chips['test_normal'] + chips['test_anomalous']
    labels = [0] * len(chips['test_normal']) + [1] * len(chips['test_anomalous'])
    scores = detector.raw_scores(test_images)
    assert roc_auc_score(labels, scores) > AUROC_FLOOR
    assert detector.metadata['method_options'] == {**get_method(method).options, **options}
    model = detector.model
    if method == 'padim':  # 64 channels on the stride-8 grid: 12x12 Gaussians at 96 px
        assert tuple(model.gaussian.inv_covariance.shape) == (144, 64, 64)
    else:  # 5% of 24 images x 12x12 patches
        assert model.memory_bank.shape[0] == int(0.05 * 24 * 144)

    loaded = load_model(detector.save(tmp_path / f'{method}-edge.safetensors'))
    np.testing.assert_array_equal(loaded.raw_scores(test_images), scores)


def test_unknown_or_invalid_method_options_are_clear_errors(backbone):
    """Options a method does not have, or values out of range, raise ValueError early."""
    spec = get_backbone(backbone)
    with pytest.raises(ValueError, match='allowed: coreset_sampling_ratio'):
        build_method('patchcore', spec, (64, 64), {'n_features': 8})
    with pytest.raises(ValueError, match='allowed: none'):
        build_method('stfpm', spec, (64, 64), {'levels': [1]})
    channels = sum(spec.channels[1:])
    with pytest.raises(ValueError, match=f'n_features must be in 1..{channels}'):
        build_method('padim', spec, (64, 64), {'levels': [2, 3], 'n_features': channels + 1})
    with pytest.raises(ValueError, match='levels must be increasing'):
        build_method('padim', spec, (64, 64), {'levels': [3, 2]})
    with pytest.raises(ValueError, match='simplenet needs an input of at least 128 px'):
        build_method('simplenet', spec, (64, 64))


def test_benchmark_profile_selects_the_edge_options() -> None:
    """``vad4space benchmark --profile edge`` fits with EDGE_OPTIONS; other methods unchanged."""
    from vad4space_ros.evaluation.runner import FitOptions
    assert FitOptions(profile='edge').method_options('padim') == EDGE_OPTIONS['padim']
    assert FitOptions(profile='edge').method_options('stfpm') == {}
    assert FitOptions().method_options('patchcore') == {}
    with pytest.raises(ValueError, match='unknown profile'):
        FitOptions(profile='fast').method_options('padim')
