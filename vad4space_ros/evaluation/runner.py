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

"""Fit every method once per distinct training set, score each setting's test set, report.

Settings 1 and 2 share their training set (the dataset's normal training images), setting 3
trains on the contaminated set, so a run fits each method at most twice. Each model is fitted
with :func:`~vad4space_ros.training.fitting.fit_detector` and calibrated on the split's normal
validation images (``Split.calibration``), then saved to ``out_dir/models/`` for reuse (latency
benchmarks, ROS replay). Test images are scored in batches (``raw_scores``) and evaluated with
:func:`~vad4space_ros.evaluation.metrics.image_metrics` on calibrated scores at threshold 0.5.

With ``FitOptions.robust`` set (``vad4space benchmark --robust``), the training sets of settings
2 and 3 are fitted a second time with contamination-robust fitting
(:mod:`vad4space_ros.training.robust`); those fits score the same test sets and land in
``robust_rows`` (one per method and setting, with the screening's dropped counts) and in the
robust table, so settings 2 and 3 are reported both without and with the mode. The plain rows,
tables and files are unchanged.

``max_train`` (off by default) is a documented deviation for slow machines: it keeps a seeded
random subset of at most that many *normal* training images before the settings are built
(contamination counts of setting 3 then follow the smaller set); test and calibration images
are untouched. Results record it in ``config``.

Outputs in ``out_dir``: ``results.json`` (config, rows with curves, resources, notes),
``results.csv`` (one row per method and setting), ``scores.csv`` (every test image's raw and
calibrated score), ``tables.md``, with ``--robust`` also ``robust.csv`` (the robust rows), and
the PNGs of :mod:`vad4space_ros.evaluation.plots`.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
import logging
from pathlib import Path
import time
from typing import Any, Sequence, TYPE_CHECKING

import numpy as np

from vad4space_ros.catalog import METHOD_NAMES
from vad4space_ros.data.datasets import load_dataset
from vad4space_ros.data.protocols import make_setting, SETTINGS, Split
from vad4space_ros.data.samples import Dataset, load_rgb, Sample
from vad4space_ros.deploy.calibration import CALIBRATED_THRESHOLD
from vad4space_ros.evaluation import report
from vad4space_ros.evaluation.metrics import image_metrics
from vad4space_ros.evaluation.resources import measure

if TYPE_CHECKING:
    from vad4space_ros.training.robust import RobustConfig

ROBUST_SETTINGS = (2, 3)


@dataclass
class FitOptions:
    """How each method is fitted (see :class:`~vad4space_ros.training.fitting.FitConfig`)."""

    backbone: str = 'mobilenet_v2'
    weights: str = 'imagenet'
    input_size: int = 128
    epochs: int | None = None
    max_epochs: int | None = None
    batch_size: int = 16
    false_alarm_rate: float = 0.05
    robust: RobustConfig | None = None
    profile: str = 'default'
    time_budget: float | None = None  # seconds per fit; trainable methods stop early

    def method_options(self, method: str) -> dict[str, Any]:
        """Return the method options of the profile (``edge``: methods.EDGE_OPTIONS)."""
        from vad4space_ros.models.methods import EDGE_OPTIONS

        if self.profile not in ('default', 'edge'):
            raise ValueError(f'unknown profile {self.profile!r}: expected default or edge')
        return dict(EDGE_OPTIONS.get(method, {})) if self.profile == 'edge' else {}

    def epochs_for(self, method: str) -> int:
        """Return the epochs of ``method``: explicit, else its default capped by max_epochs."""
        from vad4space_ros.models.methods import get_method

        if self.epochs:
            return self.epochs
        default = get_method(method).default_epochs
        return min(default, self.max_epochs) if self.max_epochs else default


@dataclass
class ResourceOptions:
    """How latency and memory are measured (see :mod:`.resources`); images=0 skips it."""

    images: int = 20
    warmup: int = 3
    threads: int = 1


@dataclass
class BenchmarkResult:
    """Everything a run produced."""

    dataset: str
    root: str
    synthetic: bool
    seed: int
    rows: list[dict[str, Any]]
    resources: dict[str, dict[str, float]]
    notes: dict[int, list[str]]
    config: dict[str, Any]
    out_dir: Path
    files: dict[str, str] = field(default_factory=dict)
    robust_rows: list[dict[str, Any]] = field(default_factory=list)


def _train_key(split: Split) -> tuple[str, ...]:
    return tuple(sorted(str(sample.path) for sample in split.train))


class _ImageCache:
    """Test images loaded once per run."""

    def __init__(self) -> None:
        self.images: dict[Path, np.ndarray] = {}

    def get(self, samples: Sequence[Sample]) -> list[np.ndarray]:
        for sample in samples:
            if sample.path not in self.images:
                self.images[sample.path] = load_rgb(sample)
        return [self.images[sample.path] for sample in samples]


def _is_synthetic(root: Path) -> bool:
    return (root / 'SYNTHETIC.md').is_file()


def run_benchmark(dataset: str, root: str | Path, out_dir: str | Path,
                  methods: Sequence[str] = METHOD_NAMES, settings: Sequence[int] = SETTINGS,
                  seed: int = 0, fit: FitOptions | None = None,
                  resources: ResourceOptions | None = None, progress: bool = True,
                  plots: bool = True, max_train: int | None = None) -> BenchmarkResult:
    """Run the benchmark of the module docstring; write and return the results."""
    from vad4space_ros.training.fitting import FitConfig, fit_detector

    logging.getLogger('lightning.pytorch').setLevel(logging.WARNING)
    fit = fit or FitOptions()
    resources = resources or ResourceOptions()
    unknown = [m for m in methods if m not in METHOD_NAMES]
    if unknown or not methods:
        raise ValueError(f'unknown methods {unknown}: choose from {list(METHOD_NAMES)}')
    bad = [s for s in settings if s not in SETTINGS]
    if bad or not settings:
        raise ValueError(f'unknown settings {bad}: choose from {list(SETTINGS)}')
    root, out_dir = Path(root), Path(out_dir)
    (out_dir / 'models').mkdir(parents=True, exist_ok=True)
    data = load_dataset(dataset, root)
    if max_train is not None:
        data = subsample_training(data, max_train, seed)
    splits = {s: make_setting(data, s, seed) for s in sorted(set(settings))}
    train_sets: dict[tuple[str, ...], list[int]] = {}
    for setting, split in splits.items():
        train_sets.setdefault(_train_key(split), []).append(setting)
    cache = _ImageCache()
    rows: list[dict[str, Any]] = []
    robust_rows: list[dict[str, Any]] = []
    scores: list[dict[str, Any]] = []
    models: dict[str, dict[str, Path]] = {}
    variants = [(None, rows)] + ([(fit.robust, robust_rows)] if fit.robust else [])

    def settings_scored(train_settings: list[int], robust: RobustConfig | None) -> list[int]:
        """Plain fits score all their settings, robust fits only settings 2 and 3."""
        return [s for s in train_settings if robust is None or s in ROBUST_SETTINGS]

    steps = sum(len(methods) * (1 + len(settings_scored(shared, robust)))
                for shared in train_sets.values() for robust, _ in variants
                if settings_scored(shared, robust))

    def assemble(resource_figures: dict[str, dict[str, float]]) -> BenchmarkResult:
        def order(row: dict[str, Any]) -> tuple[int, int]:
            return METHOD_NAMES.index(row['method']), row['setting']
        return BenchmarkResult(
            dataset=dataset, root=str(root), synthetic=_is_synthetic(root), seed=seed,
            rows=sorted(rows, key=order), resources=resource_figures,
            notes={s: split.notes for s, split in splits.items()},
            config={'methods': list(methods), 'settings': sorted(set(settings)), 'seed': seed,
                    'fit': asdict(fit), 'resources': asdict(resources),
                    'threshold': CALIBRATED_THRESHOLD, 'max_train': max_train,
                    'seconds': round(time.perf_counter() - started, 1)},
            out_dir=out_dir, robust_rows=sorted(robust_rows, key=order))

    started = time.perf_counter()
    with report.progress_bar(progress) as bar:
        task = bar.add_task(f'{dataset} benchmark', total=steps)
        for method in methods:
            for train_settings in train_sets.values():
                split = splits[train_settings[0]]
                contaminated = sum(s.is_anomaly for s in split.train)
                for robust, target in variants:
                    scored_settings = settings_scored(train_settings, robust)
                    if not scored_settings:
                        continue
                    tag = ('contaminated' if contaminated else 'clean') + (
                        '-robust' if robust else '')
                    bar.update(task, description=f'{dataset} fit {method} ({tag} train, '
                               f'settings {",".join(map(str, scored_settings))})')
                    config = FitConfig(
                        method=method, backbone=fit.backbone, weights=fit.weights,
                        input_size=(fit.input_size, fit.input_size),
                        epochs=fit.epochs_for(method), batch_size=fit.batch_size,
                        false_alarm_rate=fit.false_alarm_rate, seed=seed, progress=False,
                        robust=robust, method_options=fit.method_options(method),
                        time_budget=fit.time_budget,
                        extra_metadata={'benchmark': {'dataset': dataset, 'seed': seed,
                                                      'settings': scored_settings,
                                                      'synthetic': _is_synthetic(root)}})
                    fit_start = time.perf_counter()
                    detector = fit_detector([s.path for s in split.train], config,
                                            [s.path for s in split.calibration])
                    fit_seconds = time.perf_counter() - fit_start
                    model_path = detector.save(out_dir / 'models' / f'{dataset}-{method}-{tag}'
                                               '.safetensors')
                    models.setdefault(method, {})[tag] = model_path
                    bar.advance(task)
                    common = {'dataset': dataset, 'method': method,
                              'train_count': len(split.train), 'train_anomalies': contaminated,
                              'calibration_count': len(split.calibration),
                              'epochs': config.epochs, 'fit_seconds': round(fit_seconds, 2),
                              'time_budget_s': fit.time_budget,
                              'stopped_early': detector.metadata['fit_time']['stopped_early'],
                              'epochs_completed':
                                  detector.metadata['fit_time']['epochs_completed'],
                              'model_file': str(model_path.relative_to(out_dir)),
                              'model_id': detector.model_id}
                    if robust:
                        common.update(_screening_summary(detector.metadata['robust'], split))
                    raw_cache: dict[Path, float] = {}
                    for setting in scored_settings:
                        bar.update(task, description=f'{dataset} score {method} ({tag}) '
                                   f'setting {setting}')
                        test = splits[setting].test
                        todo = [s for s in test if s.path not in raw_cache]
                        raw = detector.raw_scores(cache.get(todo), fit.batch_size)
                        raw_cache.update(zip((s.path for s in todo), raw.tolist()))
                        raw_scores = np.array([raw_cache[s.path] for s in test])
                        calibrated = detector.calibration.normalise(raw_scores)
                        metrics = image_metrics([s.label for s in test], calibrated,
                                                CALIBRATED_THRESHOLD)
                        metrics.update(class_metrics(test, calibrated))
                        target.append({**common, 'setting': setting, **metrics})
                        if robust is None:
                            scores.extend({'dataset': dataset, 'method': method,
                                           'setting': setting, 'path': str(s.path),
                                           'category': s.category, 'label': s.label,
                                           'raw_score': float(r), 'score': float(c)}
                                          for s, r, c in zip(test, raw_scores, calibrated))
                        bar.advance(task)
            # Files are rewritten after every method, so a long run leaves usable results.
            report.write_results(assemble({}), scores)
    models = {method: {tag: path for tag, path in paths.items() if not tag.endswith('robust')}
              for method, paths in models.items()}
    result = assemble(_measure_resources(models, splits, resources, progress))
    result.files = report.write_results(result, scores)
    if plots:
        result.files.update(_plots(result, models, splits, cache, scores))
    return result


def class_metrics(test: Sequence[Sample], scores: np.ndarray) -> dict[str, dict[str, Any]]:
    """Return AUROC per anomaly class against all normal test images, with the class counts.

    ``class_auroc`` maps each anomaly category of ``test`` to its AUROC (None when the test set
    has no normals); ``class_counts`` to its number of test images.
    """
    from sklearn.metrics import roc_auc_score

    scores = np.asarray(scores, dtype=np.float64)
    normal = np.array([not s.is_anomaly for s in test])
    aurocs: dict[str, float | None] = {}
    counts: dict[str, int] = {}
    for category in sorted({s.category for s in test if s.is_anomaly}):
        chosen = np.array([s.is_anomaly and s.category == category for s in test])
        counts[category] = int(chosen.sum())
        keep = normal | chosen
        aurocs[category] = (float(roc_auc_score(chosen[keep], scores[keep])) if normal.any()
                            else None)
    return {'class_auroc': aurocs, 'class_counts': counts}


def _screening_summary(record: dict[str, Any], split: Split) -> dict[str, Any]:
    """Return the robust row fields: the rule and what the screening dropped."""
    dropped = record['dropped_indices']
    return {'robust_screen': record['screen'], 'robust_rule': record['rule'],
            'dropped_count': len(dropped),
            'dropped_anomalies': sum(split.train[i].is_anomaly for i in dropped)}


def subsample_training(data: Dataset, max_train: int, seed: int) -> Dataset:
    """Return ``data`` with at most ``max_train`` normal training samples (seeded draw)."""
    if max_train < 2:
        raise ValueError(f'max_train must be at least 2, got {max_train}')
    normals = sorted((s for s in data.samples if s.split == 'train' and not s.is_anomaly),
                     key=lambda s: str(s.path))
    if len(normals) <= max_train:
        return data
    rng = np.random.default_rng(np.random.SeedSequence([seed, 7]))
    dropped = {normals[i].path for i in rng.choice(len(normals), len(normals) - max_train,
                                                   replace=False)}
    kept = [s for s in data.samples if s.path not in dropped]
    return Dataset(data.name, data.root, kept, data.skipped)


def _measure_resources(models: dict[str, dict[str, Path]], splits: dict[int, Split],
                       options: ResourceOptions, progress: bool) -> dict[str, dict[str, float]]:
    """Measure each method's clean model (or its only model) on the first test images."""
    if options.images <= 0:
        return {}
    first_split = splits[min(splits)]
    images = [s.path for s in first_split.test[:options.images]]
    figures: dict[str, dict[str, float]] = {}
    with report.progress_bar(progress) as bar:
        task = bar.add_task('latency / memory', total=len(models))
        for method, paths in models.items():
            bar.update(task, description=f'latency / memory {method}')
            model = paths.get('clean') or next(iter(paths.values()))
            figures[method] = measure(model, images, options.warmup, options.threads)
            bar.advance(task)
    return figures


