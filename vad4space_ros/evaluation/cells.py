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

"""The resumable full-size benchmark: one (dataset, method, setting) cell at a time.

A full benchmark (2 datasets x 7 methods x 3 settings = 42 cells at the real split sizes) does
not fit into one run on a 2-core CPU, so each cell runs on its own, in its own process, within
a wall-time budget, and writes one small JSON file ``<out>/cells/<dataset>-<method>-s<N>.json``
(atomically). ``--resume`` skips cells whose file exists; the tables are assembled from whatever
cell files are present (:func:`assemble_tables`), so the benchmark grows over several runs.

Each cell's ``status``:

* ``done``: fitted and scored within the budget;
* ``stopped``: a trainable method hit the budget and stopped early (FitClock); it was scored
  with the weights reached, and the file records how many epochs it completed;
* ``over_budget``: finished and scored, but took longer than the budget (memory-bank methods
  are never cut short mid-pass);
* ``timeout``: the process was still running at ``budget x 1.5 + 120 s`` and was killed;
  nothing was scored;
* ``failed``: the cell raised; the error is recorded.

Settings 1 and 2 train on the same images (:mod:`vad4space_ros.data.protocols`). With a model
cache (``--model-cache DIR``) a cell saves its fitted model there, keyed by the training list
and fit options, and a later cell with the same key loads it instead of fitting again; its
record says ``fit_reused`` and keeps the original fit's wall time as ``fit_seconds``.

Cells hold no models and no per-image scores: config, counts, fit time, status, metrics
(overall and per anomaly class) and the machine's 1-minute load average at the cell's start and
end (fit times on a shared 2-core machine depend on it).
"""
from __future__ import annotations

from dataclasses import asdict
import hashlib
import json
import logging
import os
from pathlib import Path
import subprocess
import sys
import time
from typing import Any, Sequence

from vad4space_ros.atomic_files import atomic_write_text
from vad4space_ros.catalog import METHOD_NAMES
from vad4space_ros.data.datasets import load_dataset
from vad4space_ros.data.protocols import make_setting, SETTINGS
from vad4space_ros.data.samples import load_rgb
from vad4space_ros.deploy.calibration import CALIBRATED_THRESHOLD
from vad4space_ros.evaluation.metrics import image_metrics
from vad4space_ros.evaluation.runner import class_metrics, FitOptions, subsample_training

logger = logging.getLogger(__name__)

TIMEOUT_FACTOR = 1.5  # the cell process is killed after budget x this + TIMEOUT_GRACE_S
TIMEOUT_GRACE_S = 120.0  # process start (torch, anomalib imports) on a loaded machine
FINISHED = ('done', 'stopped', 'over_budget', 'timeout')
CELLS_FOLDER = 'cells'
CLI_ENTRY = 'from vad4space_ros.cli import main; raise SystemExit(main())'


def cell_name(dataset: str, method: str, setting: int) -> str:
    """Return the file stem of a cell."""
    return f'{dataset}-{method}-s{setting}'


def cell_path(out_dir: str | Path, dataset: str, method: str, setting: int) -> Path:
    """Return the JSON file of a cell."""
    return Path(out_dir) / CELLS_FOLDER / f'{cell_name(dataset, method, setting)}.json'


