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

"""The detector node running a 6-band fused model (``vad4space fit --spectral-fusion``) over DDS.

A PaDiM + RX model is fitted by the CLI on generated Mastcam-like tiles (64 px, 30 tiles); the
node runs it with ``config/mastcam_fused.yaml`` in its own process. Frames are 6-band tiles;
the node's published scores and maps are compared with the offline
:class:`~vad4space_ros.deploy.spectral.FusedDetector` loaded from the same file.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
import subprocess
import sys
import time

from conftest import fit_environment, offline_backbone
import numpy as np
import pytest
from sensor_msgs.msg import Image
from test_detector_node import detector_session, DetectorSession, image_msg, NODE

from vad4space_ros.deploy.image_encoding import image_to_array, RawImage
from vad4space_ros.deploy.loading import load_model
from vad4space_ros.deploy.spectral import bands_to_rgb, FusedDetector
from vad4space_ros.nodes.ros_conversions import msg_to_record

IMAGE_TOPIC = '/mastcam/multispectral'
TRAIN_TILES = 30
PATCH = (slice(20, 34), slice(22, 36))


def typical_tiles(seed: int, count: int) -> list[np.ndarray]:
    """Render generated typical Mastcam tiles as 64x64x6 uint8 DN."""
    from vad4space_ros.data.synthetic_mars import render_tile

    rng = np.random.default_rng(seed)
    return [render_tile(rng, 'typical').astype(np.uint8) for _ in range(count)]


def nir_only_anomaly(tile: np.ndarray) -> np.ndarray:
    """Lower the 908/937/1013 nm bands by 30% in a 14x14 patch; the RGB-view bands stay."""
    anomaly = tile.copy()
    anomaly[PATCH[0], PATCH[1], 3:] = np.rint(anomaly[PATCH[0], PATCH[1], 3:] * 0.7)
    return anomaly


def decoded_map(message: Image) -> np.ndarray:
    """Return the pixels of a 32FC1 map message."""
    return image_to_array(RawImage(message.height, message.width, message.encoding,
                                   bool(message.is_bigendian), message.step,
                                   bytes(message.data)))


@pytest.fixture(scope='module')
def fused_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Fit PaDiM (64 px) + the RX branch on generated typical tiles with the CLI."""
    folder = tmp_path_factory.mktemp('mastcam_typical')
    for index, tile in enumerate(typical_tiles(0, TRAIN_TILES)):
        np.save(folder / f'typical_{index:02d}.npy', tile.astype(np.float64))
    output = tmp_path_factory.mktemp('fused_model') / 'fused.safetensors'
    command = [str(Path(sys.executable).parent / 'vad4space'), 'fit', '--spectral-fusion',
               '--method', 'padim', '--backbone', offline_backbone()[0], '--input-size', '64',
               '--train-dir', str(folder), '--output', str(output)]
    result = subprocess.run(command, env=fit_environment(), capture_output=True, text=True,
                            timeout=900)
    assert result.returncode == 0, f'{" ".join(command)} failed:\n{result.stderr[-4000:]}'
    return output


@pytest.fixture(scope='module')
def offline(fused_model: Path) -> FusedDetector:
    """Load the fused model in the test process, as `vad4space score` does."""
    model = load_model(fused_model)
    assert isinstance(model, FusedDetector)
    return model


@pytest.fixture(scope='module')
def fused_node(fused_model: Path) -> Iterator[DetectorSession]:
    """Start the detector on the fused model with config/mastcam_fused.yaml; handshake.

    ``model_dir`` is the model's folder, so ``model_path`` can switch to files written there.
    """
    with detector_session(fused_model, 'mastcam_fused.yaml', (typical_tiles(99, 1)[0], '8UC6'),
                          image_topic=IMAGE_TOPIC,
                          parameters={'model_dir': str(fused_model.parent)}) as session:
        yield session


