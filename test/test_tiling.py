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

"""Full frames at native resolution: tile grid, frame calibration, strips, regions, size limits.

The model is a real PatchCore (edge profile, 64-px input) fitted on generated (SYNTHETIC)
64x64 Mastcam-like typical tiles; frames are mosaics of such tiles (data/synthetic_frames.py).
"""
from __future__ import annotations

import io
import json
import math
from pathlib import Path
import subprocess
import sys

from conftest import fit_environment
import numpy as np
from PIL import Image
import pytest

from vad4space_ros.data.synthetic_frames import Box, mars_frame, mars_tile
from vad4space_ros.deploy.calibration import Calibration
from vad4space_ros.deploy.frame_scoring import FrameScorer
from vad4space_ros.deploy.image_encoding import (
    compressed_dimensions, decode_compressed, FrameTooLargeError)
from vad4space_ros.deploy.regions import map_regions, tile_regions
from vad4space_ros.deploy.strips import score_tiled, StripError, StripScorer
from vad4space_ros.deploy.tiling import (
    calibrate_on_frames, derived_frame_calibration, derived_threshold_warning, frame_calibration,
    frame_calibration_for, FRAME_CALIBRATIONS, stored_tile_counts, tile_starts, TileOptions,
    TileScores, with_frame_calibration)

FALSE_ALARM_RATE = 0.05


@pytest.fixture(scope='module')
def typical_pool() -> list[np.ndarray]:
    """Return 80 generated typical tiles (RGB view) to build frames from."""
    rng = np.random.default_rng(11)
    return [mars_tile(rng) for _ in range(80)]


NOVEL_BOX = Box(x=832, y=576, width=64, height=64)


def frame_with_novel_tile(pool: list[np.ndarray]) -> np.ndarray:
    """Return a 1600x1200 frame of typical tiles with one clearly novel tile at NOVEL_BOX.

    The novel tile is a generated dump pile (seed 0: a large, plainly visible pile).
    """
    frame, _ = mars_frame(np.random.default_rng(21), 1200, 1600, None, pool)
    frame[NOVEL_BOX.y:NOVEL_BOX.y + 64, NOVEL_BOX.x:NOVEL_BOX.x + 64] = mars_tile(
        np.random.default_rng(0), 'dump-pile')
    return frame


@pytest.fixture(scope='module')
def mars_model(tmp_path_factory: pytest.TempPathFactory, backbone: str) -> Path:
    """Fit PatchCore (edge, 64 px) on 160 generated typical tiles, calibrate on 80 more."""
    from vad4space_ros.cli.fit import method_options
    from vad4space_ros.training.fitting import fit_detector, FitConfig
    rng = np.random.default_rng(5)
    train = [mars_tile(rng) for _ in range(160)]
    calibration = [mars_tile(rng) for _ in range(80)]
    config = FitConfig(method='patchcore', backbone=backbone, input_size=(64, 64),
                       false_alarm_rate=FALSE_ALARM_RATE, progress=False,
                       method_options=method_options('patchcore', 'edge', []))
    detector = fit_detector(train, config, calibration)
    assert detector.metadata['train_image_size'] == [64, 64]
    return detector.save(tmp_path_factory.mktemp('mars') / 'patchcore.safetensors')


@pytest.fixture(scope='module')
def scorer(mars_model: Path) -> FrameScorer:
    """Return a FrameScorer of the Mars model that tiles at the model's native size (64)."""
    from vad4space_ros.deploy.loading import load_model
    return FrameScorer(load_model(mars_model), tiling=TileOptions())


@pytest.mark.parametrize('length,tile,stride', [(1200, 64, 64), (1200, 64, 48), (50, 64, 64),
                                                (227, 227, 227), (5064, 227, 200)])
def test_tile_grid_covers_every_pixel_and_stays_inside(length: int, tile: int,
                                                       stride: int) -> None:
    starts = tile_starts(length, tile, stride)
    side = min(tile, length)
    covered = np.zeros(length, bool)
    for start in starts:
        covered[start:start + side] = True
    assert covered.all() and starts[-1] + side == length and starts[0] == 0
    assert (np.diff(starts) <= stride).all() and (np.diff(starts) > 0).all()


def test_tile_options_resolve_from_the_model_metadata() -> None:
    assert TileOptions().resolve({'train_image_size': [64, 64]}) == (64, 64)
    assert TileOptions(stride=32).resolve({'train_image_size': [227, 227]}) == (227, 32)
    assert TileOptions().resolve({}) is None           # older model: whole frame
    assert TileOptions(tile_size=0).resolve({'train_image_size': [64, 64]}) is None
    with pytest.raises(ValueError, match='exceeds'):
        TileOptions(tile_size=64, stride=65)


