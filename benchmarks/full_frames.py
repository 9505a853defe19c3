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

"""Full camera frames at native resolution: whole-frame resize vs tiled scoring (issue 14).

All images are SYNTHETIC (vad4space_ros/data/synthetic_frames.py):

- **Mars frames** (``--model``, fitted on 64x64 generated typical tiles): 1600x1200 mosaics of
  generated typical tiles (each rendered afresh, or drawn from a pool with ``--pool``),
  half of them with one generated novel tile (a class visible in RGB) at a random grid cell
  (``--novel-placement anywhere``: at a random pixel position, so grid tiles cut it).
  Whole-frame resize (``tile_size`` 0) and tiled scoring (64-px tiles) side by side: frame
  AUROC, localisation hit rate (the frame's most anomalous place, i.e. the best tile or the map's
  peak, lies on the novel tile) and the false-alarm rate on normal frames at the calibrated
  threshold (the model's for whole frames, the derived frame-level one for tiles), plus the
  detection rate of novel frames at that threshold. A frame threshold fitted on normal frames
  (``calibrate_on_frames``, first half of the normal frames; rate on the other half) is
  reported next to the derived one.
- **6-band Mars frames** (``--fused-model``, ``vad4space fit --spectral-fusion``): the same
  frames with all six bands (8UC6), novel tiles drawn from all eight classes (including the
  NIR-only veins and meteorites); whole-frame fused scoring against fused 64-px tiles, plus the
  model's RGB branch on the frames' RGB view in the same tiles (``rgb_branch``).
- **Speed** (``--speed-model``, an edge ONNX model): seconds for one 1600x1200 frame at 64-px
  tiles (median of 3) and tiles per second against the tile batch size.
- **Orbiter strips** (``--lroc-model``, fitted on 227x227 chips): a 5,064 x 52,224 grey image of
  generated chips, streamed as 1,024-row strips through :class:`StripScorer` at 227-px tiles in
  a fresh subprocess; wall time and the subprocess's peak RSS (VmHWM).

Writes ``benchmarks/results/full_frames.json`` and prints a README-ready table::

    .venv/bin/python benchmarks/full_frames.py --model mars.onnx --speed-model mars.onnx
        --lroc-model lroc.onnx    # (one command line)

This is a benchmark, not a test: figures depend on the machine and its load.
"""
from __future__ import annotations

import argparse
import functools
import json
import os
from pathlib import Path
import statistics
import subprocess
import sys
import time

import numpy as np

from vad4space_ros.data.synthetic_frames import (
    ChipMosaic, mars_frame, mars_terrain_frame, mars_tile, RGB_VISIBLE_NOVELTIES)
from vad4space_ros.data.synthetic_mars import NOVELTIES
from vad4space_ros.deploy.frame_scoring import FrameScorer
from vad4space_ros.deploy.image_encoding import MULTISPECTRAL_BANDS
from vad4space_ros.deploy.loading import load_model
from vad4space_ros.deploy.preprocess import as_rgb
from vad4space_ros.deploy.spectral import as_bands, bands_to_rgb, FusedDetector
from vad4space_ros.deploy.strips import score_tiled, StripScorer
from vad4space_ros.deploy.tiling import (
    calibrate_on_frames, derived_frame_calibration, TileOptions)
from vad4space_ros.evaluation.metrics import image_metrics
from vad4space_ros.evaluation.resources import peak_rss_mb, rss_mb

RESULTS = Path(__file__).resolve().parent / 'results' / 'full_frames.json'
FRAME = (1200, 1600)
NAC = (52224, 5064)


def log(message: str) -> None:
    """Print progress to stderr."""
    print(f'[{time.strftime("%H:%M:%S")}] {message}', file=sys.stderr, flush=True)


def _hit(box, y: int, x: int, height: int, width: int) -> bool:
    return box.overlaps(x, y, height=height, width=width)


def _best_tile_hit(tiles, box, tile: int) -> bool:
    best = np.unravel_index(np.argmax(tiles.grid), tiles.grid.shape)
    return bool(box and _hit(box, int(tiles.rows[best[0]]), int(tiles.cols[best[1]]), tile,
                             tile))


