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

"""Subtlety sweep: AUROC per anomaly class as the anomalies become harder to see.

SYNTHETIC DATA ONLY: the knob is the generators' ``subtlety`` (see :mod:`.synthetic_lunar`,
:mod:`.synthetic_mars`), so this needs no real data and says nothing about it directly; it shows
where each method stops separating each class from normal terrain.

For each subtlety level one dataset is generated with the same seed. Normal images do not depend
on the subtlety, so every method is fitted once (on the level-0 set's setting-1 training
normals, calibrated on its validation normals) and scores every level's setting-1 test set.
On Mastcam two extras: ``spectral-only`` test sets (novelties keep only their NIR band ratios;
dashed lines) and a ``fusion`` row, the first method's RGB model fused with the 6-band spectral
branch (:func:`~vad4space_ros.deploy.spectral.fit_spectral_fusion`).

Writes ``sweep_<dataset>.json`` (every AUROC) and ``sweep_<dataset>.png`` (one panel per method,
one line per class) into ``out_dir``.
"""
from __future__ import annotations

import json
from pathlib import Path
import time
from typing import Any, Sequence


from vad4space_ros.data import synthetic
from vad4space_ros.data.datasets import load_dataset
from vad4space_ros.data.files import load_bands, load_rgb
from vad4space_ros.data.protocols import make_setting
from vad4space_ros.evaluation import plots
from vad4space_ros.evaluation.report import progress_bar
from vad4space_ros.evaluation.runner import class_metrics, FitOptions

LEVELS = (0.0, 0.25, 0.5, 0.75, 1.0)
FUSION_ROW = 'fusion'


def _generated(dataset: str, base: Path, seed: int, size: str, level: float,
               spectral_only: bool) -> Path:
    """Return the root of one generated level (generated on first use)."""
    name = f'{dataset}-{size}-seed{seed}-s{level:g}' + ('-spectral' if spectral_only else '')
    root = base / name
    if not (root / 'SYNTHETIC.md').is_file():
        synthetic.generate(dataset, root, seed=seed, size=size, progress=False, subtlety=level,
                           spectral_only=spectral_only)
    return root


def run_sweep(dataset: str, out_dir: str | Path, methods: Sequence[str],
              levels: Sequence[float] = LEVELS, size: str = 'tiny', seed: int = 0,
              fit: FitOptions | None = None, progress: bool = True) -> dict[str, Any]:
    """Run the sweep of the module docstring; write its JSON and PNG and return the JSON."""
    from vad4space_ros.training.spectral_fitting import fit_spectral_fusion
    from vad4space_ros.training.fitting import FitConfig, fit_detector

    fit = fit or FitOptions()
    out_dir = Path(out_dir)
    started = time.perf_counter()
    variants = [(level, False) for level in levels]
    if dataset == 'mastcam':
        variants += [(level, True) for level in levels]
    roots = {variant: _generated(dataset, out_dir / 'data', seed, size, *variant)
             for variant in variants}
    tests = {variant: make_setting(load_dataset(dataset, root), 1, seed).test
             for variant, root in roots.items()}
    base = make_setting(load_dataset(dataset, roots[(levels[0], False)]), 1, seed)
    rows: list[dict[str, Any]] = []
    rows_of = list(methods) + ([FUSION_ROW] if dataset == 'mastcam' else [])
    with progress_bar(progress) as bar:
        task = bar.add_task(f'{dataset} subtlety sweep', total=len(methods) * (1 + len(tests)))
        fused = None
        for method in methods:
            bar.update(task, description=f'{dataset} sweep: fit {method}')
            config = FitConfig(method=method, backbone=fit.backbone, weights=fit.weights,
                               input_size=(fit.input_size, fit.input_size),
                               epochs=fit.epochs_for(method), batch_size=fit.batch_size,
                               seed=seed, progress=False, time_budget=fit.time_budget,
                               method_options=fit.method_options(method))
            detector = fit_detector([s.path for s in base.train], config,
                                    [s.path for s in base.calibration])
            if dataset == 'mastcam' and fused is None:
                fused = fit_spectral_fusion(detector, [load_bands(s) for s in base.train],
                                            [load_bands(s) for s in base.calibration])
            bar.advance(task)
            for (level, spectral_only), test in tests.items():
                bar.update(task, description=f'{dataset} sweep: {method} at subtlety {level:g}')
                raw = detector.raw_scores([load_rgb(s) for s in test], fit.batch_size)
                rows.append({'method': method, 'subtlety': level,
                             'spectral_only': spectral_only, **class_metrics(test, raw)})
                if fused is not None and method == methods[0]:
                    scores = fused.scores([load_bands(s) for s in test], fit.batch_size)
                    rows.append({'method': FUSION_ROW, 'subtlety': level,
                                 'spectral_only': spectral_only,
                                 **class_metrics(test, scores)})
                bar.advance(task)
    result = {'dataset': dataset, 'synthetic': True, 'size': size, 'seed': seed,
              'levels': list(levels), 'methods': rows_of,
              'fusion_rgb_method': methods[0] if dataset == 'mastcam' else None,
              'train_count': len(base.train), 'fit': {'input_size': fit.input_size,
                                                      'epochs': {m: fit.epochs_for(m)
                                                                 for m in methods}},
              'seconds': round(time.perf_counter() - started, 1), 'rows': rows}
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f'sweep_{dataset}.json').write_text(json.dumps(result, indent=1) + '\n')
    plots.plot_subtlety_sweep(result, out_dir / f'sweep_{dataset}.png')
    return result


def breakdown_levels(result: dict[str, Any], floor: float = 0.7) -> dict[str, dict[str, Any]]:
    """Return per method and class the first subtlety whose AUROC falls below ``floor``.

    None means the class stays separable at every level of the sweep (RGB test sets only).
    """
    found: dict[str, dict[str, Any]] = {}
    for row in sorted(result['rows'], key=lambda r: r['subtlety']):
        if row['spectral_only']:
            continue
        for name, value in row['class_auroc'].items():
            classes = found.setdefault(row['method'], {})
            if name not in classes:
                classes[name] = None
            if classes[name] is None and value is not None and value < floor:
                classes[name] = row['subtlety']
    return found
