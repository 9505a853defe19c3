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

"""Colour RX: the spectral branch on R, G, B of colour images, fused with the RGB model.

``vad4space fit --spectral-fusion`` on colour images (PNG) fits the RX branch on their three
colours; the fused model takes colour frames (rgb8, bgr8, ...) in the CLI, the frame scorer
and the detector node over DDS, and ``vad4space export --int8-search`` recalibrates both
branches' fusion.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
import subprocess
import sys
import time

from conftest import fit_environment, offline_backbone
import numpy as np
from PIL import Image as PilImage
import pytest
from test_detector_node import detector_session, DetectorSession, image_msg

from vad4space_ros.cli import main as cli_main
from vad4space_ros.data.synthetic_frames import mars_tile
from vad4space_ros.deploy.calibration import Calibration
from vad4space_ros.deploy.frame_scoring import FrameScorer
from vad4space_ros.deploy.image_encoding import ImageEncodingError
from vad4space_ros.deploy.loading import load_model
from vad4space_ros.deploy.spectral import bands_to_rgb, FusedDetector, RGB_IMAGE_BANDS
from vad4space_ros.deploy.tiling import TileOptions
from vad4space_ros.training.spectral_fitting import fit_rx

PATCH = (slice(20, 36), slice(22, 38))
FRAME_TILES = (4, 5)
NOVEL_CELL = (2, 3)


def typical(seed: int, count: int) -> list[np.ndarray]:
    """Render generated typical Mars tiles, RGB view (64x64x3 uint8)."""
    rng = np.random.default_rng(seed)
    return [mars_tile(rng) for _ in range(count)]


def less_red(tile: np.ndarray) -> np.ndarray:
    """Halve the red channel in a 16x16 patch (a grey rock on red ground; shading kept)."""
    anomaly = tile.copy()
    anomaly[PATCH[0], PATCH[1], 0] = np.rint(anomaly[PATCH[0], PATCH[1], 0] * 0.5)
    return anomaly


def colour_frame() -> np.ndarray:
    """Return a 256x320 mosaic of typical tiles with one less-red tile at NOVEL_CELL."""
    tiles = typical(21, FRAME_TILES[0] * FRAME_TILES[1])
    rows = [np.concatenate(tiles[r * FRAME_TILES[1]:(r + 1) * FRAME_TILES[1]], axis=1)
            for r in range(FRAME_TILES[0])]
    frame = np.concatenate(rows, axis=0)
    y, x = (64 * c for c in NOVEL_CELL)
    frame[y:y + 64, x:x + 64] = less_red(frame[y:y + 64, x:x + 64])
    return frame


def write_pngs(folder: Path, tiles: list[np.ndarray]) -> Path:
    """Write tiles as PNG files into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for index, tile in enumerate(tiles):
        PilImage.fromarray(tile).save(folder / f'tile_{index:03d}.png')
    return folder


def run_cli(*arguments: str) -> None:
    """Run the vad4space console script in a subprocess; fail with its stderr."""
    command = [str(Path(sys.executable).parent / 'vad4space'), *arguments]
    result = subprocess.run(command, env=fit_environment(), capture_output=True, text=True,
                            timeout=900)
    assert result.returncode == 0, f'{" ".join(command)} failed:\n{result.stderr[-4000:]}'


@pytest.fixture(scope='module')
def pngs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Write typical tiles as colour PNG files: 40 to fit on, 20 to calibrate on."""
    root = tmp_path_factory.mktemp('colour_tiles')
    return {'train': write_pngs(root / 'train', typical(0, 40)),
            'calibration': write_pngs(root / 'calibration', typical(1, 20))}


@pytest.fixture(scope='module')
def colour_model(pngs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Fit PatchCore (64 px) + the colour RX branch (RX options not the defaults)."""
    output = tmp_path_factory.mktemp('colour_model') / 'colour.safetensors'
    run_cli('fit', '--spectral-fusion', '--spectral-smoothing', '2', '--spectral-quantile',
            '0.98', '--spectral-components', '2', '--spectral-line-length', '5', '--method',
            'patchcore', '--backbone', offline_backbone()[0], '--input-size', '64',
            '--train-dir', str(pngs['train']), '--calibration-dir', str(pngs['calibration']),
            '--output', str(output))
    return output