def mars_accuracy(model_path: Path, frames: int, extra_normal: int, pool_size: int,
                  tile: int, batch: int, seed: int, stride: int = 0,
                  anywhere: bool = False, shape: tuple[int, int] = FRAME,
                  terrain: bool = False) -> dict:
    """Score Mars frames whole and tiled; return AUROC, hit rate, false alarms, detections.

    ``stride`` (0: the tile side) is the tiled scoring's; ``anywhere`` places the novel tile at a
    random pixel position instead of a grid cell; ``shape`` is the frames' (height, width);
    ``terrain`` renders continuous terrain frames instead of tile mosaics (novelty anywhere).

    A 6-band fused model gets 6-band frames with novelties of every class, a colour fused model
    the RGB frames a plain model gets; a fused model's RGB branch is also scored in tiles on the
    frames' RGB view (``rgb_raw``, ``rgb_hit``).
    """
    detector = load_model(model_path)
    stride = stride or tile
    fused = isinstance(detector, FusedDetector)
    multiband = fused and detector.bands == MULTISPECTRAL_BANDS
    classes = tuple(NOVELTIES) if multiband else RGB_VISIBLE_NOVELTIES
    rng = np.random.default_rng(seed)
    log(f'rendering {pool_size} typical tiles for the frame pool' if pool_size else
        'every frame gets freshly rendered typical tiles')
    pool = [mars_tile(rng, bands=multiband) for _ in range(pool_size)] or None
    whole = FrameScorer(detector, tiling=TileOptions(tile_size=0))
    rows = []
    total = frames + extra_normal
    for index in range(total):
        novel = (classes[int(rng.integers(len(classes)))]
                 if index < frames and index % 2 == 0 else None)
        frame, box = (mars_terrain_frame(rng, *shape, novel, bands=multiband) if terrain else
                      mars_frame(rng, *shape, novel, pool, bands=multiband, anywhere=anywhere))
        start = time.perf_counter()
        whole_scored = whole.score(frame, '8UC6' if multiband else 'rgb8')
        whole_s = time.perf_counter() - start
        peak = np.unravel_index(np.argmax(whole_scored.prediction.anomaly_map), shape)
        start = time.perf_counter()
        _, tiles = score_tiled(detector, frame, tile, stride, batch,
                               as_bands if fused else as_rgb)
        tiled_s = time.perf_counter() - start
        extra = {}
        if fused:
            _, rgb_tiles = score_tiled(detector.rgb,
                                       bands_to_rgb(frame, detector.config.rgb_bands), tile,
                                       stride, batch)
            extra = {'rgb_raw': rgb_tiles.frame_raw_score,
                     'rgb_hit': _best_tile_hit(rgb_tiles, box, tile)}
        rows.append({
            'novel': novel, 'in_auroc_set': index < frames,
            'whole_score': whole_scored.prediction.score,
            'whole_alarm': bool(whole_scored.prediction.is_anomaly),
            'whole_hit': bool(box and _hit(box, int(peak[0]), int(peak[1]), 1, 1)),
            'tiled_raw': tiles.frame_raw_score, 'tile_count': tiles.count,
            'tiled_hit': _best_tile_hit(tiles, box, tile),
            'whole_s': whole_s, 'tiled_s': tiled_s, **extra})
        log(f'frame {index + 1}/{total} ({novel or "normal"}): whole '
            f'{whole_scored.prediction.score:.2f} ({whole_s:.1f} s), tiled raw '
            f'{tiles.frame_raw_score:.3f} ({tiled_s:.1f} s), hit {rows[-1]["tiled_hit"]}')
    derived = derived_frame_calibration(detector.calibration, rows[0]['tile_count'],
                                        detector.metadata)
    normal = [r for r in rows if not r['novel']]
    half = len(normal) // 2
    fitted = calibrate_on_frames(np.array([r['tiled_raw'] for r in normal[:half]]),
                                 detector.calibration.false_alarm_rate)
    auroc_set = [r for r in rows if r['in_auroc_set']]
    labels = [int(r['novel'] is not None) for r in auroc_set]
    novel_rows = [r for r in rows if r['novel']]

    def rate(values: list[bool]) -> float:
        return float(np.mean(values)) if values else float('nan')

    summary = {
        'model': str(model_path), 'model_id': detector.model_id, 'frame_shape': list(shape),
        'tile': tile, 'stride': stride,
        'frames_kind': 'continuous terrain' if terrain else 'tile mosaic',
        'novel_placement': 'anywhere' if anywhere or terrain else 'grid cell',
        'frames': len(auroc_set), 'novel_frames': len(novel_rows), 'normal_frames': len(normal),
        'tile_false_alarm_rate': detector.calibration.false_alarm_rate,
        'whole': {
            'auroc': image_metrics(labels, [r['whole_score'] for r in auroc_set])['img_auroc'],
            'hit_rate': rate([r['whole_hit'] for r in novel_rows]),
            'false_alarm_rate': rate([r['whole_alarm'] for r in normal]),
            'detection_rate': rate([r['whole_alarm'] for r in novel_rows]),
            'seconds_per_frame': statistics.median(r['whole_s'] for r in rows)},
        'tiled': {
            'auroc': image_metrics(labels, [r['tiled_raw'] for r in auroc_set])['img_auroc'],
            'hit_rate': rate([r['tiled_hit'] for r in novel_rows]),
            'frame_threshold_raw': derived.threshold,
            'false_alarm_rate': rate([r['tiled_raw'] >= derived.threshold for r in normal]),
            'detection_rate': rate([r['tiled_raw'] >= derived.threshold for r in novel_rows]),
            'fitted_frame_threshold_raw': fitted.threshold,
            'fitted_false_alarm_rate': rate([r['tiled_raw'] >= fitted.threshold
                                             for r in normal[half:]]),
            'fitted_detection_rate': rate([r['tiled_raw'] >= fitted.threshold
                                           for r in novel_rows]),
            'seconds_per_frame': statistics.median(r['tiled_s'] for r in rows),
            'normal_frame_raw_scores': [round(r['tiled_raw'], 5) for r in normal]},
        'per_class_hit': {name: rate([r['tiled_hit'] for r in novel_rows if r['novel'] == name])
                          for name in sorted({r['novel'] for r in novel_rows})},
        'frame_bands': MULTISPECTRAL_BANDS if multiband else 3,
    }
    if fused:
        summary['rgb_branch'] = {
            'auroc': image_metrics(labels, [r['rgb_raw'] for r in auroc_set])['img_auroc'],
            'hit_rate': rate([r['rgb_hit'] for r in novel_rows]),
            'per_class_hit': {name: rate([r['rgb_hit'] for r in novel_rows
                                          if r['novel'] == name])
                              for name in sorted({r['novel'] for r in novel_rows})}}
    return summary


