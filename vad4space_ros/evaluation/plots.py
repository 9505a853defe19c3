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

"""Benchmark figures as PNG (matplotlib, Agg): ROC/PR curves and tile galleries."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

CURVE_FIGSIZE = (11.0, 5.0)
CURVE_DPI = 100


def _pyplot() -> Any:
    import matplotlib
    matplotlib.use('Agg')
    from matplotlib import pyplot
    return pyplot


def _save(pyplot: Any, figure: Any, path: str | Path, palette: bool = False) -> Path:
    """Lay out ``figure``, write it as PNG to ``path`` (creating folders), close it.

    ``palette``: store 256 colours (a gallery of photos shrinks about 2.5x).
    """
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=CURVE_DPI)
    pyplot.close(figure)
    if palette:
        from PIL import Image
        with Image.open(path) as image:
            quantized = image.convert('RGB').quantize(256)
        quantized.save(path, optimize=True)
    return path


def plot_curves(rows: Sequence[dict[str, Any]], path: str | Path, title: str) -> Path:
    """Draw the ROC (left) and PR (right) curves of every method row on one figure.

    Each row is a benchmark result row with ``method``, ``img_auroc``, ``auc_pr``,
    ``anomaly_ratio`` and ``curves`` (from :func:`.metrics.image_metrics`).
    """
    if not rows:
        raise ValueError('no result rows to plot')
    pyplot = _pyplot()
    figure, (roc_axes, pr_axes) = pyplot.subplots(1, 2, figsize=CURVE_FIGSIZE)
    for row in rows:
        curves = row['curves']
        roc_axes.plot(curves['roc_fpr'], curves['roc_tpr'],
                      label=f'{row["method"]} (AUROC {row["img_auroc"]:.2f})')
        pr_axes.plot(curves['pr_recall'], curves['pr_precision'], drawstyle='steps-post',
                     label=f'{row["method"]} (AP {row["auc_pr"]:.2f})')
    roc_axes.plot([0, 1], [0, 1], color='grey', linestyle=':', label='chance')
    ratio = rows[0]['anomaly_ratio']
    pr_axes.axhline(ratio, color='grey', linestyle=':', label=f'chance ({ratio:.2f})')
    for axes, x_label, y_label in ((roc_axes, 'false positive rate', 'true positive rate'),
                                   (pr_axes, 'recall', 'precision')):
        axes.set_xlim(0, 1)
        axes.set_ylim(0, 1.02)
        axes.set_xlabel(x_label)
        axes.set_ylabel(y_label)
        axes.grid(alpha=0.3)
        axes.legend(fontsize=8, loc='lower right' if axes is roc_axes else 'upper right')
    roc_axes.set_title('ROC')
    pr_axes.set_title('Precision-recall')
    figure.suptitle(f'{title} (n={rows[0]["n"]}, {rows[0]["n_anomalies"]} anomalies)')
    return _save(pyplot, figure, path)


def gallery_picks(scores: Sequence[float], count: int, seed: int) -> tuple[list[int], list[int]]:
    """Return indices of the ``count`` top-scored and ``count`` random other test images."""
    order = list(np.argsort(-np.asarray(scores, dtype=np.float64), kind='stable'))
    top = order[:count]
    rest = order[count:]
    rng = np.random.default_rng(seed)
    random = [rest[i] for i in sorted(rng.choice(len(rest), size=min(count, len(rest)),
                                                 replace=False))] if rest else []
    return [int(i) for i in top], [int(i) for i in random]


def heatmap_gallery(detector: Any, samples: Sequence[Any], images: Sequence[np.ndarray],
                    scores: Sequence[float], path: str | Path, title: str, count: int = 6,
                    seed: int = 0, alpha: float = 0.45) -> Path:
    """Write a two-row gallery: top-scored and random test images with map overlays.

    Overlays use :func:`vad4space_ros.deploy.heatmap.overlay` with the model's calibrated display
    range (as the detector node does), so colours mean the same thing in every tile. Each tile
    is titled with its class, ground truth and calibrated score (>= 0.5 = flagged).
    """
    from vad4space_ros.deploy import heatmap

    if not len(samples) == len(images) == len(scores) or not samples:
        raise ValueError('gallery needs equally many (>0) samples, images and scores')
    top, random = gallery_picks(scores, count, seed)
    picks = [('top', i) for i in top] + [('random', i) for i in random]
    _, maps, _ = detector.infer([images[i] for _, i in picks])
    value_range = heatmap.map_range_from_calibration(detector.calibration.threshold,
                                                     detector.calibration.center)
    pyplot = _pyplot()
    columns = count
    figure, axes = pyplot.subplots(2, columns, figsize=(2.2 * columns, 5.6), squeeze=False)
    for axis in axes.ravel():
        axis.axis('off')
    for slot, ((row_name, index), anomaly_map) in enumerate(zip(picks, maps)):
        row = 0 if row_name == 'top' else 1
        column = slot if row == 0 else slot - len(top)
        axis = axes[row][column]
        axis.imshow(heatmap.overlay(images[index], anomaly_map, alpha, value_range))
        sample = samples[index]
        truth = 'ANOMALY' if sample.label else 'normal'
        axis.set_title(f'{sample.category} ({truth})\nscore {scores[index]:.2f}', fontsize=8,
                       color='firebrick' if sample.label else 'black')
    axes[0][0].text(-0.08, 0.5, 'top-scored', transform=axes[0][0].transAxes, rotation=90,
                    va='center', ha='right', fontsize=9)
    axes[1][0].text(-0.08, 0.5, 'random', transform=axes[1][0].transAxes, rotation=90,
                    va='center', ha='right', fontsize=9)
    figure.suptitle(title, fontsize=9)
    return _save(pyplot, figure, path)


def tail_gallery(typical: np.ndarray, typical_scores: np.ndarray,
                 novel: dict[str, tuple[np.ndarray, np.ndarray]], frame_best: float,
                 path: str | Path, title: str, count: int = 8) -> Path:
    """Write the tiles behind tiled frame scores: the top typical tiles, then each class.

    Row 1: the ``count`` highest-scoring typical tiles. Then one row per novelty class (``novel``:
    name -> (tiles, scores)): ``count`` tiles evenly spaced from its best to its worst score. A
    novel tile's score is green when it beats ``frame_best`` (the median best typical tile of a
    normal frame, so it wins its frame more often than not), red otherwise.
    """
    pyplot = _pyplot()
    rows = [('typical (top)', typical, np.asarray(typical_scores), False)] + [
        (name, tiles, np.asarray(scores), True) for name, (tiles, scores) in novel.items()]
    figure, axes = pyplot.subplots(len(rows), count, figsize=(1.3 * count, 1.45 * len(rows)),
                                   squeeze=False)
    for axis in axes.ravel():
        axis.axis('off')
    for row, (name, tiles, scores, is_novel) in enumerate(rows):
        order = np.argsort(-scores, kind='stable')
        picks = (order[np.linspace(0, len(order) - 1, count).round().astype(int)] if is_novel
                 else order[:count])
        for column, index in enumerate(picks):
            axis = axes[row][column]
            axis.imshow(tiles[index])
            colour = 'black'
            if is_novel:
                colour = 'green' if scores[index] > frame_best else 'firebrick'
            axis.set_title(f'{scores[index]:.2f}', fontsize=8, color=colour)
        axes[row][0].text(-0.08, 0.5, name, transform=axes[row][0].transAxes, rotation=90,
                          va='center', ha='right', fontsize=8)
    figure.suptitle(f'{title}\nmedian best typical tile of a normal frame: {frame_best:.2f}',
                    fontsize=9)
    return _save(pyplot, figure, path, palette=True)


def _class_names(result: dict[str, Any]) -> list[str]:
    """Return the anomaly classes of a sweep, sorted."""
    return sorted({name for row in result['rows'] for name in row['class_auroc']})


def _auroc_series(result: dict[str, Any], method: str, name: str,
                  spectral_only: bool) -> tuple[list[float], list[float]]:
    """Return (levels, AUROCs) of one method and class (NaN where undefined)."""
    points = sorted((row['subtlety'], row['class_auroc'].get(name))
                    for row in result['rows']
                    if row['method'] == method and row['spectral_only'] == spectral_only)
    return ([level for level, _ in points],
            [np.nan if value is None else value for _, value in points])


def plot_subtlety_sweep(result: dict[str, Any], path: str | Path) -> Path:
    """Draw AUROC per class against subtlety, one panel per method (see :mod:`.sweep`)."""
    methods = result['methods']
    classes = _class_names(result)
    pyplot = _pyplot()
    columns = min(4, len(methods))
    rows = -(-len(methods) // columns)
    figure, axes = pyplot.subplots(rows, columns, figsize=(3.6 * columns, 3.0 * rows + 0.8),
                                   squeeze=False, sharex=True, sharey=True)
    colours = pyplot.get_cmap('tab10')
    for panel, method in zip(axes.flat, methods):
        for index, name in enumerate(classes):
            for spectral_only, style in ((False, '-'), (True, '--')):
                levels, values = _auroc_series(result, method, name, spectral_only)
                if levels:
                    panel.plot(levels, values, style, marker='o', markersize=3,
                               color=colours(index % 10),
                               label=None if spectral_only else name)
        panel.axhline(0.5, color='grey', linestyle=':')
        panel.set_title(method if method != 'fusion' else
                        f'fusion ({result["fusion_rgb_method"]} RGB + 6-band RX)', fontsize=9)
        panel.set_ylim(0.0, 1.02)
        panel.grid(alpha=0.3)
    for panel in axes[-1]:
        panel.set_xlabel('subtlety')
    for panel in axes[:, 0]:
        panel.set_ylabel('AUROC vs normal')
    for panel in list(axes.flat)[len(methods):]:
        panel.axis('off')
    axes.flat[0].legend(fontsize=6, loc='lower left')
    extra = ('; dashed: spectral-only novelties (band ratios only)'
             if any(r['spectral_only'] for r in result['rows']) else '')
    figure.suptitle(f'{result["dataset"].upper()} subtlety sweep, SYNTHETIC {result["size"]} '
                    f'set (seed {result["seed"]}, {result["train_count"]} training normals)'
                    f'{extra}', fontsize=10)
    return _save(pyplot, figure, path)