def test_frame_calibration_of_one_tile_is_the_tile_calibration() -> None:
    tile = Calibration(threshold=17.0, center=12.0, false_alarm_rate=0.05, sample_count=40)
    one = frame_calibration(tile, 1)
    assert one.threshold == pytest.approx(17.0) and one.center == pytest.approx(12.0)
    many = frame_calibration(tile, 475)
    assert many.threshold > one.threshold and many.false_alarm_rate == 0.05


def test_derived_frame_threshold_keeps_the_frame_false_alarm_rate_on_gumbel_tiles() -> None:
    """Tiles with Gumbel scores: the derived threshold flags ~5% of maxima over 400 tiles."""
    rng = np.random.default_rng(0)
    tile_scores = rng.gumbel(10.0, 2.0, 20000)
    tile = Calibration.from_normal_scores(tile_scores, FALSE_ALARM_RATE)
    frames = rng.gumbel(10.0, 2.0, (4000, 400)).max(axis=1)
    derived = frame_calibration(tile, 400)
    rate = float(np.mean(frames >= derived.threshold))
    assert abs(rate - FALSE_ALARM_RATE) < 0.015, rate
    assert np.mean(frames >= tile.threshold) > 0.99    # the tile threshold flags every frame
    empirical = calibrate_on_frames(frames[:2000], FALSE_ALARM_RATE)
    assert abs(np.mean(frames[2000:] >= empirical.threshold) - FALSE_ALARM_RATE) < 0.02


def test_max_fused_frame_threshold_keeps_the_rate_over_both_branches() -> None:
    """A max-fused frame is the max of 2N branch scores on their calibrated scale.

    Branch scores drawn from the Gumbel law through that scale (median 0, 95% point 0.5) put
    5% of simulated frames over the derived threshold; the fused score's own calibration is
    ignored (but for a single tile), and models without max fusion keep the plain derivation.
    """
    fused = Calibration(threshold=0.58, center=0.16, false_alarm_rate=0.05, sample_count=500)
    branch = Calibration(threshold=0.5, center=0.0, false_alarm_rate=0.05, sample_count=500)
    metadata = {'model_id': 'm+rx', 'spectral': {'config': {'fusion': 'max'},
                                                 'calibration': branch.to_dict()}}
    derived = derived_frame_calibration(fused, 475, metadata)
    assert derived == frame_calibration(branch, 950)
    beta = 0.5 / (math.log(math.log(2.0)) - math.log(-math.log(0.95)))
    frames = np.random.default_rng(5).gumbel(beta * math.log(math.log(2.0)), beta, (8000, 950))
    assert abs(np.mean(frames.max(axis=1) > derived.threshold) - 0.05) < 0.01
    mean_fused = {**metadata, 'spectral': {**metadata['spectral'], 'config': {'fusion': 'mean'}}}
    for plain in ({'model_id': 'm'}, mean_fused):
        assert derived_frame_calibration(fused, 475, plain) == frame_calibration(fused, 475)
    assert frame_calibration_for(fused, 64, 475, metadata) == derived
    assert derived_frame_calibration(fused, 1, metadata) == fused


def test_frame_calibrations_without_a_model_id_fall_back_and_are_dropped_on_refit() -> None:
    """Entries from before frame calibrations were keyed by model id match no model."""
    tile = Calibration(threshold=17.0, center=12.0, false_alarm_rate=0.05, sample_count=40)
    fitted = Calibration(threshold=30.0, center=20.0, false_alarm_rate=0.05, sample_count=60)
    legacy = {'tile_size': 64, 'tile_count': 475, 'frames': 60, 'calibration': fitted.to_dict()}
    metadata = {'model_id': 'patchcore-x', FRAME_CALIBRATIONS: [legacy]}
    assert frame_calibration_for(tile, 64, 475, metadata) == frame_calibration(tile, 475)
    assert stored_tile_counts(metadata, 64) == []
    assert '64-px tiles' in derived_threshold_warning(metadata, 64)
    refit = with_frame_calibration(metadata, 64, 475, fitted, 60)
    assert [entry['model_id'] for entry in refit[FRAME_CALIBRATIONS]] == ['patchcore-x']
    assert frame_calibration_for(tile, 64, 475, refit) == fitted
    assert derived_threshold_warning(refit, 64) is None
    assert derived_threshold_warning(refit, 128) is not None