def _plots(result: BenchmarkResult, models: dict[str, dict[str, Path]],
           splits: dict[int, Split], cache: _ImageCache,
           scores: list[dict[str, Any]]) -> dict[str, str]:
    from vad4space_ros.evaluation import plots
    from vad4space_ros.deploy.loading import load_model

    files: dict[str, str] = {}
    for setting in splits:
        rows = [r for r in result.rows if r['setting'] == setting]
        path = result.out_dir / f'curves_{result.dataset}_setting{setting}.png'
        plots.plot_curves(rows, path, f'{result.dataset.upper()} setting {setting}'
                          + (' (SYNTHETIC data)' if result.synthetic else ''))
        files[f'curves_setting{setting}'] = str(path)
    setting = min(splits)
    test = splits[setting].test
    for method, paths in models.items():
        model = paths.get('clean') or next(iter(paths.values()))
        detector = load_model(model)
        by_path = {row['path']: row['score'] for row in scores
                   if row['method'] == method and row['setting'] == setting}
        path = result.out_dir / f'gallery_{result.dataset}_{method}.png'
        title = (f'{result.dataset.upper()} {method}, setting {setting}: top-scored and random '
                 'test images' + (' (SYNTHETIC data)' if result.synthetic else ''))
        plots.heatmap_gallery(detector, test, cache.get(test),
                              [by_path[str(s.path)] for s in test], path, title,
                              seed=result.seed)
        files[f'gallery_{method}'] = str(path)
    return files