def test_node_publishes_the_offline_fused_score_and_map(
        fused_node: DetectorSession, offline: FusedDetector) -> None:
    everything = ('score', 'detection', 'map', 'heatmap')
    normal_scores, anomaly_scores = [], []
    for tile in typical_tiles(7, 3):
        anomaly = nir_only_anomaly(tile)
        view = offline.config.rgb_bands
        assert np.array_equal(bands_to_rgb(tile, view), bands_to_rgb(anomaly, view))
        for cube, scores in ((tile, normal_scores), (anomaly, anomaly_scores)):
            expected = offline.predict(cube)
            answers = fused_node.send(
                image_msg(cube, '8UC6', fused_node.header('fused')), everything)
            point = answers['score'].point
            assert (point.x, point.y) == pytest.approx(
                (expected.score, expected.raw_score), rel=1e-4, abs=1e-5)
            record = msg_to_record(answers['detection'])
            assert record.model_id == offline.model_id and record.model_id.endswith('+rx')
            assert record.method == 'padim' and record.is_anomaly == expected.is_anomaly
            anomaly_map = decoded_map(answers['map'])
            assert anomaly_map.shape == (64, 64)
            np.testing.assert_allclose(anomaly_map, expected.anomaly_map, rtol=1e-4, atol=1e-4)
            assert (answers['heatmap'].height, answers['heatmap'].width) == (64, 64)
            scores.append(point.x)
    assert min(anomaly_scores) > max(normal_scores), (normal_scores, anomaly_scores)
    status = fused_node.latest_status(time.monotonic())
    assert status['spectral_fusion'] == 'true' and status['model_id'] == offline.model_id


