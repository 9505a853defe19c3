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

"""ONNX export: exported detectors score like torch, carry their metadata, fail clearly."""
from __future__ import annotations

import json
import os
from pathlib import Path

from anomalib.models.components import GaussianBlur2d
from anomalib.models.components.stats import MultiVariateGaussian
import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from torch.nn import functional as F

from vad4space_ros.cli import main as cli_main
from vad4space_ros.data.samples import load_rgb
from vad4space_ros.deploy.artifact import ArtifactError, METADATA_KEY
from vad4space_ros.deploy.loading import load_model
from vad4space_ros.deploy.onnx_detector import OnnxDetector
from vad4space_ros.models.export import export_onnx, ExportOptions
from vad4space_ros.models.export import rebuild_module
from vad4space_ros.models.export import separable_gaussian_blur, SeparableMapResize
from vad4space_ros.models.quantize import quantize_int8, quantize_search_int8
from vad4space_ros.models.reduction import reduce_padim_features
from vad4space_ros.models.torch_detector import TorchDetector

ONNX_WEIGHTS = (Path(__file__).resolve().parents[2] / 'shared' / 'data'
                / 'mobilenetv2_onnx_int8' / 'mobilenetv2-12-int8.onnx')
SIZE = 64


def relative(a: np.ndarray, b: np.ndarray) -> float:
    """Largest absolute difference relative to the largest magnitude of ``b``."""
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


@pytest.fixture(scope='module')
def chips(lunar_chips: Path) -> dict[str, list[np.ndarray]]:
    """Train, held-out normal and test images (normal + anomalous) of the tiny lunar set."""
    def load(folder: str) -> list[np.ndarray]:
        return [load_rgb(p) for p in sorted((lunar_chips / folder).rglob('*.jpg'))]
    test = load('test/none')[:4] + load('test/ejecta')[:2] + load('test/oldcrater')[:2]
    return {'train': load('train/none'), 'calibration': load('val/none'), 'test': test}


@pytest.fixture(scope='module')
def fitted(chips: dict[str, list[np.ndarray]]) -> dict[str, TorchDetector]:
    """Fit PaDiM and PatchCore at 64 px (MobileNetV2 when its weights exist here)."""
    from vad4space_ros.training.fitting import fit_detector, FitConfig

    if 'VAD4SPACE_MOBILENETV2_ONNX' not in os.environ and ONNX_WEIGHTS.is_file():
        os.environ['VAD4SPACE_MOBILENETV2_ONNX'] = str(ONNX_WEIGHTS)
    backbone = 'mobilenet_v2' if os.environ.get('VAD4SPACE_MOBILENETV2_ONNX') else (
        'efficientnet_lite0')
    return {method: fit_detector(chips['train'], FitConfig(
        method=method, backbone=backbone, input_size=(SIZE, SIZE), progress=False),
        calibration=chips['calibration']) for method in ('padim', 'patchcore')}


