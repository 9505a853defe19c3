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

"""Ensembles: two real fitted models (PatchCore and PaDiM, edge, 64 px) on generated Mars tiles.

The tiles and frames are SYNTHETIC (data/synthetic_frames.py).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image
import pytest

from vad4space_ros.cli import main
from vad4space_ros.data.synthetic_frames import Box, mars_frame, mars_tile
from vad4space_ros.deploy.artifact import ArtifactError
from vad4space_ros.deploy.calibration import Calibration
from vad4space_ros.deploy.ensemble import EnsembleDetector
from vad4space_ros.deploy.frame_scoring import FrameScorer
from vad4space_ros.deploy.loading import load_model
from vad4space_ros.deploy.tiling import TileOptions, with_frame_calibration


@pytest.fixture(scope='module')
def members(tmp_path_factory: pytest.TempPathFactory, backbone: str) -> dict[str, Path]:
    """Fit PatchCore and PaDiM (edge, 64 px) on 120 typical tiles; write 60 calibration tiles."""
    from vad4space_ros.cli.fit import method_options
    from vad4space_ros.training.fitting import fit_detector, FitConfig
    folder = tmp_path_factory.mktemp('ensemble')
    rng = np.random.default_rng(31)
    train = [mars_tile(rng) for _ in range(120)]
    calibration = [mars_tile(rng) for _ in range(60)]
    (folder / 'calibration').mkdir()
    for index, tile in enumerate(calibration):
        Image.fromarray(tile).save(folder / 'calibration' / f'{index:03d}.png')
    files = {'calibration': folder / 'calibration'}
    for method in ('patchcore', 'padim'):
        detector = fit_detector(train, FitConfig(
            method=method, backbone=backbone, input_size=(64, 64), progress=False,
            method_options=method_options(method, 'edge', [])), calibration)
        files[method] = detector.save(folder / 'models' / f'{method}.safetensors')
    return files


@pytest.fixture(scope='module')
def manifest(members: dict[str, Path]) -> Path:
    """Build the ensemble with the CLI (manifest beside the members)."""
    output = members['patchcore'].parent / 'pair.json'
    assert main(['ensemble', '--members', str(members['patchcore']), str(members['padim']),
                 '--calibration-dir', str(members['calibration']), '--output',
                 str(output)]) == 0
    return output


def test_ensemble_scores_the_mean_of_calibrated_member_scores(
        members: dict[str, Path], manifest: Path) -> None:
    ensemble = load_model(manifest)
    assert isinstance(ensemble, EnsembleDetector)
    assert json.loads(manifest.read_text())['members'] == ['patchcore.safetensors',
                                                           'padim.safetensors']
    tiles = [mars_tile(np.random.default_rng(3), kind)
             for kind in ('typical', 'typical', 'dump-pile', 'broken-rock')]
    expected = np.mean([m.calibration.normalise(m.raw_scores(tiles))
                        for m in (load_model(members['patchcore']),
                                  load_model(members['padim']))], axis=0)
    np.testing.assert_allclose(ensemble.raw_scores(tiles), expected, rtol=1e-5)
    calibration_tiles = [np.asarray(Image.open(p))
                         for p in sorted(members['calibration'].iterdir())]
    threshold = np.quantile(ensemble.raw_scores(calibration_tiles), 0.95)
    assert ensemble.calibration.threshold == pytest.approx(threshold, rel=1e-5)
    assert ensemble.metadata['train_image_size'] == [64, 64]
    assert ensemble.method == 'patchcore+padim' and ensemble.model_id.startswith('ensemble-')


def test_tiled_ensemble_finds_a_novel_tile_and_takes_a_frame_calibration(
        members: dict[str, Path], manifest: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    pool = [mars_tile(rng) for _ in range(40)]
    frame, _ = mars_frame(rng, 448, 640, None, pool)
    stripes = np.zeros((64, 64, 3), np.uint8)
    stripes[:, ::8] = 255  # an artificial tile nothing like the terrain (the members are small)
    frame[192:256, 320:384] = stripes
    box = Box(320, 192, 64, 64)
    scorer = FrameScorer(load_model(manifest), tiling=TileOptions())
    scored = scorer.score(frame, 'rgb8')
    assert scored.prediction.anomaly_map.shape == (448, 640)
    best = scored.regions[0]
    assert box.overlaps(best.x, best.y, best.width, best.height), scored.regions
    # a frame calibration stored in a copy of the manifest is used
    stored = Calibration(9.0, 1.0, 0.05, 30)
    from vad4space_ros.models.export import write_with_metadata
    copy = write_with_metadata(manifest, manifest.parent / 'pair-frames.json',
                               with_frame_calibration(scorer.model.metadata, 64, 70, stored, 30))
    calibrated = FrameScorer(load_model(copy), tiling=TileOptions())
    assert calibrated.score(frame, 'rgb8').calibration == stored
    assert calibrated.model.model_id == scorer.model.model_id


def test_bad_ensemble_manifests_are_clear_errors(members: dict[str, Path],
                                                 manifest: Path) -> None:
    folder = manifest.parent
    cases = {
        'not-json.json': ('{members: [', 'not a readable ensemble manifest'),
        'format.json': (json.dumps({'format': 'other', 'members': []}), 'not a vad4space'),
        'missing.json': (json.dumps({**json.loads(manifest.read_text()),
                                     'members': ['patchcore.safetensors', 'gone.onnx']}),
                         'not found'),
        'single.json': (json.dumps({**json.loads(manifest.read_text()),
                                    'members': ['padim.safetensors']}), 'at least two'),
        'nested.json': (json.dumps({**json.loads(manifest.read_text()),
                                    'members': ['pair.json', 'padim.safetensors']}),
                        'plain models'),
        'escape.json': (json.dumps({**json.loads(manifest.read_text()),
                                    'members': ['../models/padim.safetensors',
                                                str(members['patchcore'])]}),
                        'inside the manifest'),
    }
    for name, (text, message) in cases.items():
        (folder / name).write_text(text)
        with pytest.raises(ArtifactError, match=message):
            load_model(folder / name)
    for output in (folder / 'pair.onnx', folder.parent / 'other' / 'outside.json'):
        assert main(['ensemble', '--members', str(members['padim']), str(members['patchcore']),
                     '--calibration-dir', str(members['calibration']), '--output',
                     str(output)]) == 2
        assert not output.exists()


def test_ensemble_of_onnx_members_runs_without_the_training_stack(
        members: dict[str, Path], manifest: Path, tmp_path: Path) -> None:
    """The onboard form: exported members, scored in a fresh process without torch."""
    from test_flight_runtime import probe
    from vad4space_ros.models.export import export_onnx
    folder = members['patchcore'].parent
    onboard = [export_onnx(load_model(members[m]), folder / f'{m}.onnx')
               for m in ('patchcore', 'padim')]
    output = folder / 'pair-onnx.json'
    assert main(['ensemble', '--members', *map(str, onboard), '--calibration-dir',
                 str(members['calibration']), '--output', str(output)]) == 0
    tile = mars_tile(np.random.default_rng(3), 'dump-pile')
    report = probe(output, tile, 'rgb8', tmp_path)
    assert report['heavy'] == []
    exported = load_model(output)
    assert report['score'] == pytest.approx(FrameScorer(exported).score(tile, 'rgb8')
                                            .prediction.score, rel=1e-5)
    assert exported.raw_scores([tile])[0] == pytest.approx(
        load_model(manifest).raw_scores([tile])[0], rel=1e-3, abs=1e-3)