def speed(model_path: Path, tile: int, batch_sizes: list[int], seed: int) -> dict:
    """Time a 1600x1200 frame at ``tile``-px tiles and tiles/s per batch size."""
    detector = load_model(model_path)
    rng = np.random.default_rng(seed)
    pool = [mars_tile(rng) for _ in range(64)]
    frame, _ = mars_frame(rng, *FRAME, None, pool)
    best_batch = max(batch_sizes)
    # a colour fused model takes the RGB frame as a band cube
    tiled = functools.partial(
        score_tiled, prepare=as_bands if isinstance(detector, FusedDetector) else as_rgb)
    tiled(detector, frame[:tile * 2], tile, tile, best_batch)   # warm-up
    frame_seconds = []
    for _ in range(3):
        start = time.perf_counter()
        _, tiles = tiled(detector, frame, tile, tile, best_batch)
        frame_seconds.append(time.perf_counter() - start)
        log(f'1600x1200 at {tile}-px tiles, batch {best_batch}: {frame_seconds[-1]:.2f} s')
    sample = [frame[y:y + tile, x:x + tile] for y in range(0, 8 * tile, tile)
              for x in range(0, 24 * tile, tile)][:192]
    per_batch = {}
    for batch in batch_sizes:
        detector.infer(sample[:batch])
        start = time.perf_counter()
        for first in range(0, len(sample), batch):
            detector.infer(sample[first:first + batch])
        per_batch[batch] = len(sample) / (time.perf_counter() - start)
        log(f'batch {batch}: {per_batch[batch]:.0f} tiles/s')
    return {'model': str(model_path), 'model_input': list(detector.input_size), 'tile': tile,
            'tiles_per_frame': tiles.count,
            'frame_seconds_median': statistics.median(frame_seconds),
            'batch': best_batch, 'tiles_per_second_by_batch': per_batch,
            'threads': os.environ.get('OMP_NUM_THREADS', 'all cores (onnxruntime default)')}