@pytest.fixture(scope='module')
def offline(colour_model: Path) -> FusedDetector:
    """Load the colour fused model in the test process."""
    model = load_model(colour_model)
    assert isinstance(model, FusedDetector)
    return model


def test_colour_rx_flags_a_colour_change_in_every_tile() -> None:
    """Fitted on RGB tiles, the RX branch has 3 features and ranks every less-red tile first."""
    rx = fit_rx(typical(2, 40))
    assert rx.bands == 3 and rx.config.rgb_bands == RGB_IMAGE_BANDS
    normal = rx.scores(typical(3, 30))
    anomalies = rx.scores([less_red(t) for t in typical(4, 10)])
    assert anomalies.min() > normal.max(), (normal.max(), anomalies)
    with pytest.raises(ValueError, match='3-band'):
        rx.score(np.zeros((8, 8, 6), np.uint8))


def test_cli_fits_a_colour_fused_model_on_colour_images(
        colour_model: Path, offline: FusedDetector, tmp_path: Path) -> None:
    """The fused file knows its 3 bands; its RGB view is the image itself.

    A file whose metadata gives the colour branch another band view or band count is refused.
    """
    from vad4space_ros.deploy.artifact import ArtifactError
    from vad4space_ros.models.export import write_with_metadata

    assert offline.bands == 3 and offline.config.rgb_bands == RGB_IMAGE_BANDS
    assert (offline.config.smoothing, offline.config.quantile) == (2.0, 0.98)
    assert offline.config.line_length == 5
    assert offline.config.components == offline.spectral.components == 2
    assert offline.model_id.endswith('+rx')
    assert offline.metadata['spectral']['bands'] == 3
    tile = typical(5, 1)[0]
    assert np.array_equal(bands_to_rgb(tile, offline.config.rgb_bands), tile)
    spectral = offline.metadata['spectral']
    for edit in ({'config': {**spectral['config'], 'rgb_bands': [2, 1, 0]}}, {'bands': 6}):
        edited = {**offline.metadata, 'spectral': {**spectral, **edit}}
        with pytest.raises(ArtifactError, match='spectral'):
            load_model(write_with_metadata(colour_model, tmp_path / 'edited.safetensors', edited))


@pytest.mark.parametrize('options, reason', [
    (['--spectral-smoothing', '2'], 'need --spectral-fusion'),
    (['--spectral-fusion', '--spectral-smoothing', '-1'], 'smoothing must be'),
    (['--spectral-fusion', '--spectral-quantile', '1.5'], 'quantile must lie'),
    (['--spectral-components', '2'], 'need --spectral-fusion'),
    (['--spectral-fusion', '--spectral-components', '0'], 'components must be'),
    (['--spectral-line-length', '9'], 'need --spectral-fusion'),
    (['--spectral-fusion', '--spectral-line-length', '4'], 'odd number')])
def test_cli_fit_refuses_bad_rx_map_options_before_fitting(
        pngs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture,
        options: list[str], reason: str) -> None:
    """RX options without the RX branch, or out of range: exit 2, the reason, no file."""
    output = tmp_path / 'refused.safetensors'
    code = cli_main(['fit', '--method', 'patchcore', '--input-size', '64', *options,
                     '--train-dir', str(pngs['train']), '--output', str(output)])
    assert code == 2
    assert reason in capsys.readouterr().err
    assert not output.exists()


