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

"""Resumable benchmark cells, per-class AUROC, fit time budgets and the subtlety sweep.

All on tiny SYNTHETIC generated sets at 64 px; the sweep is marked slow.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from vad4space_ros.catalog import ONNX_ENV
from vad4space_ros.data import load_dataset
from vad4space_ros.data.protocols import make_setting
from vad4space_ros.evaluation.cells import cell_path, load_cells, run_cell, run_cells
from vad4space_ros.evaluation.report import cell_tables_markdown
from vad4space_ros.evaluation.runner import class_metrics, FitOptions
from vad4space_ros.evaluation.sweep import breakdown_levels, run_sweep
from vad4space_ros.training.fitting import fit_detector, FitConfig

ONNX_FILE = (Path(__file__).resolve().parents[2] / 'shared' / 'data' / 'mobilenetv2_onnx_int8'
             / 'mobilenetv2-12-int8.onnx')


def _fit_options() -> FitOptions:
    if os.environ.get(ONNX_ENV) or ONNX_FILE.is_file():
        os.environ.setdefault(ONNX_ENV, str(ONNX_FILE))
        return FitOptions(input_size=64, max_epochs=1)
    return FitOptions(backbone='efficientnet_lite0', input_size=64, max_epochs=1)


def test_class_metrics_rank_each_class_against_the_normals(lunar_chips: Path):
    test = make_setting(load_dataset('lroc', lunar_chips), 1, seed=0).test
    # scores: ejecta far above normals, old craters mixed into them
    scores = np.array([2.0 if s.category == 'ejecta' else
                       (0.5 if s.category == 'oldcrater' else float(i % 2))
                       for i, s in enumerate(test)])
    result = class_metrics(test, scores)
    assert set(result['class_auroc']) == {'ejecta', 'oldcrater'}
    assert result['class_auroc']['ejecta'] == 1.0
    normals = scores[[not s.is_anomaly for s in test]]
    assert result['class_auroc']['oldcrater'] == pytest.approx(np.mean(normals < 0.5))
    assert result['class_counts'] == {'ejecta': 4, 'oldcrater': 4}


def test_time_budget_stops_a_trainable_fit_and_is_recorded(lunar_chips: Path, tmp_path: Path):
    """``vad4space fit --time-budget`` stops STFPM within its first epoch and says so."""
    from vad4space_ros.cli import main
    from vad4space_ros.deploy.loading import load_model
    options = _fit_options()
    train = [s.path for s in load_dataset('lroc', lunar_chips).select('train', 0)]
    assert len({Path(p).parent for p in train}) == 1
    model = tmp_path / 'stfpm.safetensors'
    assert main(['fit', '--train-dir', str(Path(train[0]).parent), '--method', 'stfpm',
                 '--backbone', options.backbone, '--input-size', '64', '--epochs', '50',
                 '--batch-size', '4', '--time-budget', '0.001', '--output', str(model)]) == 0
    record = load_model(model).metadata['fit_time']
    assert record['stopped_early'] and record['time_budget_s'] == 1e-3
    assert record['epochs_completed'] < 1
    with pytest.raises(ValueError, match='positive'):
        fit_detector(train, FitConfig('stfpm', backbone=options.backbone, input_size=(64, 64),
                                      progress=False, time_budget=-1))


def test_cells_write_one_file_each_resume_skips_them_and_tables_assemble(
        lunar_chips: Path, tmp_path: Path):
    options = _fit_options()
    record = run_cell('lroc', lunar_chips, 'padim', 1, tmp_path, budget=600, fit=options)
    path = cell_path(tmp_path, 'lroc', 'padim', 1)
    assert json.loads(path.read_text()) == record
    assert record['status'] == 'done' and record['synthetic'] and 0.5 < record['img_auroc'] <= 1
    assert set(record['class_auroc']) == {'ejecta', 'oldcrater'}
    assert 'curves' not in record and record['time_budget_s'] == 600
    stamp = path.stat().st_mtime_ns
    # resume: the finished cell is read back, not run again (no process is started for it)
    again = run_cells('lroc', lunar_chips, tmp_path, ['padim'], [1], 600, options, resume=True)
    assert again == [record] and path.stat().st_mtime_ns == stamp
    timeout = dict(record, setting=2, status='timeout')
    for key in ('img_auroc', 'class_auroc', 'class_counts', 'fit_seconds'):
        timeout.pop(key)
    cell_path(tmp_path, 'lroc', 'padim', 2).write_text(json.dumps(timeout))
    larger = dict(record, method='simplenet', fit=dict(record['fit'], input_size=128))
    cell_path(tmp_path, 'lroc', 'simplenet', 1).write_text(json.dumps(larger))
    tables = cell_tables_markdown(load_cells(tmp_path))
    assert 'timeout' in tables and '> 600 s budget' in tables
    assert 'input 64 px, simplenet 128 px,' in tables
    assert f'{record["img_auroc"]:.2f}' in tables and 'ejecta' in tables


def test_setting_2_reuses_the_setting_1_fit_from_the_model_cache(
        lunar_chips: Path, tmp_path: Path):
    options, cache = _fit_options(), tmp_path / 'models'
    first = run_cell('lroc', lunar_chips, 'padim', 1, tmp_path, 600, options, model_cache=cache)
    assert 'fit_reused' not in first and len(list(cache.glob('*.safetensors'))) == 1
    second = run_cell('lroc', lunar_chips, 'padim', 2, tmp_path, 600, options, model_cache=cache)
    assert second['fit_reused'] == next(cache.glob('*.safetensors')).name
    assert second['fit_seconds'] == first['fit_seconds'] and second['n'] < first['n']
    third = run_cell('lroc', lunar_chips, 'padim', 3, tmp_path, 600, options, model_cache=cache)
    assert 'fit_reused' not in third and len(list(cache.glob('*.safetensors'))) == 2


def test_a_failing_cell_is_recorded_not_raised(tmp_path: Path):
    record = run_cell('lroc', tmp_path / 'missing', 'padim', 1, tmp_path, budget=60,
                      fit=_fit_options())
    assert record['status'] == 'failed' and 'does not exist' in record['error']


@pytest.mark.slow
def test_subtlety_sweep_writes_json_and_png(tmp_path: Path):
    result = run_sweep('lroc', tmp_path, ['padim'], levels=[0.0, 1.0], size='tiny',
                       fit=_fit_options(), progress=False)
    assert (tmp_path / 'sweep_lroc.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    assert json.loads((tmp_path / 'sweep_lroc.json').read_text())['rows'] == result['rows']
    by_level = {row['subtlety']: row['class_auroc'] for row in result['rows']}
    assert by_level[0.0]['oldcrater'] > by_level[1.0]['oldcrater']  # it vanishes at 1.0
    assert set(breakdown_levels(result)['padim']) == {'ejecta', 'oldcrater'}


def _green_pixels(path: Path) -> int:
    from PIL import Image
    with Image.open(path) as image:
        assert image.format == 'PNG'
        pixels = np.asarray(image.convert('RGB')).astype(int)
    return int(((pixels[..., 1] > 100) & (pixels[..., 0] < 60) & (pixels[..., 2] < 60)).sum())


def test_tail_gallery_marks_novel_tiles_that_beat_a_normal_frames_best_tile(tmp_path: Path):
    from vad4space_ros.evaluation.plots import tail_gallery
    rng = np.random.default_rng(0)
    grey = rng.integers(90, 140, (20, 64, 64, 3), dtype=np.uint8)   # no green anywhere
    novel = {name: (grey[:10], np.linspace(1.0, 2.0, 10)) for name in ('a', 'b')}
    scores = np.linspace(0.0, 1.0, 20)
    above = tail_gallery(grey, scores, novel, 0.5, tmp_path / 'above.png', 'all beat 0.5')
    below = tail_gallery(grey, scores, novel, 3.0, tmp_path / 'below.png', 'none beat 3')
    assert _green_pixels(above) > 100         # green scores over the novel tiles
    assert _green_pixels(below) == 0          # red ones only