def nac_strips(model_path: Path, height: int, width: int, rows_per_strip: int,
               batch: int) -> dict:
    """Stream a generated NAC-size image as strips (run in its own process for peak RSS)."""
    detector = load_model(model_path)
    loaded_rss = rss_mb()
    tile = int(min(detector.metadata.get('train_image_size') or [227]))
    mosaic = ChipMosaic(width, height, seed=3)
    scorer = StripScorer(detector, width, tile, tile, batch)
    generate_s = 0.0
    map_max = -np.inf
    start = time.perf_counter()
    for offset in range(0, height, rows_per_strip):
        made = time.perf_counter()
        strip = mosaic.rows(offset, offset + rows_per_strip)
        generate_s += time.perf_counter() - made
        for _, block in scorer.add(strip, offset):
            map_max = max(map_max, float(block.max()))
        if offset // rows_per_strip % 10 == 0:
            log(f'NAC strips: row {offset + len(strip)}/{height}, '
                f'{time.perf_counter() - start:.0f} s, peak RSS {peak_rss_mb():.0f} MB')
    blocks, tiles = scorer.finish()
    total = time.perf_counter() - start
    calibration = derived_frame_calibration(detector.calibration, tiles.count, detector.metadata)
    return {'model': str(model_path), 'width': width, 'height': height, 'tile': tile,
            'rows_per_strip': rows_per_strip, 'tiles': tiles.count, 'seconds': total,
            'seconds_scoring': total - generate_s, 'peak_rss_mb': peak_rss_mb(),
            'rss_after_model_load_mb': loaded_rss, 'imports_torch': 'torch' in sys.modules,
            'frame_score': float(calibration.normalise(tiles.frame_raw_score))}