def test_int8_search_export_recalibrates_the_fused_score(
        colour_model: Path, offline: FusedDetector, pngs: dict[str, Path],
        tmp_path: Path) -> None:
    """Both calibrations of the export are refitted on its own scores of the calibration tiles.

    The export's check (``--check-dir``) compares the RGB branches; a plain export keeps the
    fitted model's scores (ONNX against torch).
    """
    from vad4space_ros.data.samples import load_rgb
    from vad4space_ros.models.export import export_onnx

    exported = tmp_path / 'colour_int8search.onnx'
    run_cli('export', '--model', str(colour_model), '--output', str(exported), '--int8-search',
            '--calibration-dir', str(pngs['calibration']), '--check-dir', str(pngs['train']),
            '--check-count', '4')
    model = load_model(exported)
    assert isinstance(model, FusedDetector) and model.bands == 3
    assert model.model_id == offline.model_id.removesuffix('+rx') + '-int8search+rx'
    images = [load_rgb(p) for p in sorted(pngs['calibration'].glob('*.png'))]
    rate = offline.calibration.false_alarm_rate
    rgb = Calibration.from_normal_scores(model.rgb.raw_scores(images), rate)
    assert model.rgb.calibration.threshold == pytest.approx(rgb.threshold, rel=1e-9)
    fusion = model.calibrate_fusion(images, rate)
    assert model.calibration.threshold == pytest.approx(fusion.threshold, rel=1e-9)
    assert model.calibration.center == pytest.approx(fusion.center, rel=1e-9)
    plain = load_model(export_onnx(offline, tmp_path / 'colour.onnx'))
    tests = typical(6, 4) + [less_red(t) for t in typical(7, 4)]
    np.testing.assert_allclose(plain.scores(tests), offline.scores(tests), rtol=1e-4,
                               atol=1e-4)


def test_frame_scorer_takes_colour_frames_and_finds_the_colour_tile(
        offline: FusedDetector) -> None:
    """rgb8 and bgr8 score alike; grey and 6-band frames are refused with the reason."""
    frame = colour_frame()
    scorer = FrameScorer(offline, tiling=TileOptions())
    scored = scorer.score(frame, 'rgb8')
    assert scored.prediction.anomaly_map.shape == frame.shape[:2]
    top = scored.regions[0]
    assert (top.y, top.x) == tuple(64 * c for c in NOVEL_CELL), scored.regions
    swapped = scorer.score(frame[:, :, ::-1].copy(), 'bgr8')
    assert swapped.prediction.raw_score == pytest.approx(scored.prediction.raw_score, rel=1e-6)
    for pixels, encoding in ((frame[:, :, 0].copy(), 'mono8'),
                             (np.zeros((64, 64, 6), np.uint8), '8UC6')):
        with pytest.raises(ImageEncodingError, match='colour frames'):
            scorer.score(pixels, encoding)


@pytest.fixture(scope='module')
def colour_node(colour_model: Path) -> Iterator[DetectorSession]:
    """Start the detector on the colour fused model (rover.yaml); handshake with an rgb8 tile."""
    with detector_session(colour_model, 'rover.yaml', (typical(99, 1)[0], 'rgb8'),
                          image_topic='/mastcam/image_raw') as session:
        yield session


def test_node_scores_colour_frames_in_fused_tiles_like_the_offline_scorer(
        colour_node: DetectorSession, offline: FusedDetector) -> None:
    """An rgb8 frame over DDS: the offline score and the colour tile on top; mono8 is refused."""
    from vad4space_ros.nodes.ros_conversions import msg_to_record

    frame = colour_frame()
    expected = FrameScorer(offline, tiling=TileOptions()).score(frame, 'rgb8')
    before = colour_node.latest_status(time.monotonic())
    colour_node.image_pub.publish(image_msg(frame[:, :, 0].copy(), 'mono8',
                                            colour_node.header('grey')))
    colour_node.ros.spin_for(0.3)
    answers = colour_node.send(image_msg(frame, 'rgb8', colour_node.header('colour')),
                               ('score', 'detection'))
    assert answers['score'].point.x == pytest.approx(expected.prediction.score, rel=1e-4,
                                                     abs=1e-5)
    record = msg_to_record(answers['detection'])
    assert record.model_id == offline.model_id
    top = record.regions[0]
    assert (top.y, top.x) == tuple(64 * c for c in NOVEL_CELL), record.regions
    after = colour_node.latest_status(time.monotonic())
    assert int(after['rejected']) - int(before['rejected']) == 1
    assert 'needs colour frames' in colour_node.process.log()