def test_tile_regions_group_connected_tiles_and_rank_them() -> None:
    grid = np.zeros((4, 6), np.float32)
    grid[0, 0] = grid[1, 1] = 3.0          # diagonal neighbours: one region
    grid[3, 5] = 5.0                       # a second, stronger one at the snapped corner
    grid[3, 2] = 1.1                       # below threshold (raw 1.1 -> calibrated 0.275)
    scores = TileScores(rows=np.array([0, 64, 128, 136]), cols=np.arange(6) * 64,
                        tile_height=64, tile_width=64, grid=grid,
                        best_embedding=np.zeros(1, np.float32))
    calibration = Calibration(threshold=2.0, center=0.0, false_alarm_rate=0.05,
                              sample_count=10)
    regions = tile_regions(scores, calibration, 0.5, max_regions=5)
    boxes = [(r.x, r.y, r.width, r.height) for r in regions]
    assert boxes == [(320, 136, 64, 64), (0, 0, 128, 128)]
    assert regions[0].score == pytest.approx(1.25) and regions[1].score == pytest.approx(0.75)
    assert len(tile_regions(scores, calibration, 0.5, max_regions=1)) == 1


def test_map_regions_box_connected_pixels() -> None:
    anomaly_map = np.zeros((100, 120), np.float32)
    anomaly_map[10:20, 30:45] = 4.0
    anomaly_map[70:72, 5:7] = 2.5
    calibration = Calibration(threshold=2.0, center=0.0, false_alarm_rate=0.05,
                              sample_count=10)
    regions = map_regions(anomaly_map, calibration, 0.5, max_regions=5)
    assert [(r.x, r.y, r.width, r.height) for r in regions] == [(30, 10, 15, 10), (5, 70, 2, 2)]


def test_oversized_png_is_refused_from_its_header_before_decoding() -> None:
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((10000, 10000), np.uint8)).save(buffer, format='PNG')
    data = buffer.getvalue()
    assert len(data) < 200_000 and compressed_dimensions(data) == (10000, 10000)
    import tracemalloc
    tracemalloc.start()
    with pytest.raises(FrameTooLargeError, match='10000x10000'):
        decode_compressed('png', data, max_pixels=25_000_000)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 20_000_000      # decoding would need 100 MB
    pixels, _ = decode_compressed('png', data, max_pixels=0)
    assert pixels.shape == (10000, 10000)


def test_a_novel_tile_off_the_grid_is_found_by_overlapping_tiles(
        scorer: FrameScorer, typical_pool: list[np.ndarray]) -> None:
    frame, box = mars_frame(np.random.default_rng(4), 448, 448, 'dump-pile', typical_pool,
                            anywhere=True)
    assert box.x % 64 and box.y % 64          # pasted off the 64-px grid, inside the frame
    assert box.x + box.width <= 448 and box.y + box.height <= 448
    _, tiles = score_tiled(scorer.model, frame, 64, 32, batch_size=16)
    row, col = np.unravel_index(np.argmax(tiles.grid), tiles.grid.shape)
    assert box.overlaps(int(tiles.cols[col]), int(tiles.rows[row]), 64, 64)


