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

r"""Contamination-robust fitting and 6-band fusion on the generated benchmarks (tables).

Robust fitting (``--part robust``): for each dataset and method, fits with and without
``FitConfig.robust`` on setting 2 (clean training set) and setting 3 (5% anomalies mixed into
training), same seed, calibration on the dataset's held-out normal ``val`` images. Reported:

- ``s2``/``s3``: image AUROC on the protocol's test set (5% anomalies; small generated sets
  have only ~5 anomalies there, so these figures are coarse);
- ``s2 all``/``s3 all``: AUROC on the whole held-out test set (setting 1's test minus any
  anomaly used as training contamination), a steadier view of the same models;
- dropped: images the screening removed (``anomalous/total``).

The robust mode is ``RobustConfig(rule=--rule)`` (default: median + 3.5 MAD of the log
screening scores, ``--raw-scores`` for the raw scale; ``fraction`` drops the top
``--trim-fraction``). PatchCore's coreset is random: two runs differing only in its random
draws moved a protocol-test AUROC by up to 0.08, so compare the ``all`` columns.

``--seeds 0,1,2`` repeats everything per protocol/fit seed (test draw, contamination draw,
``--max-train`` subset, fit randomness) and prints mean±std over seeds of each AUROC and of
the paired differences S3−S2, S3r−S2r and S2r−S2 (settings 2 and 3 of one seed share their
test set). ``--fits FILE`` caches every single fit's results, keyed by dataset, training-set
size, seed, method, input size, epochs, setting and robust options plus a hash of
``core/robust.py``: a rerun resumes, and after a change to ``core/robust.py`` only the robust
fits are redone. A robust fit whose screening drops nothing *is* the plain fit (screening leaves
the fit's random draws untouched) and reuses its results.

6-band fusion (``--part fusion``, Mastcam): RGB-only (the method on the 805/527/447 nm view),
spectral RX only, and fused (max and mean rules) on setting 1's test set, image AUROC per novelty
class (class tiles vs all typical test tiles), plus latency per 64x64 tile (median over the test
tiles, single thread).

The data are SYNTHETIC (``core.data.synthetic``), generated with ``--data-seed`` (default 1,
not the seed 0 used while choosing the spectral defaults). Example::

    MALLOC_MMAP_THRESHOLD_=131072 OMP_NUM_THREADS=1 \
        .venv/bin/python benchmarks/robust_and_fusion.py --methods padim,patchcore,cfa --size 96

    # robust part over seeds, 100 training images (about 7 min per seed and dataset, 2 cores)
    MALLOC_MMAP_THRESHOLD_=131072 OMP_NUM_THREADS=1 \
        .venv/bin/python benchmarks/robust_and_fusion.py --part robust --size 96 \
        --methods padim,patchcore,cfa --seeds 0,1,2 --max-train 100 --fits fits.json

(``MALLOC_MMAP_THRESHOLD_`` keeps PatchCore's coreset from fragmenting the heap.)
"""
from __future__ import annotations

import argparse
from dataclasses import asdict
import functools
import hashlib
import json
import logging
import os
from pathlib import Path
import sys
import time
import warnings

import numpy as np
from sklearn.metrics import roc_auc_score

DEFAULT_ROOT = Path(os.environ.get('TMPDIR', '/tmp')) / 'vad4space-robust-fusion'


def dataset_root(root: Path, name: str, seed: int):
    """Return the generated dataset ``name`` under ``root`` (generate it on first use)."""
    from vad4space_ros.data import load_dataset
    from vad4space_ros.data.synthetic import generate
    folder = root / f'{name}-small-seed{seed}'
    if not (folder / 'SYNTHETIC.md').is_file():
        generate(name, folder, seed=seed, size='small')
    return load_dataset(name, folder)


def auroc(labels: list[int], scores: np.ndarray) -> float:
    """Image AUROC (scikit-learn)."""
    return float(roc_auc_score(labels, scores))