@pytest.fixture(scope='module')
def exported(fitted: dict[str, TorchDetector],
             tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Export both models with the defaults (float32, dynamic batch)."""
    folder = tmp_path_factory.mktemp('exports')
    return {method: export_onnx(detector, folder / f'{method}.onnx')
            for method, detector in fitted.items()}


@pytest.mark.parametrize('method', ['padim', 'patchcore'])
def test_exported_outputs_match_torch(method: str, fitted: dict, exported: dict,
                                      chips: dict) -> None:
    torch_scores, torch_maps, torch_embeddings = fitted[method].infer(chips['test'])
    detector = load_model(exported[method], threads=1)
    scores, maps, embeddings = detector.infer(chips['test'])
    assert scores.shape == (len(chips['test']),)
    assert np.allclose(scores, torch_scores, rtol=1e-4, atol=0)
    assert relative(maps, torch_maps) < 1e-4
    assert np.allclose(embeddings, torch_embeddings, atol=1e-5)
    assert np.allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize('method', ['padim', 'patchcore'])
def test_detector_load_dispatches_onnx_and_predicts(method: str, fitted: dict, exported: dict,
                                                    chips: dict) -> None:
    image = chips['test'][-1]
    reference = fitted[method].predict(image)
    detector = load_model(exported[method])
    assert isinstance(detector, OnnxDetector)
    prediction = detector.predict(image)
    # Raw scores agree to float32 accuracy; the calibrated score is the same affine map of it
    # (comparing calibrated scores relatively is ill-posed: they are near 0 for normal images).
    assert prediction.raw_score == pytest.approx(reference.raw_score, rel=1e-4)
    assert prediction.score == pytest.approx(detector.calibration.normalise(prediction.raw_score))
    assert detector.calibration == fitted[method].calibration
    assert prediction.is_anomaly == reference.is_anomaly
    assert prediction.anomaly_map.shape == image.shape[:2]
    assert relative(prediction.anomaly_map, reference.anomaly_map) < 1e-4
    assert np.allclose(prediction.embedding, reference.embedding, atol=1e-5)


def test_openvino_runs_the_same_file(fitted: dict, exported: dict, chips: dict) -> None:
    pytest.importorskip('openvino')
    detector = load_model(exported['patchcore'], runtime='openvino', threads=1)
    scores, maps, _ = detector.infer(chips['test'][:3])
    torch_scores, torch_maps, _ = fitted['patchcore'].infer(chips['test'][:3])
    assert np.allclose(scores, torch_scores, rtol=1e-3)
    assert relative(maps, torch_maps) < 1e-3


def test_export_carries_metadata_and_calibration(fitted: dict, exported: dict) -> None:
    proto = onnx.load(str(exported['padim']))
    stored = json.loads({p.key: p.value for p in proto.metadata_props}[METADATA_KEY])
    original = fitted['padim'].metadata
    for key in ('method', 'backbone', 'input_size', 'normalisation', 'calibration', 'model_id'):
        assert stored[key] == original[key]
    assert stored['export']['format'] == 'vad4space-onnx/1'
    assert stored['export']['source_model_id'] == original['model_id']
    detector = load_model(exported['padim'])
    assert detector.calibration == fitted['padim'].calibration
    assert (detector.method, detector.input_size) == ('padim', (SIZE, SIZE))


def test_fixed_batch_export_has_batch_one(fitted: dict, chips: dict, tmp_path: Path) -> None:
    path = export_onnx(fitted['patchcore'], tmp_path / 'fixed.onnx',
                       ExportOptions(dynamic_batch=False))
    session = onnxruntime.InferenceSession(str(path), providers=['CPUExecutionProvider'])
    assert session.get_inputs()[0].shape == [1, 3, SIZE, SIZE]
    reference = fitted['patchcore'].predict(chips['test'][0])
    assert load_model(path).predict(chips['test'][0]).raw_score == pytest.approx(
        reference.raw_score, rel=1e-4)


def test_fp16_storage_halves_the_file(fitted: dict, exported: dict, chips: dict,
                                      tmp_path: Path) -> None:
    path = export_onnx(fitted['padim'], tmp_path / 'half.onnx', ExportOptions(weights_fp16=True))
    assert path.stat().st_size < 0.6 * exported['padim'].stat().st_size
    scores = load_model(path).raw_scores(chips['test'])
    assert np.allclose(scores, fitted['padim'].raw_scores(chips['test']), rtol=1e-2)


def test_padim_channel_reduction_equals_fitting_on_the_subset(fitted: dict,
                                                              chips: dict) -> None:
    model = rebuild_module(fitted['padim']).model
    with torch.inference_mode():
        batch = torch.from_numpy(np.stack(chips['train'][:16])).permute(0, 3, 1, 2).float()
        batch = torch.nn.functional.interpolate(batch / 255.0, size=(SIZE, SIZE))
        embeddings = model.generate_embedding(model.feature_extractor(batch))
    full = MultiVariateGaussian()
    full.fit(embeddings)
    model.gaussian.mean, model.gaussian.inv_covariance = full.mean, full.inv_covariance
    original_idx = model.idx.clone()
    keep = reduce_padim_features(model, 12, seed=3)
    subset = MultiVariateGaussian()
    subset.fit(embeddings[:, keep])
    assert model.idx.tolist() == original_idx[keep].tolist()
    assert torch.allclose(model.gaussian.mean, subset.mean)
    assert relative(model.gaussian.inv_covariance.numpy(),
                    subset.inv_covariance.numpy()) < 1e-3


def test_padim_feature_export_is_recalibrated(fitted: dict, exported: dict, chips: dict,
                                              tmp_path: Path) -> None:
    options = ExportOptions(weights_fp16=True, padim_features=24)
    with pytest.raises(ValueError, match='calibration'):
        export_onnx(fitted['padim'], tmp_path / 'bad.onnx', options)
    path = export_onnx(fitted['padim'], tmp_path / 'small.onnx', options, chips['calibration'])
    detector = load_model(path)
    assert path.stat().st_size < 0.1 * exported['padim'].stat().st_size
    assert detector.model_id == f'{fitted["padim"].model_id}-f24'
    normal = detector.raw_scores(chips['calibration'])
    assert detector.calibration.center == pytest.approx(float(np.median(normal)), rel=1e-5)
    assert detector.calibration.threshold != fitted['padim'].calibration.threshold


def test_int8_quantised_export_loads_and_ranks_like_torch(fitted: dict, exported: dict,
                                                          chips: dict, tmp_path: Path) -> None:
    path = quantize_int8(exported['patchcore'], tmp_path / 'int8.onnx', chips['calibration'])
    detector = load_model(path)
    assert detector.model_id.endswith('-int8')
    scores = detector.raw_scores(chips['test'])
    reference = fitted['patchcore'].raw_scores(chips['test'])
    ranks = np.corrcoef(np.argsort(np.argsort(scores)), np.argsort(np.argsort(reference)))[0, 1]
    assert ranks > 0.8


def test_bank_entries_equal_fitting_a_smaller_coreset(fitted: dict, chips: dict,
                                                      tmp_path: Path) -> None:
    from vad4space_ros.training.fitting import fit_detector, FitConfig

    def fit(ratio: float) -> TorchDetector:
        return fit_detector(chips['train'], FitConfig(
            method='patchcore', backbone=fitted['patchcore'].metadata['backbone'],
            input_size=(SIZE, SIZE), progress=False,
            method_options={'coreset_sampling_ratio': ratio}))

    large, small = fit(0.1), fit(0.04)
    count = small.model.memory_bank.shape[0]
    assert count < large.model.memory_bank.shape[0]
    assert torch.equal(large.model.memory_bank[:count], small.model.memory_bank)
    options = ExportOptions(bank_entries=count)
    with pytest.raises(ValueError, match='calibration'):
        export_onnx(large, tmp_path / 'bad.onnx', options)
    path = export_onnx(large, tmp_path / 'small.onnx', options, chips['calibration'])
    detector = load_model(path)
    assert detector.model_id == f'{large.model_id}-b{count}'
    assert np.allclose(detector.raw_scores(chips['test']), small.raw_scores(chips['test']),
                       rtol=1e-4)
    normal = detector.raw_scores(chips['calibration'])
    assert detector.calibration.center == pytest.approx(float(np.median(normal)), rel=1e-5)
    with pytest.raises(ValueError, match='PatchCore models only'):
        export_onnx(fitted['padim'], tmp_path / 'padim.onnx', options, chips['calibration'])


def test_int8_search_quantises_the_bank_product_and_refits_the_threshold(
        fitted: dict, exported: dict, chips: dict, tmp_path: Path) -> None:
    assert fitted['patchcore'].model.num_neighbors > 1   # the score's reweighting is exported
    path = quantize_search_int8(exported['patchcore'], tmp_path / 'search.onnx',
                                chips['calibration'])
    operators = [node.op_type for node in onnx.load(str(path)).graph.node]
    assert operators.count('MatMulInteger') == 1
    detector = load_model(path)
    assert detector.model_id == f'{fitted["patchcore"].model_id}-int8search'
    scores = detector.raw_scores(chips['test'])
    reference = fitted['patchcore'].raw_scores(chips['test'])
    assert np.allclose(scores, reference, rtol=0.05)
    assert not np.allclose(scores, reference, rtol=1e-5, atol=0)
    normal = detector.raw_scores(chips['calibration'])
    assert detector.calibration.center == pytest.approx(float(np.median(normal)), rel=1e-5)
    with pytest.raises(ValueError, match='PatchCore only'):
        quantize_search_int8(exported['padim'], tmp_path / 'padim.onnx', chips['calibration'])


def test_int8_search_refuses_a_bank_stored_as_float16(fitted: dict, tmp_path: Path,
                                                      chips: dict) -> None:
    half = export_onnx(fitted['patchcore'], tmp_path / 'half.onnx',
                       ExportOptions(weights_fp16=True))
    with pytest.raises(ValueError, match='without it'):
        quantize_search_int8(half, tmp_path / 'search.onnx', chips['calibration'])


def test_separable_blur_equals_anomalib_blur() -> None:
    blur = GaussianBlur2d(kernel_size=(33, 33), sigma=(4, 4), channels=1)
    image = torch.rand(2, 1, 40, 48)
    expected = blur(image)
    with separable_gaussian_blur():
        separable = blur(image)
    assert torch.allclose(separable, expected, atol=1e-6)
    assert torch.equal(blur(image), expected)  # the patch is undone after the block


@pytest.mark.parametrize('damage', ['missing', 'truncated', 'garbage', 'no_metadata'])
def test_unusable_onnx_files_raise_artifact_error(damage: str, exported: dict,
                                                  tmp_path: Path) -> None:
    path = tmp_path / 'model.onnx'
    data = exported['patchcore'].read_bytes()
    if damage == 'truncated':
        path.write_bytes(data[:len(data) // 2])
    elif damage == 'garbage':
        path.write_bytes(b'not an onnx model' * 100)
    elif damage == 'no_metadata':
        proto = onnx.load(str(exported['patchcore']))
        del proto.metadata_props[:]
        onnx.save(proto, str(path))
    with pytest.raises(ArtifactError):
        load_model(path)


def test_export_cli_writes_and_checks(fitted: dict, chips: dict, lunar_chips: Path,
                                      tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    source = fitted['patchcore'].save(tmp_path / 'patchcore.safetensors')
    output = tmp_path / 'patchcore.onnx'
    code = cli_main(['export', '--model', str(source), '--output', str(output),
                     '--check-dir', str(lunar_chips / 'test'), '--check-count', '6'])
    printed = capsys.readouterr().out
    assert code == 0
    assert load_model(output).model_id == fitted['patchcore'].model_id
    difference = float(printed.split('max relative difference ')[1].split(',')[0])
    assert difference < 1e-4


def test_export_cli_int8_search_needs_and_uses_calibration_images(
        fitted: dict, lunar_chips: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    source = fitted['patchcore'].save(tmp_path / 'patchcore.safetensors')
    output = tmp_path / 'patchcore.onnx'
    assert cli_main(['export', '--model', str(source), '--output', str(output),
                     '--int8-search']) == 2
    assert '--calibration-dir' in capsys.readouterr().err
    assert not output.exists()
    code = cli_main(['export', '--model', str(source), '--output', str(output), '--int8-search',
                     '--calibration-dir', str(lunar_chips / 'val' / 'none')])
    assert code == 0
    assert load_model(output).model_id.endswith('-int8search')
    code = cli_main(['export', '--model', str(source), '--output', str(output), '--bank-entries',
                     '5', '--calibration-dir', str(lunar_chips / 'val' / 'none')])
    assert code == 0
    assert load_model(output).model_id == f'{fitted["patchcore"].model_id}-b5'


@pytest.mark.slow
def test_bench_latency_compares_backends_on_the_same_images(fitted: dict, tmp_path: Path) -> None:
    source = fitted['patchcore'].save(tmp_path / 'patchcore.safetensors')
    report = tmp_path / 'latency.json'
    code = cli_main(['bench', 'latency', '--models', str(source), '--images', '3',
                     '--warmup', '1', '--threads', '1', '--size', str(SIZE),
                     '--backends', 'torch,onnxruntime,anomalib-torch',
                     '--work-dir', str(tmp_path / 'work'), '--output', str(report)])
    assert code == 0
    rows = {row['backend']: row for row in json.loads(report.read_text())['rows']}
    assert set(rows) == {'torch', 'onnxruntime', 'anomalib-torch'}
    for row in rows.values():
        assert len(row['latencies_ms']) == 3 and row['median_ms'] > 0
        assert row['peak_mb'] > 0 and row['footprint_mb'] > 0
    assert rows['onnxruntime']['score_rel_diff'] < 1e-4
    assert rows['anomalib-torch']['score_rel_diff'] < 1e-4


@pytest.mark.parametrize('mode', ['bilinear', 'nearest'])
def test_separable_map_resize_equals_upsample_then_blur(mode: str) -> None:
    """The two operator matrices reproduce anomalib's interpolation + Gaussian blur."""
    blur = GaussianBlur2d(kernel_size=(33, 33), sigma=(4, 4), channels=1)
    grid_map = torch.rand(2, 1, 7, 9)
    extra = {'align_corners': False} if mode == 'bilinear' else {}
    reference = blur(F.interpolate(grid_map, size=(40, 56), mode=mode, **extra))
    resized = SeparableMapResize((7, 9), (40, 56), mode, blur)(grid_map)
    assert resized.shape == reference.shape
    assert torch.allclose(resized, reference, rtol=1e-5, atol=1e-6)
