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

"""What frame AUROC and hit rate a Mars tile model can reach when frames are scored in tiles.

A 1600x1200 frame holds N = 475 tiles of 64 px and its score is the best tile's, so a novel
tile is found only if it outscores all N - 1 typical tiles of its frame: a tile AUROC of 0.95
still leaves about 24 typical tiles per frame above an average novel tile. For frames built as
``benchmarks/full_frames.py`` builds them (grid-aligned tiles scored without overlap, so each
tile's score does not depend on its neighbours) the frame figures follow exactly from tile
scores, which makes it cheap to compare models:

- per novelty class: tile AUROC against the typical tiles, and the expected hit rate
  ``mean over novel tiles s of F(s)^(N-1)`` (F: the typical tiles' empirical score CDF);
- frame AUROC: Monte Carlo over frames drawn from the scored tiles (half novel, the novel
  class uniform over the RGB-visible ones);
- both typical-tile sets of full_frames.py: ``pool`` (300 tiles, each in its 8 rotations and
  mirrorings, as in frames built with ``--pool 300``) and ``fresh`` (every tile new);
- ``normal_frames_at_sample_max``: the share of simulated normal frames whose best tile is the
  typical set's highest-scoring tile. Frames drawn from a finite set cannot score above its
  maximum, so when this share is large the set's upper tail is exhausted and the frame figures
  can be optimistic. The default 1,500 fresh tiles put about a quarter of the frames there;
  for the 128-px PatchCore, 30,000 (``--fresh 30000``, 2%) lowered frame AUROC from 0.766 to
  0.756 and hit rate from 55% to 53%. ``pool`` frames really are capped (they share the pool).
- the false-alarm rate of the simulated normal frames at the frame threshold the detector
  derives from the model's tile calibration (``deploy.tiling.frame_calibration``; not for
  ensembles, which have no calibration of their own here);
- with several models, also their **ensemble** (``--ensemble``: which ones; default all): the
  mean of the calibrated scores
  (``Calibration.normalise``, fitted on each model's own held-out tiles; nothing is tuned on
  these tiles).

``--gallery PNG`` draws the first model's highest-scoring fresh typical tiles above each class's
tiles from best to worst (:func:`vad4space_ros.evaluation.plots.tail_gallery`).

All tiles are SYNTHETIC (vad4space_ros/data/synthetic_frames.py). Writes
``benchmarks/results/tile_tail.json`` and prints a README-ready table::

    .venv/bin/python benchmarks/tile_tail.py pc128.safetensors cfa128.safetensors
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
import sys
import time

import numpy as np
from sklearn.metrics import roc_auc_score

from vad4space_ros.data.synthetic_frames import mars_tile, RGB_VISIBLE_NOVELTIES
from vad4space_ros.deploy.calibration import CALIBRATED_THRESHOLD, Calibration
from vad4space_ros.deploy.loading import load_model
from vad4space_ros.deploy.tiling import frame_calibration, tile_count
from vad4space_ros.evaluation.plots import tail_gallery

RESULTS = Path(__file__).resolve().parent / 'results' / 'tile_tail.json'
FRAME = (1200, 1600)
TILE = 64


def log(message: str) -> None:
    """Print progress to stderr."""
    print(f'[{time.strftime("%H:%M:%S")}] {message}', file=sys.stderr, flush=True)


def render_tiles(seed: int, pool: int, fresh: int, per_class: int) -> dict[str, np.ndarray]:
    """Return uint8 RGB tiles: 'pool' (8 orientations each), 'fresh', one set per class."""
    rng = np.random.default_rng(seed)
    oriented = []
    for tile in (mars_tile(rng) for _ in range(pool)):
        for turns in range(4):
            turned = np.rot90(tile, turns)
            oriented += [turned, turned[:, ::-1]]
    tiles = {'pool': np.stack(oriented), 'fresh': np.stack([mars_tile(rng) for _ in range(fresh)])}
    for name in RGB_VISIBLE_NOVELTIES:
        tiles[name] = np.stack([mars_tile(rng, name) for _ in range(per_class)])
    return tiles


def derived_frame_threshold(false_alarm_rate: float, tiles_per_frame: int) -> float:
    """Return the derived frame threshold on the calibrated scale (tile threshold = 0.5)."""
    tile = Calibration(CALIBRATED_THRESHOLD, 0.0, false_alarm_rate, sample_count=0)
    return frame_calibration(tile, tiles_per_frame).threshold


def frame_figures(scores: dict[str, np.ndarray], normal: str, tiles_per_frame: int,
                  frames: int, seed: int, frame_threshold: float | None = None) -> dict:
    """Return per-class tile AUROC and hit rate, their means and the simulated frame AUROC.

    With ``frame_threshold`` (calibrated scale), also the simulated normal frames' false-alarm
    rate at it.
    """
    typical = np.sort(scores[normal])
    per_class = {}
    for name in RGB_VISIBLE_NOVELTIES:
        novel = scores[name]
        below = np.searchsorted(typical, novel, side='left') / len(typical)
        per_class[name] = {
            'tile_auroc': float(roc_auc_score(np.r_[np.zeros(len(typical)), np.ones(len(novel))],
                                              np.r_[typical, novel])),
            'hit_rate': float(np.mean(below ** (tiles_per_frame - 1)))}
    rng = np.random.default_rng(seed)
    normal_frames = rng.choice(typical, (frames, tiles_per_frame)).max(axis=1)
    classes = rng.integers(len(RGB_VISIBLE_NOVELTIES), size=frames)
    novel_tiles = np.array([rng.choice(scores[RGB_VISIBLE_NOVELTIES[k]]) for k in classes])
    novel_frames = np.maximum(rng.choice(typical, (frames, tiles_per_frame - 1)).max(axis=1),
                              novel_tiles)
    figures = {} if frame_threshold is None else {
        'frame_false_alarms': float(np.mean(normal_frames >= frame_threshold))}
    return {
        **figures,
        'normal_frames_at_sample_max': float(np.mean(normal_frames >= typical[-1])),
        'normal_frame_best_median': float(np.median(normal_frames)),
        'per_class': per_class,
        'tile_auroc': float(np.mean([c['tile_auroc'] for c in per_class.values()])),
        'hit_rate': float(np.mean([c['hit_rate'] for c in per_class.values()])),
        'frame_auroc': float(roc_auc_score(np.r_[np.zeros(frames), np.ones(frames)],
                                           np.r_[normal_frames, novel_frames]))}


def table(results: dict) -> str:
    """Return the README table: one row per model and typical-tile set."""
    names = list(RGB_VISIBLE_NOVELTIES)
    lines = ['| model | typical tiles | frame AUROC | hit rate | false alarms (derived) | '
             + ' | '.join(names) + ' |', '|' + '---|' * (5 + len(names))]
    for model, by_set in results['models'].items():
        for normal, figures in by_set.items():
            cells = [f'{figures["per_class"][n]["tile_auroc"]:.3f} / '
                     f'{figures["per_class"][n]["hit_rate"]:.0%}' for n in names]
            false_alarms = figures.get('frame_false_alarms')
            rate = '' if false_alarms is None else f'{false_alarms:.1%}'
            lines.append(f'| {model} | {normal} | {figures["frame_auroc"]:.2f} | '
                         f'{figures["hit_rate"]:.0%} | {rate} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def main() -> int:
    """Score the tiles with each model (and their ensemble); write JSON, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('models', type=Path, nargs='+', help='Mars tile model files')
    parser.add_argument('--ensemble', default='',
                        help='comma list of model file stems to average (default: all)')
    parser.add_argument('--pool', type=int, default=300)
    parser.add_argument('--fresh', type=int, default=1500)
    parser.add_argument('--per-class', type=int, default=60)
    parser.add_argument('--frames', type=int, default=3000, help='simulated frames per kind')
    parser.add_argument('--batch', type=int, default=32)
    parser.add_argument('--seed', type=int, default=7)
    parser.add_argument('--output', type=Path, default=RESULTS)
    parser.add_argument('--gallery', type=Path,
                        help='PNG of the first model: its top fresh typical tiles and each '
                             'class from its best to its worst tile')
    args = parser.parse_args()
    if len({path.stem for path in args.models}) < len(args.models):
        parser.error('give each model file a different name: results are keyed by it')
    tiles_per_frame = tile_count(*FRAME, TILE, TILE)
    log(f'rendering tiles ({args.pool} pooled x 8 orientations, {args.fresh} fresh, '
        f'{args.per_class} per novelty class)')
    tiles = render_tiles(args.seed, args.pool, args.fresh, args.per_class)
    calibrated, described = {}, {}
    for path in args.models:
        detector = load_model(path)
        start = time.perf_counter()
        raw = {}
        for name, images in tiles.items():
            raw[name] = detector.raw_scores(list(images), args.batch)
            log(f'{path.name}: scored {len(images)} {name} tiles')
        calibrated[path.stem] = {k: np.asarray(detector.calibration.normalise(v))
                                 for k, v in raw.items()}
        described[path.stem] = {'model_id': detector.model_id, 'method': detector.method,
                                'input_size': list(detector.input_size),
                                'false_alarm_rate': detector.calibration.false_alarm_rate,
                                'seconds_scoring': round(time.perf_counter() - start, 1)}
    members = args.ensemble.split(',') if args.ensemble else list(calibrated)
    if len(members) > 1:
        calibrated[f'ensemble: mean of {" + ".join(members)}'] = {
            k: np.mean([calibrated[m][k] for m in members], axis=0) for k in tiles}
    thresholds = {name: derived_frame_threshold(model['false_alarm_rate'], tiles_per_frame)
                  for name, model in described.items()}
    figures = {name: {normal: frame_figures(scores, normal, tiles_per_frame, args.frames,
                                            args.seed, thresholds.get(name))
                      for normal in ('pool', 'fresh')}
               for name, scores in calibrated.items()}
    results = {
        'note': 'SYNTHETIC generated Mars tiles; frame figures derived from tile scores',
        'tiles_per_frame': tiles_per_frame, 'frames_simulated': args.frames,
        'typical_tiles': {'pool': len(tiles['pool']), 'fresh': len(tiles['fresh'])},
        'novel_tiles_per_class': args.per_class, 'seed': args.seed, 'models_scored': described,
        'models': figures}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=1) + '\n')
    if args.gallery:
        first = args.models[0].stem
        tail_gallery(tiles['fresh'], calibrated[first]['fresh'],
                     {name: (tiles[name], calibrated[first][name])
                      for name in RGB_VISIBLE_NOVELTIES},
                     figures[first]['fresh']['normal_frame_best_median'], args.gallery,
                     f'{first}: calibrated tile scores (SYNTHETIC tiles, '
                     f'{len(tiles["fresh"])} fresh typical)')
        log(f'wrote {args.gallery}')
    print(table(results))
    log(f'wrote {args.output}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