class ImageCache:
    """RGB images loaded once per run (seeds and settings share most of them)."""

    def __init__(self) -> None:
        self.images: dict = {}

    def get(self, samples) -> list[np.ndarray]:
        """Return the images of ``samples``."""
        from vad4space_ros.data.samples import load_rgb
        for sample in samples:
            if sample.path not in self.images:
                self.images[sample.path] = load_rgb(sample)
        return [self.images[sample.path] for sample in samples]


class FitCache(dict):
    """Results of single fits by id, mirrored to a JSON file after every addition."""

    def __init__(self, path: Path | None) -> None:
        super().__init__(json.loads(path.read_text()) if path and path.is_file() else {})
        self.path = path

    def __setitem__(self, key: str, value: dict) -> None:
        """Store a fit's results and rewrite the file."""
        super().__setitem__(key, value)
        if self.path:
            self.path.write_text(json.dumps(self, indent=1))


@functools.lru_cache(maxsize=1)
def robust_source() -> str:
    """Return a short hash of core/robust.py as this run imported it."""
    from vad4space_ros.training import robust
    return hashlib.sha1(Path(robust.__file__).read_bytes()).hexdigest()[:10]


def robust_key(robust_config) -> str:
    """Identify a robust variant: its options and the source of core/robust.py."""
    if robust_config is None:
        return 'plain'
    return json.dumps(asdict(robust_config), sort_keys=True) + f' robust.py {robust_source()}'


def screened_out(images: list[np.ndarray], config) -> list[int]:
    """Return the indices robust screening would drop (the same call fit_detector makes)."""
    from vad4space_ros.models.backbones import get_backbone, load_backbone_state
    from vad4space_ros.training.fitting import fit_detector
    from vad4space_ros.training.robust import screen_training_set
    spec = get_backbone(config.backbone)
    state = load_backbone_state(spec, config.weights)
    return screen_training_set(images, config, spec, state, config.robust,
                               fit_detector).dropped_indices


def robust_rows(dataset, methods: list[str], size: int, seeds: list[int], robust_config,
                epochs: int | None = None, fits: dict | None = None) -> list[dict]:
    """Fit every method with/without robust mode on settings 2 and 3 per seed; return rows.

    One row per (method, seed). Settings 2 and 3 of a seed share their test set, so the
    differences s3 - s2 and s2r - s2 are paired. ``fits`` caches each fit's results by
    :func:`fit_id` (a resumed run skips what it holds). When screening drops nothing, the
    robust fit is the plain fit (screening leaves the fit's random draws untouched), so its
    results are reused instead of fitting again.
    """
    from vad4space_ros.data.protocols import make_setting
    from vad4space_ros.training.fitting import fit_detector, FitConfig
    fits = {} if fits is None else fits
    cache = ImageCache()
    rows = []
    for seed in seeds:
        splits = {s: make_setting(dataset, s, seed) for s in (2, 3)}
        full = make_setting(dataset, 1, seed).test
        contamination = {x.path for x in splits[3].train if x.is_anomaly}
        evaluation = [x for x in full if x.path not in contamination]
        protocol = {x.path for x in splits[2].test}
        labels = np.array([x.label for x in evaluation])
        chosen = np.array([x.path in protocol for x in evaluation])
        for method in methods:
            row = {'dataset': dataset.name, 'method': method, 'seed': seed}
            for robust in (None, robust_config):
                for setting, split in splits.items():
                    key = f's{setting}{"r" if robust else ""}'
                    fit_id = '|'.join(map(str, (Path(dataset.root).name, len(split.train), seed,
                                                method, size, epochs, setting,
                                                robust_key(robust))))
                    if fit_id not in fits:
                        config = FitConfig(method, input_size=(size, size), seed=seed,
                                           progress=False, epochs=epochs, robust=robust)
                        train = cache.get(split.train)
                        start = time.perf_counter()
                        dropped = screened_out(train, config) if robust else []
                        if robust and not dropped:
                            plain = fits[fit_id.replace(robust_key(robust), 'plain')]
                            fits[fit_id] = {**plain, 'dropped': [], 'fit_s': plain['fit_s']
                                            + time.perf_counter() - start}
                        else:
                            detector = fit_detector(train, config,
                                                    cache.get(split.calibration))
                            scores = detector.raw_scores(cache.get(evaluation))
                            fits[fit_id] = {'auroc': auroc(labels[chosen], scores[chosen]),
                                            'auroc_all': auroc(labels, scores),
                                            'fit_s': time.perf_counter() - start,
                                            'dropped': detector.metadata.get(
                                                'robust', {}).get('dropped_indices', [])}
                    result = fits[fit_id]
                    row[key], row[key + '_all'] = result['auroc'], result['auroc_all']
                    row[key + '_fit_s'] = result['fit_s']
                    row[key + '_dropped'] = (
                        sum(split.train[i].is_anomaly for i in result['dropped']),
                        len(result['dropped']))
                    print(f'  {dataset.name} seed {seed} {method} {key}: AUROC {row[key]:.3f} '
                          f'(all {row[key + "_all"]:.3f}), fit {row[key + "_fit_s"]:.0f} s, '
                          f'dropped {row[key + "_dropped"]}', flush=True)
            rows.append(row)
    return rows