def test_strips_in_order_give_the_map_and_scores_of_the_whole_image(
        scorer: FrameScorer, typical_pool: list[np.ndarray]) -> None:
    frame, _ = mars_frame(np.random.default_rng(3), 300, 250, 'dump-pile', typical_pool)
    whole_map, whole = score_tiled(scorer.model, frame, 64, 48, batch_size=7)
    strips = StripScorer(scorer.model, 250, 64, 48, batch_size=5)
    stitched = np.full(whole_map.shape, np.nan, np.float32)
    blocks = []
    offset = 0
    for rows in (37, 1, 100, 64, 98):      # uneven strips; the last tile row straddles two
        blocks += strips.add(frame[offset:offset + rows], offset)
        offset += rows
    last, scores = strips.finish()
    for first, block in blocks + last:
        assert np.isnan(stitched[first:first + len(block)]).all()   # each row handed out once
        stitched[first:first + len(block)] = block
    np.testing.assert_allclose(stitched, whole_map, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(scores.grid, whole.grid, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(scores.rows, whole.rows)
    assert list(whole.rows) == [0, 48, 96, 144, 192, 236]
    with pytest.raises(StripError, match='expected 0'):
        StripScorer(scorer.model, 250, 64, 48).add(frame[:10], 10)


def test_novel_tile_in_a_1600x1200_frame_yields_a_region_over_it(
        scorer: FrameScorer, typical_pool: list[np.ndarray]) -> None:
    frame, box = frame_with_novel_tile(typical_pool), NOVEL_BOX
    scored = scorer.score(frame, 'rgb8')
    assert scored.prediction.anomaly_map.shape == (1200, 1600)
    assert scored.prediction.is_anomaly and scored.regions
    best = scored.regions[0]
    assert box.overlaps(best.x, best.y, best.width, best.height), (box, scored.regions)
    assert scored.regions == sorted(scored.regions, key=lambda r: -r.score)


def test_normal_frames_stay_below_the_frame_threshold_at_the_configured_rate(
        scorer: FrameScorer, typical_pool: list[np.ndarray]) -> None:
    """60 normal 320x320 frames (25 tiles each) on the derived frame-level calibration.

    At a true rate of 5%, 8 or more alarms out of 60 happen with probability 0.8%; the per-tile
    threshold, by contrast, flags most frames.
    """
    rng = np.random.default_rng(8)
    alarms = tile_level_alarms = 0
    for _ in range(60):
        frame, _ = mars_frame(rng, 320, 320, None, typical_pool)
        scored = scorer.score(frame, 'rgb8')
        alarms += scored.prediction.is_anomaly
        tile_level_alarms += scored.prediction.raw_score >= scorer.model.calibration.threshold
        assert bool(scored.regions) == scored.prediction.is_anomaly
    assert alarms <= 7, alarms
    assert tile_level_alarms >= 30, tile_level_alarms


def test_frame_threshold_fitted_on_normal_frames_is_stored_and_used(
        mars_model: Path, scorer: FrameScorer, typical_pool: list[np.ndarray],
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """``calibrate-frames`` stores the empirical frame threshold in an ONNX copy of the model.

    Frames cut into that many tiles are then scored on it; other frame sizes keep the derived
    calibration. The safetensors file takes the same metadata without changing its scores.
    """
    from vad4space_ros.cli import main
    from vad4space_ros.deploy.loading import load_model
    from vad4space_ros.models.export import export_onnx, ExportOptions, write_with_metadata
    from vad4space_ros.models.torch_detector import load_artifact
    rng = np.random.default_rng(21)
    folder = tmp_path / 'normal'
    folder.mkdir()
    frames = [mars_frame(rng, 320, 320, None, typical_pool)[0] for _ in range(20)]
    for index, frame in enumerate(frames):
        Image.fromarray(frame).save(folder / f'{index:02d}.png')
    onboard = export_onnx(load_artifact(mars_model), tmp_path / 'mars.onnx', ExportOptions())
    output = tmp_path / 'mars-frames.onnx'
    assert main(['calibrate-frames', '--model', str(onboard), '--output', str(output),
                 '--tile', '64', str(folder)]) == 0
    calibrated = load_model(output)
    entry, = calibrated.metadata['frame_calibrations']
    assert (entry['tile_size'], entry['tile_count'], entry['frames']) == (64, 25, 20)
    onnx_scorer = FrameScorer(load_model(onboard), tiling=TileOptions())
    raw = [onnx_scorer.score(frame, 'rgb8').prediction.raw_score for frame in frames]
    stored = entry['calibration']
    assert stored['threshold'] == pytest.approx(np.quantile(raw, 1 - FALSE_ALARM_RATE))
    fitted_scorer = FrameScorer(calibrated, tiling=TileOptions())
    assert 'fitted on normal frames for [25] tiles' in fitted_scorer.describe()
    assert 'frame threshold derived' in onnx_scorer.describe()
    assert fitted_scorer.frame_threshold_warning() is None
    assert 'calibrate-frames' in onnx_scorer.frame_threshold_warning()
    whole = FrameScorer(load_model(onboard), tiling=TileOptions(tile_size=0))
    assert whole.frame_threshold_warning() is None
    frame = frames[0]
    assert fitted_scorer.score(frame, 'rgb8').calibration == Calibration(**stored)
    assert onnx_scorer.score(frame, 'rgb8').calibration != Calibration(**stored)
    taller = mars_frame(rng, 384, 320, None, typical_pool)[0]  # 30 tiles: derived
    assert (fitted_scorer.score(taller, 'rgb8').calibration
            == onnx_scorer.score(taller, 'rgb8').calibration)
    Image.fromarray(taller).save(folder / 'taller.png')
    assert main(['calibrate-frames', '--model', str(onboard), '--output',
                 str(tmp_path / 'mixed.onnx'), str(folder)]) == 2
    assert '2 sizes' in capsys.readouterr().err and not (tmp_path / 'mixed.onnx').exists()
    copy = write_with_metadata(mars_model, tmp_path / 'copy.safetensors', with_frame_calibration(
        load_model(mars_model).metadata, 64, 25, Calibration(**stored), 20))
    assert load_model(copy).metadata['frame_calibrations'] == [entry]
    copy_scored = FrameScorer(load_model(copy), tiling=TileOptions()).score(frame, 'rgb8')
    assert copy_scored.calibration == Calibration(**stored)
    assert copy_scored.prediction.raw_score == scorer.score(frame, 'rgb8').prediction.raw_score


def test_cli_scores_a_big_image_in_tiles_as_json(mars_model: Path, tmp_path: Path,
                                                 typical_pool: list[np.ndarray]) -> None:
    """A 640x480 crop keeps the subprocess short; the 1600x1200 frame is scored above."""
    frame = frame_with_novel_tile(typical_pool)[384:864, 512:1152]
    box = Box(NOVEL_BOX.x - 512, NOVEL_BOX.y - 384, 64, 64)
    big = tmp_path / 'big.png'
    Image.fromarray(frame).save(big)
    huge = tmp_path / 'huge.png'
    Image.fromarray(np.zeros((6000, 6000), np.uint8)).save(huge)
    command = [str(Path(sys.executable).parent / 'vad4space'), 'score', '--model',
               str(mars_model), '--tile', '64', '--json', str(big), str(huge)]
    result = subprocess.run(command, env=fit_environment(), capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 1, result.stderr[-3000:]   # huge.png is refused
    scored, refused = (json.loads(line) for line in result.stdout.splitlines())
    assert scored['tile_size'] == 64 and (scored['width'], scored['height']) == (640, 480)
    assert scored['is_anomaly'] and scored['regions']
    top = scored['regions'][0]
    assert set(top) == {'x', 'y', 'width', 'height', 'score'}
    assert box.overlaps(top['x'], top['y'], top['width'], top['height'])
    assert [r['score'] for r in scored['regions']] == sorted(
        (r['score'] for r in scored['regions']), reverse=True)
    assert 'max_frame_pixels' in refused['error'] and refused['image'] == str(huge)
    assert 'warning: no frame threshold fitted for 64-px tiles' in result.stderr


def test_detector_node_publishes_the_region_of_a_novel_tile_over_dds(
        mars_model: Path, typical_pool: list[np.ndarray]) -> None:
    """A 1600x1200 rgb8 frame (5.8 MB) crosses DDS; regions come back in every output."""
    from test_detector_node import detector_session, image_msg, NODE
    from visualization_msgs.msg import ImageMarker

    from vad4space_ros.deploy.regions import REGION_COLOUR
    from vad4space_ros.deploy.image_encoding import image_to_array
    from vad4space_ros.nodes.ros_conversions import image_msg_to_raw, msg_to_record

    frame, box = frame_with_novel_tile(typical_pool), NOVEL_BOX
    handshake = (np.full((64, 64), 100, np.uint8), 'mono8')
    with detector_session(mars_model, 'rover.yaml', handshake, transport='raw') as session:
        markers = session.ros.collect(ImageMarker, f'{NODE}/regions')
        header = session.header('mastcam-frame')
        answers = session.send(image_msg(frame, 'rgb8', header), ('detection', 'heatmap'),
                               timeout=600.0)
        record = msg_to_record(answers['detection'])
        assert record.is_anomaly and record.regions
        top = record.regions[0]
        assert box.overlaps(top.x, top.y, top.width, top.height), (box, record.regions)
        heatmap = image_to_array(image_msg_to_raw(answers['heatmap']))
        assert heatmap.shape == (1200, 1600, 3)
        outline = heatmap[top.y, top.x:top.x + top.width]
        assert (outline == REGION_COLOUR).all(axis=1).mean() > 0.8   # the box is drawn
        session.ros.spin_until(
            lambda: any(m.header.frame_id == header.frame_id for m in markers.messages),
            30.0, session.process, what='region markers')
        marker = next(m for m in markers.messages if m.header.frame_id == header.frame_id)
        assert marker.id == 0 and marker.type == ImageMarker.POLYGON
        corners = {(p.x, p.y) for p in marker.points}
        assert (top.x, top.y) in corners and (top.x + top.width, top.y + top.height) in corners