def example_png(model_path: Path, output: Path, seed: int) -> None:
    """Save one tiled frame with a novel tile (frame | heatmap with regions) at half size."""
    from PIL import Image

    from vad4space_ros.deploy.heatmap import overlay
    from vad4space_ros.deploy.regions import draw_regions
    scorer = FrameScorer(load_model(model_path), tiling=TileOptions())
    frame, box = mars_frame(np.random.default_rng(seed), *FRAME, 'dump-pile')
    scored = scorer.score(frame, 'rgb8')
    heat = draw_regions(overlay(frame, scored.prediction.anomaly_map, 0.45,
                                scorer.map_range(scored.calibration)), scored.regions)
    side_by_side = Image.fromarray(np.concatenate([frame, heat], axis=1))
    side_by_side.resize((side_by_side.width // 2, side_by_side.height // 2),
                        Image.Resampling.LANCZOS).save(output, quality=88)  # half size
    log(f'wrote {output}: novel tile at {box}, regions {scored.regions}')


def table(results: dict) -> str:
    """Return the README-ready markdown table of the results."""
    lines = []
    for mars in filter(None, (results.get('mars'), results.get('mars_6band'))):
        whole, tiled = mars['whole'], mars['tiled']
        bands = mars.get('frame_bands', 3)
        lines += [
            f'Mars frames {"x".join(map(str, mars.get("frame_shape", FRAME)[::-1]))}x{bands} '
            f'(SYNTHETIC, {mars["frames"]} frames for AUROC, '
            f'{mars["novel_frames"]} with a novel tile '
            f'(at a {mars.get("novel_placement", "grid cell")}), {mars["normal_frames"]} '
            'normal), '
            f'model {mars["model_id"]}:', '',
            '| scoring | frame AUROC | hit rate | false alarms (normal) | detected (novel) '
            '| s/frame |', '|---|---|---|---|---|---|',
            f'| whole frame resized | {whole["auroc"]:.3f} | {whole["hit_rate"]:.0%} '
            f'| {whole["false_alarm_rate"]:.0%} | {whole["detection_rate"]:.0%} '
            f'| {whole["seconds_per_frame"]:.2f} |',
            f'| tiled {mars["tile"]} px (stride {mars.get("stride", mars["tile"])}), derived '
            f'frame threshold | {tiled["auroc"]:.3f} '
            f'| {tiled["hit_rate"]:.0%} | {tiled["false_alarm_rate"]:.0%} '
            f'| {tiled["detection_rate"]:.0%} | {tiled["seconds_per_frame"]:.2f} |',
            f'| tiled, threshold fitted on normal frames | (same) | (same) '
            f'| {tiled["fitted_false_alarm_rate"]:.0%} | {tiled["fitted_detection_rate"]:.0%} '
            '| |']
        if 'rgb_branch' in mars:
            rgb = mars['rgb_branch']
            lines.append(f'| RGB branch only, tiled | {rgb["auroc"]:.3f} | {rgb["hit_rate"]:.0%} '
                         '| | | |')
        lines += ['', 'tiled hit rate per class: ' + ', '.join(
            f'{name} {value:.0%}' for name, value in mars['per_class_hit'].items()), '']
    for fast in results.get('speed', {}).values():
        by_batch = ', '.join(f'{b}: {v:.0f}' for b, v in fast['tiles_per_second_by_batch'].items())
        lines += [f'Speed ({Path(fast["model"]).name}, model input '
                  f'{"x".join(map(str, fast["model_input"]))}): 1600x1200 at {fast["tile"]}-px '
                  f'tiles ({fast["tiles_per_frame"]} tiles, batch {fast["batch"]}): '
                  f'{fast["frame_seconds_median"]:.2f} s (target <= 1 s); tiles/s by batch '
                  f'size: {by_batch}.', '']
    nac = results.get('nac')
    if nac:
        lines += [f'NAC-size strips {nac["width"]}x{nac["height"]} at {nac["tile"]}-px tiles '
                  f'({nac["tiles"]} tiles, {nac["rows_per_strip"]}-row strips): '
                  f'{nac["seconds"]:.0f} s (scoring {nac["seconds_scoring"]:.0f} s; target '
                  f'<= 60 s), peak RSS {nac["peak_rss_mb"]:.0f} MB (target <= 500 MB'
                  + (f'; {nac["rss_after_model_load_mb"]:.0f} MB already after loading the '
                     'model' if 'rss_after_model_load_mb' in nac else '')
                  + ('; the model loader imports torch' if nac.get('imports_torch') else '')
                  + ').']
    return '\n'.join(lines)


def main() -> int:
    """Run the requested parts, write the JSON and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--model', type=Path, help='Mars model fitted on 64x64 tiles')
    parser.add_argument('--fused-model', type=Path,
                        help='6-band fused Mars model (vad4space fit --spectral-fusion)')
    parser.add_argument('--speed-model', type=Path, help='edge ONNX model for the speed part')
    parser.add_argument('--lroc-model', type=Path, help='model fitted on 227x227 chips')
    parser.add_argument('--frames', type=int, default=24, help='frames for AUROC (half novel)')
    parser.add_argument('--extra-normal', type=int, default=16,
                        help='more normal frames for the false-alarm rate')
    parser.add_argument('--pool', type=int, default=0,
                        help='draw typical tiles from a pool of this many rendered tiles '
                             '(faster; frames then share tiles); 0: render every tile')
    parser.add_argument('--frame-height', type=int, default=FRAME[0],
                        help='height of the Mars frames (1216, a multiple of 64: no seam row)')
    parser.add_argument('--tile', type=int, default=64)
    parser.add_argument('--stride', type=int, default=0,
                        help='tile stride of the Mars frames (0: the tile side, no overlap)')
    parser.add_argument('--novel-placement', choices=('grid', 'anywhere'), default='grid',
                        help='novel tile on a grid cell, or at any pixel position')
    parser.add_argument('--batch', type=int, default=32)
    parser.add_argument('--batch-sizes', default='1,4,16,32,64')
    parser.add_argument('--nac-height', type=int, default=NAC[0])
    parser.add_argument('--strip-rows', type=int, default=1024)
    parser.add_argument('--seed', type=int, default=7)
    parser.add_argument('--output', type=Path, default=RESULTS)
    parser.add_argument('--example', type=Path,
                        help='only save one scored frame (frame | heatmap + regions), e.g. .jpg')
    parser.add_argument('--nac-only', action='store_true', help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.example:
        example_png(args.model, args.example, args.seed)
        return 0
    if args.nac_only:
        print(json.dumps(nac_strips(args.lroc_model, args.nac_height, NAC[1], args.strip_rows,
                                    args.batch)))
        return 0
    results = json.loads(args.output.read_text()) if args.output.is_file() else {}
    results['note'] = 'SYNTHETIC images (generated tiles and chips); machine-dependent timings'
    accuracy = functools.partial(
        mars_accuracy, frames=args.frames, extra_normal=args.extra_normal, pool_size=args.pool,
        tile=args.tile, batch=args.batch, seed=args.seed, stride=args.stride,
        anywhere=args.novel_placement == 'anywhere', shape=(args.frame_height, FRAME[1]))
    if args.model:
        results['mars'] = accuracy(args.model)
    if args.fused_model:
        results['mars_6band'] = accuracy(args.fused_model)
    if args.speed_model:
        results.setdefault('speed', {})[args.speed_model.name] = speed(
            args.speed_model, args.tile, [int(b) for b in args.batch_sizes.split(',')],
            args.seed)
    if args.lroc_model:
        log('NAC strips in a subprocess (its own peak RSS)')
        command = [sys.executable, __file__, '--nac-only', '--lroc-model', str(args.lroc_model),
                   '--nac-height', str(args.nac_height), '--strip-rows', str(args.strip_rows),
                   '--batch', str(args.batch)]
        done = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=True)
        results['nac'] = json.loads(done.stdout.splitlines()[-1])
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + '\n')
    print(table(results))
    return 0


if __name__ == '__main__':
    sys.exit(main())