METRICS = ('s2', 's3', 's2r', 's3r')


def summarise(rows: list[dict]) -> list[dict]:
    """Mean and std over seeds per (dataset, method), of AUROCs and paired differences."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        groups.setdefault((row['dataset'], row['method']), []).append(row)
    summary = []
    for (dataset, method), group in groups.items():
        entry = {'dataset': dataset, 'method': method, 'seeds': [r['seed'] for r in group]}
        for view in ('', '_all'):
            series = {m: np.array([r[m + view] for r in group]) for m in METRICS}
            series['d'] = series['s3'] - series['s2']
            series['dr'] = series['s3r'] - series['s2r']
            series['s2r-s2'] = series['s2r'] - series['s2']
            for name, values in series.items():
                entry[name + view] = (float(values.mean()), float(values.std()))
        for key in ('s2r_dropped', 's3r_dropped'):
            entry[key] = (float(np.mean([r[key][0] for r in group])),
                          float(np.mean([r[key][1] for r in group])))
        entry['fit_s'] = {m: float(np.mean([r[m + '_fit_s'] for r in group]))
                          for m in METRICS}
        summary.append(entry)
    return summary


def _pm(value: tuple[float, float], sign: bool = False) -> str:
    return (f'{value[0]:+.3f}' if sign else f'{value[0]:.3f}') + f'±{value[1]:.3f}'


def print_robust(rows: list[dict]) -> None:
    """Print the robust-fitting table: mean±std over seeds, protocol and all-test views."""
    summary = summarise(rows)
    seeds = sorted({r['seed'] for r in rows})
    for view, label in (('', 'protocol test (5% anomalies)'),
                        ('_all', 'all held-out test images')):
        print(f'\nContamination-robust fitting, image AUROC on the {label}, mean±std over '
              f'seeds {seeds} (SYNTHETIC data)')
        header = (f'{"dataset":8} {"method":10} | {"S2":>11} {"S3":>11} {"d":>12} | '
                  f'{"S2 rob":>11} {"S3 rob":>11} {"d rob":>12} | {"S2rob-S2":>12} | '
                  'dropped S2 S3 (anom/total, mean)')
        print(header)
        print('-' * len(header))
        for e in summary:
            print(f'{e["dataset"]:8} {e["method"]:10} | {_pm(e["s2" + view]):>11} '
                  f'{_pm(e["s3" + view]):>11} {_pm(e["d" + view], True):>12} | '
                  f'{_pm(e["s2r" + view]):>11} {_pm(e["s3r" + view]):>11} '
                  f'{_pm(e["dr" + view], True):>12} | {_pm(e["s2r-s2" + view], True):>12} | '
                  f'{"%.1f/%.1f" % e["s2r_dropped"]:>9} {"%.1f/%.1f" % e["s3r_dropped"]:>9}')
    print('\nMean fit seconds (S2, S3, S2 robust, S3 robust):')
    for e in summary:
        print(f'{e["dataset"]:8} {e["method"]:10} ' + ', '.join(
            f'{e["fit_s"][m]:.1f}' for m in METRICS))


def fusion_rows(dataset, methods: list[str], size: int, seed: int) -> list[dict]:
    """Per-class AUROC of RGB-only, spectral-only and fused models; latency per tile."""
    from vad4space_ros.data.protocols import make_setting
    from vad4space_ros.data.samples import load_bands
    from vad4space_ros.deploy.spectral import bands_to_rgb, fuse, SpectralConfig
    from vad4space_ros.training.spectral_fitting import fit_fused_detector, fit_spectral_fusion
    from vad4space_ros.training.fitting import FitConfig
    split = make_setting(dataset, 1, seed)
    cubes = [load_bands(x) for x in split.test]
    calibration_cubes = [load_bands(x) for x in split.calibration]
    labels = np.array([x.label for x in split.test])
    classes = sorted({x.category for x in split.test if x.is_anomaly})
    categories = np.array([x.category for x in split.test])
    rows = []
    for method in methods:
        config = FitConfig(method, input_size=(size, size), seed=seed, progress=False)
        fused = fit_fused_detector([x.path for x in split.train], config,
                                   [x.path for x in split.calibration], SpectralConfig())
        rgb_scores, spectral_scores = fused.branch_scores(cubes)
        variants = {'rgb': rgb_scores, 'spectral': spectral_scores}
        for rule in ('max', 'mean'):
            variants[f'fused-{rule}'] = fuse(rgb_scores, spectral_scores, rule)
        mean_rule = fit_spectral_fusion(fused.rgb, [load_bands(x) for x in split.train],
                                        calibration_cubes, SpectralConfig(fusion='mean'))
        for name, scores in variants.items():
            row = {'method': method, 'variant': name, 'all': auroc(labels, scores)}
            for cls in classes:
                mask = (categories == cls) | (labels == 0)
                row[cls] = auroc(labels[mask], scores[mask])
            rows.append(row)
        rows.append({'method': method, 'variant': 'latency_ms',
                     **latency(fused, mean_rule, cubes[:60], bands_to_rgb)})
    return rows


def latency(fused, mean_rule, cubes: list[np.ndarray], bands_to_rgb) -> dict:
    """Median ms per tile: RGB predict, spectral branch alone, fused predict (max, mean)."""
    def median_ms(call) -> float:
        times = []
        for cube in cubes:
            start = time.perf_counter()
            call(cube)
            times.append((time.perf_counter() - start) * 1000.0)
        return float(np.median(times))
    for cube in cubes[:3]:
        fused.predict(cube)
    return {'rgb': median_ms(lambda c: fused.rgb.predict(bands_to_rgb(c))),
            'spectral': median_ms(fused.spectral.score),
            'fused-max': median_ms(fused.predict),
            'fused-mean': median_ms(mean_rule.predict)}


def print_fusion(rows: list[dict]) -> None:
    """Print the fusion table."""
    classes = [k for k in rows[0] if k not in ('method', 'variant', 'all')]
    print('\n6-band fusion on Mastcam setting 1 test: image AUROC per novelty class '
          '(class vs typical; SYNTHETIC data)')
    header = f'{"method":10} {"variant":11} {"all":>6} ' + ' '.join(
        f'{c[:8]:>8}' for c in classes)
    print(header)
    print('-' * len(header))
    for r in rows:
        if r['variant'] == 'latency_ms':
            print(f'{r["method"]:10} latency ms/tile (median): ' + ', '.join(
                f'{k} {v:.1f}' for k, v in r.items() if k not in ('method', 'variant')))
            continue
        print(f'{r["method"]:10} {r["variant"]:11} {r["all"]:6.3f} '
              + ' '.join(f'{r[c]:8.3f}' for c in classes))


def main(argv: list[str] | None = None) -> int:
    """Run the chosen parts and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--part', choices=('robust', 'fusion', 'both'), default='both')
    parser.add_argument('--datasets', default='lroc,mastcam')
    parser.add_argument('--methods', default='padim,patchcore,cfa')
    parser.add_argument('--fusion-methods', default='padim,patchcore')
    parser.add_argument('--size', type=int, default=96, help='model input side (px)')
    parser.add_argument('--seed', type=int, default=0, help='protocol and fit seed')
    parser.add_argument('--seeds', help='comma list of protocol/fit seeds for the robust part '
                        '(overrides --seed; tables show mean±std over them), e.g. 0,1,2,3,4')
    parser.add_argument('--epochs', type=int,
                        help='epochs for every method (default: the method default)')
    parser.add_argument('--data-seed', type=int, default=1, help='generator seed')
    parser.add_argument('--root', type=Path, default=DEFAULT_ROOT)
    parser.add_argument('--rule', choices=('mad', 'fraction'), default='mad',
                        help='robust trimming rule (see core/robust.py)')
    parser.add_argument('--trim-fraction', type=float, default=0.05,
                        help='share dropped by --rule fraction')
    parser.add_argument('--raw-scores', action='store_true',
                        help='mad rule on the raw screening scores (default: their log)')
    parser.add_argument('--max-train', type=int,
                        help='robust part: at most N normal training images per seed (the '
                        "benchmark runner's seeded subset; a documented deviation for slow "
                        'machines, contamination counts follow the smaller set)')
    parser.add_argument('--json', type=Path, help='also write the rows as JSON')
    parser.add_argument('--fits', type=Path, help='JSON cache of single fits (read if present, '
                        'written after each fit): an interrupted run resumes, a rerun after a '
                        'change to core/robust.py refits only the robust variants')
    args = parser.parse_args(argv)
    from vad4space_ros.evaluation.runner import subsample_training
    from vad4space_ros.training.robust import RobustConfig
    robust_source()  # pin the fit-cache key to the core/robust.py this run imported
    logging.getLogger('lightning.pytorch').setLevel(logging.WARNING)
    warnings.filterwarnings('ignore', module='lightning')
    robust_config = RobustConfig(rule=args.rule, trim_fraction=args.trim_fraction,
                                 log_scores=not args.raw_scores)
    seeds = [int(x) for x in args.seeds.split(',')] if args.seeds else [args.seed]
    results: dict[str, list[dict]] = {}
    if args.part in ('robust', 'both'):
        results['robust'] = []
        fits = FitCache(args.fits)
        datasets = [dataset_root(args.root, name, args.data_seed)
                    for name in args.datasets.split(',')]
        for seed in seeds:  # seeds outermost: an interrupted run leaves whole seeds
            for dataset in datasets:
                if args.max_train:
                    dataset = subsample_training(dataset, args.max_train, seed)
                results['robust'] += robust_rows(dataset, args.methods.split(','), args.size,
                                                 [seed], robust_config, args.epochs, fits)
            if args.json:  # whole seeds survive an interrupted run
                args.json.write_text(json.dumps(results, indent=1, default=str))
        print_robust(results['robust'])
        results['robust_summary'] = summarise(results['robust'])
    if args.part in ('fusion', 'both'):
        dataset = dataset_root(args.root, 'mastcam', args.data_seed)
        results['fusion'] = fusion_rows(dataset, args.fusion_methods.split(','), args.size,
                                        args.seed)
        print_fusion(results['fusion'])
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))
    return 0


if __name__ == '__main__':
    sys.exit(main())
