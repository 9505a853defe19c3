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

"""Mars frames of continuous terrain: fit on the camera's normal frames, score tiled frames.

The frames of ``full_frames.py`` are mosaics of 64x64 generated tiles, and its model is fitted
on that tile generator. Here every frame is one continuous SYNTHETIC surface
(``synthetic_frames.mars_terrain_frame``: no seams, rocky and dusty patches spanning many
tiles, one sun per frame), and the model is fitted the way a rover team would: on 64x64 tiles
cut at random places from normal frames of the same camera. Half of the AUROC frames get one
novelty of a class visible in RGB, rendered into the terrain (feathered, before shading) at a
random pixel position; the scorer's grid never lines up with it. Because the terrain is
continuous, overlapping tiles (``--strides 64 32``) measure the detector, not seams.

Steps, each skipped when its output exists (so an interrupted run resumes)::

    .venv/bin/python benchmarks/terrain_frames.py --work /tmp/terrain   # (one command line)

1. ``work/train`` and ``work/calibration``: 64x64x6 ``.npy`` tiles from normal terrain frames;
2. ``vad4space fit`` (PatchCore, edge profile, 128-px input) and ``vad4space export`` to ONNX;
3. ``full_frames.mars_accuracy`` on terrain frames, once per stride; each run's summary is
   written to ``work/<model>_stride<N>.json`` as soon as it is done and added to ``--output``
   (``--model M`` skips steps 1-2 and scores with M, for example a model fitted on generated
   tiles, described by ``--about``; the same seed gives the same frames, so runs compare frame
   by frame).

This is a benchmark, not a test: it takes about an hour on 2 cores.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
import subprocess
import sys

from full_frames import log, mars_accuracy
import numpy as np

from vad4space_ros.data.synthetic_frames import MARS_TILE, terrain_tiles

RESULTS = Path(__file__).resolve().parent / 'results' / 'terrain_frames.json'


def write_tiles(folder: Path, count: int, seed: int) -> None:
    """Write ``count`` terrain tiles to ``folder`` (kept when already complete)."""
    if folder.is_dir() and len(list(folder.glob('*.npy'))) == count:
        return
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob('*.npy'):
        stale.unlink()
    for index, tile in enumerate(terrain_tiles(np.random.default_rng(seed), count)):
        np.save(folder / f'terrain-typical-{index:05d}.npy', tile, allow_pickle=False)
        if (index + 1) % 250 == 0:
            log(f'{folder.name}: {index + 1}/{count} tiles')


def fitted_model(work: Path, method: str, input_size: int) -> Path:
    """Fit and export the model on the terrain tiles (kept when already there)."""
    weights, onnx = work / f'{method}{input_size}.safetensors', work / f'{method}{input_size}.onnx'
    if not weights.exists():
        log(f'fitting {method} on {work / "train"}')
        subprocess.run(['vad4space', 'fit', '--method', method, '--train-dir',
                        str(work / 'train'), '--calibration-dir', str(work / 'calibration'),
                        '--output', str(weights), '--input-size', str(input_size),
                        '--profile', 'edge', '--seed', '0'], check=True)
    if not onnx.exists():
        subprocess.run(['vad4space', 'export', '--model', str(weights), '--output', str(onnx)],
                       check=True)
    return onnx


def main() -> int:
    """Run the steps that have no output yet; write the JSON summary."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--work', type=Path, required=True, help='folder for tiles and models')
    parser.add_argument('--train-tiles', type=int, default=2000)
    parser.add_argument('--calibration-tiles', type=int, default=500)
    parser.add_argument('--method', default='patchcore')
    parser.add_argument('--input-size', type=int, default=128)
    parser.add_argument('--frames', type=int, default=120,
                        help='frames for AUROC, half of them with a novelty')
    parser.add_argument('--extra-normal', type=int, default=120,
                        help='further normal frames for the false-alarm rates')
    parser.add_argument('--strides', type=int, nargs='+', default=[64])
    parser.add_argument('--batch', type=int, default=32)
    parser.add_argument('--seed', type=int, default=11)
    parser.add_argument('--output', type=Path, default=RESULTS)
    parser.add_argument('--model', type=Path,
                        help='score with this model (for example one fitted on generated '
                             'tiles) instead of fitting one on terrain tiles')
    parser.add_argument('--about', help='what --model is, kept with its runs in the results')
    args = parser.parse_args()
    if args.model:
        model = args.model
    else:
        write_tiles(args.work / 'train', args.train_tiles, args.seed)
        write_tiles(args.work / 'calibration', args.calibration_tiles, args.seed + 1)
        model = fitted_model(args.work, args.method, args.input_size)
    results = json.loads(args.output.read_text()) if args.output.is_file() else {}
    results['note'] = ('SYNTHETIC continuous terrain frames (synthetic_mars.render_terrain); '
                       'runs with fitted_here fit their model on tiles cut from other normal '
                       'terrain frames; the others say in "about" what their model is')
    for stride in args.strides:
        name = f'{model.stem}_stride{stride}'
        done = args.work / f'{name}.json'
        if not done.exists():
            summary = mars_accuracy(model, args.frames, args.extra_normal, 0, MARS_TILE,
                                    args.batch, args.seed + 2, stride=stride, terrain=True)
            done.write_text(json.dumps(summary, indent=1))
        results.setdefault('runs', {})[name] = {
            'fitted_here': args.model is None,
            **({'about': args.about} if args.model else {
                'train_tiles': args.train_tiles, 'calibration_tiles': args.calibration_tiles}),
            **json.loads(done.read_text())}
    args.output.write_text(json.dumps(results, indent=1) + '\n')
    log(f'wrote {args.output}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