def test_16_bit_and_float_frames_are_scaled_like_the_offline_cube(
        fused_node: DetectorSession, offline: FusedDetector) -> None:
    tile = nir_only_anomaly(typical_tiles(11, 1)[0])
    expected = offline.predict(tile).score
    # config/mastcam_fused.yaml: sixteen_bit_max 4095 (12-bit DN), float_max 1.0.
    twelve_bit = ((tile.astype(np.int32) * 4095 + 127) // 255).astype(np.uint16)
    frames = {'32FC6': tile.astype(np.float32) / 255.0, '16UC6': twelve_bit}
    scores = {encoding: fused_node.send(image_msg(pixels, encoding, fused_node.header(
        encoding)))['score'].point.x for encoding, pixels in frames.items()}
    assert scores['32FC6'] == pytest.approx(expected, rel=1e-4, abs=1e-5)
    assert scores['16UC6'] == pytest.approx(expected, abs=0.02)


def test_frames_without_six_bands_are_rejected_and_the_node_keeps_working(
        fused_node: DetectorSession, offline: FusedDetector) -> None:
    tile = typical_tiles(13, 1)[0]
    before = fused_node.latest_status(time.monotonic())
    rgb_view = bands_to_rgb(tile, offline.config.rgb_bands)
    for pixels, encoding in ((rgb_view, 'rgb8'), (rgb_view[:, :, 0].copy(), 'mono8')):
        fused_node.image_pub.publish(image_msg(pixels, encoding, fused_node.header('3band')))
        fused_node.ros.spin_for(0.3)
    answer = fused_node.send(image_msg(tile, '8UC6', fused_node.header('after-3band')))
    assert answer['score'].point.x == pytest.approx(offline.predict(tile).score,
                                                    rel=1e-4, abs=1e-5)
    after = fused_node.latest_status(time.monotonic())
    assert int(after['rejected']) - int(before['rejected']) == 2
    assert int(after['failed']) == 0
    assert not [m for m in fused_node.outputs['score'].messages
                if m.header.frame_id.startswith('3band')]
    log = fused_node.process.log()
    assert 'is a 6-band fused model' in log and 'got rgb8' in log


def test_spectral_fusion_off_scores_the_rgb_branch_only(
        fused_node: DetectorSession, offline: FusedDetector) -> None:
    tile = typical_tiles(17, 1)[0]
    anomaly = nir_only_anomaly(tile)
    rgb_expected = offline.rgb.predict(bands_to_rgb(tile, offline.config.rgb_bands)).score
    set_parameters = fused_node.ros.set_parameters
    assert set_parameters(NODE, {'spectral_fusion': False},
                          process=fused_node.process)[0].successful
    try:
        answers = [fused_node.send(image_msg(cube, '8UC6', fused_node.header('rgb-only')),
                                   ('score', 'detection')) for cube in (tile, anomaly)]
        status = fused_node.latest_status(time.monotonic())
    finally:
        assert set_parameters(NODE, {'spectral_fusion': True},
                              process=fused_node.process)[0].successful
    scores = [answer['score'].point.x for answer in answers]
    assert scores[0] == scores[1] == pytest.approx(rgb_expected, rel=1e-4, abs=1e-5)
    assert msg_to_record(answers[0]['detection']).model_id == offline.rgb.model_id
    assert status['spectral_fusion'] == 'false'
    fused_again = fused_node.send(image_msg(anomaly, '8UC6', fused_node.header('fused-again')))
    assert fused_again['score'].point.x == pytest.approx(offline.predict(anomaly).score,
                                                         rel=1e-4, abs=1e-5)


def test_model_path_switches_between_fused_and_exported_models_at_run_time(
        fused_node: DetectorSession, offline: FusedDetector, fused_model: Path) -> None:
    from vad4space_ros.models.export import export_onnx

    exported_path = export_onnx(offline.rgb, fused_model.parent / 'rgb_branch.onnx')
    exported = load_model(exported_path)
    assert type(exported).__name__ == 'OnnxDetector'
    tile = typical_tiles(19, 1)[0]
    rgb_view = bands_to_rgb(tile, offline.config.rgb_bands)
    set_parameters = fused_node.ros.set_parameters
    assert set_parameters(NODE, {'model_path': str(exported_path)},
                          process=fused_node.process)[0].successful
    try:
        # A plain model takes 3-band frames again, and 6-band ones through
        # multispectral_rgb_bands (the config's default [0, 1, 2]).
        rgb_answer = fused_node.send(image_msg(rgb_view, 'rgb8', fused_node.header('onnx')),
                                     ('score', 'detection'))
        six_band = fused_node.send(image_msg(tile, '8UC6', fused_node.header('onnx-6')))
    finally:
        assert set_parameters(NODE, {'model_path': str(fused_model)},
                              process=fused_node.process)[0].successful
    assert rgb_answer['score'].point.x == pytest.approx(exported.predict(rgb_view).score,
                                                        rel=1e-4, abs=1e-5)
    assert msg_to_record(rgb_answer['detection']).model_id == exported.model_id
    assert six_band['score'].point.x == pytest.approx(
        exported.predict(np.ascontiguousarray(tile[:, :, :3])).score, rel=1e-4, abs=1e-5)
    fused_again = fused_node.send(image_msg(tile, '8UC6', fused_node.header('fused-back')))
    assert fused_again['score'].point.x == pytest.approx(offline.predict(tile).score,
                                                         rel=1e-4, abs=1e-5)


def nir_anomaly_frame() -> np.ndarray:
    """Return a 4x5-tile 8UC6 frame (256x320) with a NIR-only anomaly in row 2, column 3."""
    tiles = typical_tiles(21, 20)
    tiles[13] = nir_only_anomaly(tiles[13])
    return np.concatenate([np.concatenate(tiles[row * 5:row * 5 + 5], axis=1)
                           for row in range(4)])


def test_a_6_band_frame_is_scored_in_fused_tiles_and_the_nir_only_tile_is_found(
        offline: FusedDetector) -> None:
    """A 4x5-tile 8UC6 frame with one NIR-only anomaly: fused tiles find it, RGB tiles cannot."""
    from vad4space_ros.deploy.frame_scoring import FrameScorer
    from vad4space_ros.deploy.tiling import TileOptions

    frame = nir_anomaly_frame()
    fused = FrameScorer(offline, tiling=TileOptions()).score(frame, '8UC6')
    assert fused.calibration is not None and fused.prediction.anomaly_map.shape == (256, 320)
    assert fused.display.shape == (256, 320, 3)
    top = fused.regions[0]
    assert (top.x, top.y, top.width, top.height) == (192, 128, 64, 64), fused.regions
    assert fused.prediction.is_anomaly
    rgb_only = FrameScorer(offline, spectral_fusion=False, tiling=TileOptions()).score(
        frame, '8UC6')
    assert rgb_only.prediction.score < fused.prediction.score
    assert not any(r.x == 192 and r.y == 128 for r in rgb_only.regions[:1])


def test_cli_scores_a_6_band_file_in_fused_tiles_like_the_node(
        fused_model: Path, offline: FusedDetector, tmp_path: Path) -> None:
    """`vad4space score` tiles a fused model's .npy frame; a 3-band file is refused alone."""
    import json

    import PIL.Image

    from vad4space_ros.deploy.frame_scoring import FrameScorer
    from vad4space_ros.deploy.tiling import TileOptions

    frame = nir_anomaly_frame()
    bands, view = tmp_path / 'frame.npy', tmp_path / 'view.png'
    np.save(bands, frame.astype(np.float64))                    # DN, as the archive stores
    PIL.Image.fromarray(bands_to_rgb(frame, offline.config.rgb_bands)).save(view)
    command = [str(Path(sys.executable).parent / 'vad4space'), 'score', '--model',
               str(fused_model), '--json', str(bands), str(view)]
    result = subprocess.run(command, env=fit_environment(), capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 1, result.stderr[-3000:]   # view.png has 3 bands
    scored, refused = (json.loads(line) for line in result.stdout.splitlines())
    expected = FrameScorer(offline, tiling=TileOptions()).score(frame, '8UC6')
    assert scored['tile_size'] == 64 and (scored['width'], scored['height']) == (320, 256)
    assert scored['score'] == pytest.approx(expected.prediction.score, rel=1e-4, abs=1e-5)
    assert scored['model_id'] == offline.model_id and scored['is_anomaly']
    assert [(r['x'], r['y']) for r in scored['regions'][:1]] == [(192, 128)]
    assert refused['image'] == str(view) and '6-band fused model' in refused['error']


def test_calibrate_frames_stores_a_fused_frame_threshold_used_only_while_fusing(
        fused_model: Path, offline: FusedDetector, tmp_path: Path) -> None:
    """`calibrate-frames` on 6-band frames fits the fused max-over-tiles threshold.

    The safetensors and ONNX copies keep the fused model (the ONNX one its RX statistics, which
    live in its metadata); the RGB branch alone keeps its derived frame calibration.
    """
    from vad4space_ros.cli import main
    from vad4space_ros.deploy.calibration import Calibration
    from vad4space_ros.deploy.frame_scoring import FrameScorer
    from vad4space_ros.deploy.tiling import TileOptions
    from vad4space_ros.models.export import export_onnx

    folder = tmp_path / 'normal_frames'
    folder.mkdir()
    frames = []
    for index in range(12):
        tiles = typical_tiles(200 + index, 6)
        frames.append(np.concatenate([np.concatenate(tiles[:3], axis=1),
                                      np.concatenate(tiles[3:], axis=1)]))
        np.save(folder / f'frame_{index:02d}.npy', frames[-1].astype(np.float64))
    fused_scorer = FrameScorer(offline, tiling=TileOptions())
    raw = [fused_scorer.score(frame, '8UC6').prediction.raw_score for frame in frames]
    onboard = export_onnx(offline, tmp_path / 'fused.onnx')
    for source in (fused_model, onboard):
        output = tmp_path / f'frames-{source.name}'
        assert main(['calibrate-frames', '--model', str(source), '--output', str(output),
                     '--tile', '64', str(folder)]) == 0
        calibrated = load_model(output)
        assert isinstance(calibrated, FusedDetector)
        entry, = calibrated.metadata['frame_calibrations']
        assert (entry['model_id'], entry['tile_size'], entry['tile_count'], entry['frames']) == (
            offline.model_id, 64, 6, 12)
        stored = Calibration(**entry['calibration'])
        assert stored.threshold == pytest.approx(np.quantile(raw, 0.95), rel=1e-4)
        frame = frames[0]
        fused = FrameScorer(calibrated, tiling=TileOptions()).score(frame, '8UC6')
        assert fused.calibration == stored
        assert 'for [6] tiles' in FrameScorer(calibrated, tiling=TileOptions()).describe()
        assert fused.prediction.raw_score == pytest.approx(raw[0], rel=1e-4)
        rgb_only = FrameScorer(calibrated, spectral_fusion=False, tiling=TileOptions())
        derived = FrameScorer(offline, spectral_fusion=False, tiling=TileOptions())
        assert (rgb_only.score(frame, '8UC6').calibration
                == derived.score(frame, '8UC6').calibration != stored)
