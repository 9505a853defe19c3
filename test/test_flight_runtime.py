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

"""The onboard path: an exported model runs without the training stack and validates at load."""
from __future__ import annotations

import json
from pathlib import Path
import subprocess
import sys

from conftest import fit_environment
import numpy as np
import onnx
import pytest
from safetensors import safe_open
from safetensors.torch import save_file

from vad4space_ros.deploy.artifact import ArtifactError, METADATA_KEY
from vad4space_ros.deploy.loading import load_model
from vad4space_ros.deploy.spectral import bands_to_rgb, FusedDetector
from vad4space_ros.models.export import export_onnx, set_metadata
from vad4space_ros.training.fitting import fit_detector, FitConfig
from vad4space_ros.training.spectral_fitting import fit_spectral_fusion

TRAINING_STACK = ('torch', 'torchvision', 'anomalib', 'lightning', 'timm', 'scipy', 'sklearn',
                  'vad4space_ros.models', 'vad4space_ros.training')

# Runs in a fresh interpreter: import the detector node module, open the model file, score a
# frame as the node does, and report which heavy modules were imported.
PROBE = """
import json, sys
import numpy as np
import vad4space_ros.nodes.detector_node
from vad4space_ros.deploy.frame_scoring import FrameScorer
from vad4space_ros.deploy.loading import load_model
frame = np.load(sys.argv[2])
scored = FrameScorer(load_model(sys.argv[1])).score(frame, sys.argv[3])
heavy = sorted(name for name in sys.modules if name.split('.')[0] in {modules}
               or name.startswith(('vad4space_ros.models', 'vad4space_ros.training')))
print(json.dumps({{'heavy': heavy, 'score': scored.prediction.score}}))
""".format(modules=set(TRAINING_STACK[:7]))


def probe(model: Path, frame: np.ndarray, encoding: str, tmp_path: Path) -> dict:
    """Score ``frame`` with ``model`` in a fresh process; return its report."""
    frame_file = tmp_path / f'frame-{encoding}.npy'
    np.save(frame_file, frame)
    result = subprocess.run([sys.executable, '-c', PROBE, str(model), str(frame_file), encoding],
                            capture_output=True, text=True, timeout=120, env=fit_environment())
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope='module')
def onboard_model(padim_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Export the session's PaDiM model to the onboard ONNX file (fp16 weights)."""
    return export_onnx(load_model(padim_model),
                       tmp_path_factory.mktemp('onboard') / 'padim.onnx')


def test_exported_model_scores_without_the_training_stack(
        onboard_model: Path, padim_model: Path, lunar_chips: Path, tmp_path: Path) -> None:
    """Importing the node and scoring a frame loads none of torch/anomalib/lightning/timm."""
    from vad4space_ros.data.samples import load_rgb
    chip = load_rgb(sorted((lunar_chips / 'test' / 'ejecta').iterdir())[0])
    report = probe(onboard_model, chip, 'rgb8', tmp_path)
    assert report['heavy'] == []
    assert report['score'] == pytest.approx(load_model(padim_model).predict(chip).score,
                                            rel=1e-4, abs=1e-4)


def test_fused_export_is_one_file_that_runs_without_the_training_stack(
        backbone: str, tmp_path: Path) -> None:
    """A 6-band fused model exports to one .onnx file that scores 8UC6 frames like torch."""
    rng = np.random.default_rng(0)
    cubes = [np.clip(rng.normal(0.3, 0.05, (32, 32, 6)), 0, 1).astype(np.float32)
             for _ in range(16)]
    rgb = fit_detector([bands_to_rgb(c) for c in cubes[:12]],
                       FitConfig('padim', backbone=backbone, input_size=(64, 64), progress=False),
                       [bands_to_rgb(c) for c in cubes[12:]])
    fused = fit_spectral_fusion(rgb, cubes[:12], cubes[12:])
    path = export_onnx(fused, tmp_path / 'fused.onnx')
    loaded = load_model(path)
    assert isinstance(loaded, FusedDetector) and loaded.model_id == fused.model_id
    anomaly = cubes[0].copy()
    anomaly[10:18, 10:18, 3:] *= 0.6
    report = probe(path, np.rint(anomaly * 255).astype(np.uint8), '8UC6', tmp_path)
    assert report['heavy'] == []
    expected = fused.predict(np.rint(anomaly * 255).astype(np.uint8) / np.float32(255.0)).score
    assert report['score'] == pytest.approx(expected, rel=1e-4, abs=1e-4)


def test_onnx_file_whose_metadata_disagrees_with_its_graph_is_refused(
        onboard_model: Path, tmp_path: Path) -> None:
    """An edited input_size fails the test inference at load, not on every frame later."""
    proto = onnx.load(str(onboard_model))
    metadata = json.loads({p.key: p.value for p in proto.metadata_props}[METADATA_KEY])
    metadata['input_size'] = [64, 64]
    set_metadata(proto, metadata)
    edited = tmp_path / 'edited.onnx'
    onnx.save(proto, str(edited))
    with pytest.raises(ArtifactError, match='test inference at the stated input size 64x64'):
        load_model(edited)


def test_safetensors_file_whose_metadata_disagrees_with_its_tensors_is_refused(
        padim_model: Path, tmp_path: Path) -> None:
    """The same edit to a .safetensors model is refused at load."""
    with safe_open(str(padim_model), framework='pt') as artifact:
        metadata = json.loads(artifact.metadata()[METADATA_KEY])
        tensors = {key: artifact.get_tensor(key) for key in artifact.keys()}
    metadata['input_size'] = [64, 64]
    edited = tmp_path / 'edited.safetensors'
    save_file(tensors, str(edited), metadata={METADATA_KEY: json.dumps(metadata)})
    with pytest.raises(ArtifactError, match='edited.safetensors'):
        load_model(edited)


def test_fit_export_writes_the_onboard_model(lunar_chips: Path, tmp_path: Path) -> None:
    """`vad4space fit --export` writes the .onnx beside the .safetensors, with equal scores."""
    command = [str(Path(sys.executable).parent / 'vad4space'), 'fit', '--method', 'padim',
               '--input-size', '64', '--train-dir', str(lunar_chips / 'train' / 'none'),
               '--output', str(tmp_path / 'm.safetensors'), '--export',
               str(tmp_path / 'm.onnx'), '--fp16']
    result = subprocess.run(command, env=fit_environment(), capture_output=True, text=True,
                            timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'onboard model' in result.stdout
    image = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    torch_score = load_model(tmp_path / 'm.safetensors').predict(image).score
    assert load_model(tmp_path / 'm.onnx').predict(image).score == pytest.approx(
        torch_score, rel=1e-3, abs=1e-3)