def cached_model_path(cache: Path, dataset: str, method: str, train: Sequence[Path],
                      fit: FitOptions, seed: int) -> Path:
    """Return where the model fitted on ``train`` with ``fit`` is cached."""
    key = json.dumps({'train': [str(path) for path in train], 'fit': asdict(fit),
                      'seed': seed}, sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return cache / f'{dataset}-{method}-{digest}.safetensors'


def run_cell(dataset: str, root: str | Path, method: str, setting: int, out_dir: str | Path,
             budget: float, fit: FitOptions | None = None, seed: int = 0,
             max_train: int | None = None, model_cache: Path | None = None) -> dict[str, Any]:
    """Fit (or load from ``model_cache``) and score one cell; write and return its record."""
    from vad4space_ros.models.torch_detector import load_artifact
    from vad4space_ros.training.fitting import FitConfig, fit_detector

    fit = fit or FitOptions()
    root = Path(root)
    record: dict[str, Any] = {
        'dataset': dataset, 'method': method, 'setting': setting, 'seed': seed,
        'root': str(root), 'synthetic': (root / 'SYNTHETIC.md').is_file(),
        'time_budget_s': budget, 'max_train': max_train, 'fit': asdict(fit),
        'load_average_at_start': round(os.getloadavg()[0], 2)}
    started = time.perf_counter()
    try:
        data = load_dataset(dataset, root)
        if max_train is not None:
            data = subsample_training(data, max_train, seed)
        split = make_setting(data, setting, seed)
        config = FitConfig(method=method, backbone=fit.backbone, weights=fit.weights,
                           input_size=(fit.input_size, fit.input_size),
                           epochs=fit.epochs_for(method), batch_size=fit.batch_size,
                           false_alarm_rate=fit.false_alarm_rate, seed=seed, progress=False,
                           method_options=fit.method_options(method), time_budget=budget)
        train = [s.path for s in split.train]
        cached = (cached_model_path(model_cache, dataset, method, train, fit, seed)
                  if model_cache else None)
        if cached and cached.is_file():
            logger.info('cell %s: reusing the model fitted on the same %d training images (%s)',
                        cell_name(dataset, method, setting), len(train), cached.name)
            detector = load_artifact(cached)
            fit_seconds = detector.metadata['cell_fit_seconds']
            record['fit_reused'] = cached.name
        else:
            logger.info('cell %s: fitting on %d training images',
                        cell_name(dataset, method, setting), len(train))
            detector = fit_detector(train, config, [s.path for s in split.calibration])
            fit_seconds = time.perf_counter() - started
            if cached:
                cached.parent.mkdir(parents=True, exist_ok=True)
                detector.save(cached, {**detector.metadata, 'cell_fit_seconds': fit_seconds})
        clock = detector.metadata.get('fit_time', {})
        raw = detector.raw_scores([load_rgb(s) for s in split.test], fit.batch_size)
        calibrated = detector.calibration.normalise(raw)
        metrics = image_metrics([s.label for s in split.test], calibrated, CALIBRATED_THRESHOLD)
        metrics.pop('curves', None)
        seconds = time.perf_counter() - started
        status = ('stopped' if clock.get('stopped_early') else
                  'over_budget' if seconds > budget else 'done')
        record.update(status=status, train_count=len(split.train),
                      train_anomalies=sum(s.is_anomaly for s in split.train),
                      calibration_count=len(split.calibration), epochs=config.epochs,
                      epochs_completed=clock.get('epochs_completed'),
                      fit_seconds=round(fit_seconds, 1), seconds=round(seconds, 1),
                      load_average_at_end=round(os.getloadavg()[0], 2),
                      **metrics, **class_metrics(split.test, calibrated))
    except Exception as error:  # noqa: B902 - a failed cell is recorded, the run goes on
        logger.exception('cell %s failed', cell_name(dataset, method, setting))
        record.update(status='failed', error=f'{type(error).__name__}: {error}',
                      seconds=round(time.perf_counter() - started, 1))
    atomic_write_text(cell_path(out_dir, dataset, method, setting),
                      json.dumps(record, indent=1) + '\n')
    return record


def _cell_command(dataset: str, root: Path, method: str, setting: int, out_dir: Path,
                  budget: float, fit: FitOptions, seed: int, max_train: int | None,
                  model_cache: Path | None) -> list[str]:
    command = [sys.executable, '-c', CLI_ENTRY, 'benchmark', '--dataset', dataset,
               '--root', str(root), '--out', str(out_dir), '--methods', method,
               '--settings', str(setting), '--seed', str(seed), '--one-cell',
               '--time-budget', str(budget), '--input-size', str(fit.input_size),
               '--batch-size', str(fit.batch_size), '--profile', fit.profile,
               '--backbone', fit.backbone, '--weights', fit.weights]
    if fit.epochs:
        command += ['--epochs', str(fit.epochs)]
    if fit.max_epochs:
        command += ['--max-epochs', str(fit.max_epochs)]
    if max_train is not None:
        command += ['--max-train', str(max_train)]
    if model_cache is not None:
        command += ['--model-cache', str(model_cache)]
    return command


def run_cells(dataset: str, root: str | Path, out_dir: str | Path,
              methods: Sequence[str] = METHOD_NAMES, settings: Sequence[int] = SETTINGS,
              budget: float = 1200.0, fit: FitOptions | None = None, seed: int = 0,
              resume: bool = True, max_train: int | None = None,
              model_cache: Path | None = None) -> list[dict[str, Any]]:
    """Run every missing cell in its own process (killed at the budget); return the records."""
    fit = fit or FitOptions()
    root, out_dir = Path(root), Path(out_dir)
    records = []
    cells = [(method, setting) for method in methods for setting in settings]
    for number, (method, setting) in enumerate(cells, 1):
        path = cell_path(out_dir, dataset, method, setting)
        name = cell_name(dataset, method, setting)
        if resume and path.is_file():
            record = json.loads(path.read_text())
            if record.get('status') in FINISHED:
                logger.info('[%d/%d] %s: already %s, skipped', number, len(cells), name,
                            record['status'])
                records.append(record)
                continue
        logger.info('[%d/%d] %s: running (budget %.0f s)', number, len(cells), name, budget)
        command = _cell_command(dataset, root, method, setting, out_dir, budget, fit, seed,
                                max_train, model_cache)
        started = time.perf_counter()
        try:
            subprocess.run(command, check=False,
                           timeout=budget * TIMEOUT_FACTOR + TIMEOUT_GRACE_S)
        except subprocess.TimeoutExpired:
            atomic_write_text(path, json.dumps({
                'dataset': dataset, 'method': method, 'setting': setting, 'seed': seed,
                'root': str(root), 'synthetic': (root / 'SYNTHETIC.md').is_file(),
                'time_budget_s': budget, 'status': 'timeout', 'max_train': max_train,
                'seconds': round(time.perf_counter() - started, 1), 'fit': asdict(fit)},
                indent=1) + '\n')
        if not path.is_file():
            raise RuntimeError(f'cell {name} wrote no result file ({" ".join(command)})')
        record = json.loads(path.read_text())
        logger.info('[%d/%d] %s: %s in %.0f s', number, len(cells), name, record['status'],
                    record.get('seconds', 0.0))
        records.append(record)
    return records


def load_cells(out_dir: str | Path) -> list[dict[str, Any]]:
    """Return every cell record under ``out_dir/cells``, in dataset/method/setting order."""
    records = [json.loads(path.read_text())
               for path in sorted((Path(out_dir) / CELLS_FOLDER).glob('*.json'))]
    order = {name: index for index, name in enumerate(METHOD_NAMES)}
    return sorted(records, key=lambda r: (r['dataset'], order.get(r['method'], 99),
                                          r['setting']))
