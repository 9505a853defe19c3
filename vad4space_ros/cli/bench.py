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

"""Latency bench: our inference paths vs anomalib's inferencers, side by side.

``vad4space bench latency``; each worker runs this module (``python -m``).

For every fitted model (``.safetensors``; ``.onnx`` exports may be given too) the same 256x256
RGB images (synthetic lunar chips, uint8) go through each backend, each in its own worker
process (so peak memory is per backend), at each thread count:

- ``torch``: ``TorchDetector.predict`` (our torch path: preprocessing, model, map upsampling,
  calibration, embedding).
- ``onnxruntime`` / ``openvino``: ``OnnxDetector.predict`` on our ONNX export (same outputs).
- ``anomalib-torch``: anomalib's ``TorchInferencer.predict`` on ``model.to_torch()`` of the same
  fitted weights (pickled lightning module, needs ``TRUST_REMOTE_CODE=1``, set for the worker).
- ``anomalib-openvino``: anomalib's ``OpenVINOInferencer.predict`` on ``model.to_openvino()``
  (anomalib's own dynamo ONNX export, then OpenVINO IR), run in a scratch working directory
  because it writes ``./openvino_cache``.

anomalib's modules get a pre-processor of Resize + Normalize(backbone mean/std), i.e. the same
input preparation as ours, and no post-processor (ours calibrates separately), so all backends
compute the same raw scores (``score_rel_diff`` in the JSON checks that). Per backend: median
and 95th-percentile latency of one ``predict`` call per image (after warm-up), the worker's
peak resident memory while predicting (VmHWM reset after loading) and at load, and the on-disk
footprint of the files the backend loads. Threads: ``torch.set_num_threads`` /
``OMP_NUM_THREADS``, ONNX Runtime ``intra_op_num_threads``, OpenVINO ``INFERENCE_NUM_THREADS``.
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
import subprocess
import sys
import time
from typing import Any

import numpy as np

from vad4space_ros.evaluation.resources import peak_rss_mb, reset_peak_rss, rss_mb

BACKENDS = ('torch', 'onnxruntime', 'openvino', 'anomalib-torch', 'anomalib-openvino')
SCORE_CHECK_IMAGES = 4


def bench_images(count: int, size: int, seed: int = 0) -> np.ndarray:
    """Render ``count`` synthetic lunar chips (every fifth with a fresh crater) as RGB."""
    import cv2

    from vad4space_ros.data.synthetic_lunar import render_chip

    rng = np.random.default_rng(seed)
    images = []
    for index in range(count):
        chip = render_chip(rng, 'ejecta' if index % 5 == 4 else 'none')
        chip = cv2.resize(chip, (size, size), interpolation=cv2.INTER_LINEAR)
        images.append(np.repeat(chip[:, :, None], 3, axis=2))
    return np.stack(images)


def model_files(targets: list[str]) -> list[Path]:
    """Model files (``.safetensors``, ``.onnx``) named directly or found in folders."""
    files: list[Path] = []
    for target in targets:
        path = Path(target)
        if path.is_dir():
            files += sorted(p for p in path.iterdir() if p.suffix in ('.safetensors', '.onnx'))
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(f'{path} does not exist')
    if not files:
        raise FileNotFoundError(f'no .safetensors/.onnx model files in {targets}')
    return files


def anomalib_module(detector: Any) -> Any:
    """Return the fitted model as an anomalib lightning module, Resize+Normalize first."""
    from anomalib.pre_processing import PreProcessor
    from torchvision.transforms.v2 import Compose, Normalize, Resize

    from vad4space_ros.models.backbones import get_backbone
    from vad4space_ros.models.export import rebuild_module

    module = rebuild_module(detector)
    spec = get_backbone(detector.backbone)
    module.pre_processor = PreProcessor(transform=Compose([
        Resize(list(detector.input_size), antialias=True),
        Normalize(mean=list(spec.mean), std=list(spec.std))]))
    return module.eval()


def prepare(model: Path, work: Path, backends: list[str]) -> dict[str, Any]:
    """Write the files each backend loads for ``model``; return {backend: files or error}."""
    from vad4space_ros.models.export import export_onnx
    from vad4space_ros.deploy.loading import load_model

    stem = work / model.stem
    prepared: dict[str, Any] = {}
    if model.suffix == '.onnx':
        return {b: [str(model)] for b in backends if b in ('onnxruntime', 'openvino')}
    detector = load_model(model)
    if 'torch' in backends:
        prepared['torch'] = [str(model)]
    if {'onnxruntime', 'openvino'} & set(backends):
        onnx_path = stem.with_suffix('.onnx')
        if not onnx_path.is_file():
            export_onnx(detector, onnx_path)
        for backend in ('onnxruntime', 'openvino'):
            if backend in backends:
                prepared[backend] = [str(onnx_path)]
    if 'anomalib-torch' in backends:
        prepared['anomalib-torch'] = _anomalib_export(
            lambda: [str(anomalib_module(detector).to_torch(stem, 'model'))])
    if 'anomalib-openvino' in backends:
        def to_openvino() -> list[str]:
            xml = anomalib_module(detector).to_openvino(
                stem, 'model', input_size=tuple(detector.input_size))
            return [str(xml), str(xml.with_suffix('.bin'))]
        prepared['anomalib-openvino'] = _anomalib_export(to_openvino)
    return prepared


def _anomalib_export(export: Any) -> Any:
    try:
        return export()
    except Exception as error:  # anomalib/torch.export failures are reported, not fatal
        return {'error': f'{type(error).__name__}: {str(error)[:300]}'}


def run_worker(request: dict[str, Any]) -> dict[str, Any]:
    """Load one backend, predict every image once after warm-up; return timings and memory."""
    import torch

    threads = request['threads']
    torch.set_num_threads(threads)
    images = np.load(request['images'])
    backend, files = request['backend'], request['files']
    start = time.perf_counter()
    predict = _load_backend(backend, files, threads, Path(request['scratch']),
                            tuple(request['input_size']))
    load_s = time.perf_counter() - start
    load_peak_mb = peak_rss_mb()
    scores = [predict(image) for image in images[:max(request['warmup'], SCORE_CHECK_IMAGES)]]
    reset_peak_rss()
    rss_before_mb = rss_mb()
    latencies = []
    for image in images:
        start = time.perf_counter()
        predict(image)
        latencies.append((time.perf_counter() - start) * 1000.0)
    peak_mb = peak_rss_mb()
    return {'load_s': load_s, 'load_peak_mb': load_peak_mb, 'peak_mb': peak_mb,
            'inference_extra_mb': peak_mb - rss_before_mb, 'latencies_ms': latencies,
            'raw_scores': [float(s) for s in scores[:SCORE_CHECK_IMAGES]]}


def _load_backend(backend: str, files: list[str], threads: int, scratch: Path,
                  input_size: tuple[int, int]) -> Any:
    """Return a function image -> raw score that runs the full predict path of ``backend``."""
    if backend == 'torch':
        from vad4space_ros.deploy.loading import load_model
        detector = load_model(files[0])
        return lambda image: detector.predict(image).raw_score
    if backend in ('onnxruntime', 'openvino'):
        from vad4space_ros.deploy.loading import load_model
        detector = load_model(files[0], backend, threads)
        return lambda image: detector.predict(image).raw_score
    if backend == 'anomalib-torch':
        from anomalib.deploy import TorchInferencer
        inferencer = TorchInferencer(files[0], device='cpu')
        return lambda image: float(inferencer.predict(image).pred_score.reshape(-1)[0])
    from anomalib.deploy import OpenVINOInferencer
    import cv2
    scratch.mkdir(parents=True, exist_ok=True)
    os.chdir(scratch)
    inferencer = OpenVINOInferencer(files[0], device='CPU',
                                    config={'INFERENCE_NUM_THREADS': threads})

    def predict(image: np.ndarray) -> float:
        # anomalib's OpenVINO export drops the Resize: the caller resizes (timed here).
        if image.shape[:2] != input_size:
            image = cv2.resize(image, input_size[::-1], interpolation=cv2.INTER_AREA)
        return float(np.asarray(inferencer.predict(image).pred_score).reshape(-1)[0])

    return predict


def _describe(model: Path) -> dict[str, Any]:
    if model.suffix == '.onnx':
        from vad4space_ros.deploy.loading import load_model
        metadata = load_model(model).metadata
    else:
        from vad4space_ros.deploy.loading import load_model
        metadata = load_model(model).metadata
    return {'method': metadata['method'], 'model_id': metadata['model_id'],
            'input_size': metadata['input_size'], 'export': metadata.get('export')}


def run_latency(args: argparse.Namespace) -> int:
    """Prepare every backend of every model, run the workers, print a table, write JSON."""
    backends = [b.strip() for b in args.backends.split(',')]
    unknown = set(backends) - set(BACKENDS)
    if unknown:
        raise ValueError(f'unknown backends {sorted(unknown)}; choose from {BACKENDS}')
    threads = [int(t) for t in args.threads.split(',')]
    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    images_file = work / 'images.npy'
    np.save(images_file, bench_images(args.images, args.size))
    rows = []
    for model in model_files(args.models):
        description = _describe(model)
        print(f'preparing {model.name} ({description["method"]})', flush=True)
        prepared = prepare(model, work, backends)
        for backend, files in prepared.items():
            for count in threads:
                row = {'model': str(model), **description, 'backend': backend,
                       'threads': count, 'images': args.images}
                if isinstance(files, dict):
                    rows.append({**row, **files})
                    continue
                row['footprint_mb'] = sum(Path(f).stat().st_size for f in files) / 1e6
                row.update(_run_in_worker(backend, files, count, description['input_size'],
                                          images_file, work, args))
                row['load_average'] = os.getloadavg()
                rows.append(row)
                _print_row(row)
                _write_report(rows, args)  # partial results survive an interrupted run
    _write_report(rows, args)
    print_table(rows)
    print(f'wrote {args.output}')
    return 0


def _write_report(rows: list[dict[str, Any]], args: argparse.Namespace) -> None:
    _add_comparisons(rows)
    report = {'created': time.strftime('%Y-%m-%dT%H:%M:%S'), 'size': args.size,
              'images': args.images, 'cpu_count': os.cpu_count(), 'rows': rows}
    Path(args.output).write_text(json.dumps(report, indent=1))


def _run_in_worker(backend: str, files: list[str], threads: int, input_size: list[int],
                   images: Path, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    request = {'backend': backend, 'files': files, 'threads': threads, 'images': str(images),
               'input_size': input_size,
               'warmup': args.warmup, 'scratch': str(work / 'scratch')}
    env = {**os.environ, 'OMP_NUM_THREADS': str(threads), 'TRUST_REMOTE_CODE': '1',
           'MKL_NUM_THREADS': str(threads)}
    worker = [sys.executable, '-m', __name__, json.dumps(request)]
    result = subprocess.run(worker, env=env, capture_output=True, text=True, timeout=args.timeout)
    lines = [line for line in result.stdout.splitlines() if line.startswith('{')]
    if result.returncode != 0 or not lines:
        return {'error': (result.stderr.strip().splitlines() or ['worker failed'])[-1][:300]}
    measured = json.loads(lines[-1])
    latencies = np.asarray(measured['latencies_ms'])
    return {**measured, 'median_ms': float(np.median(latencies)),
            'p95_ms': float(np.percentile(latencies, 95)), 'mean_ms': float(latencies.mean())}


def _add_comparisons(rows: list[dict[str, Any]]) -> None:
    """Add speed-up vs anomalib's TorchInferencer and score agreement vs our torch path."""
    def find(model_id: str, backend: str, threads: int) -> dict[str, Any] | None:
        return next((r for r in rows if r['model_id'] == model_id and r['backend'] == backend
                     and r['threads'] == threads and 'median_ms' in r), None)

    for row in rows:
        if 'median_ms' not in row:
            continue
        source = (row.get('export') or {}).get('source_model_id', row['model_id'])
        baseline = find(source, 'anomalib-torch', row['threads'])
        if baseline:
            row['speedup_vs_anomalib_torch'] = baseline['median_ms'] / row['median_ms']
        reference = find(row['model_id'], 'torch', row['threads'])
        if reference:
            ours, theirs = np.asarray(row['raw_scores']), np.asarray(reference['raw_scores'])
            row['score_rel_diff'] = float(
                np.max(np.abs(ours - theirs) / np.maximum(np.abs(theirs), 1e-12)))


def _print_row(row: dict[str, Any]) -> None:
    if 'median_ms' in row:
        print(f'  {row["backend"]:<18} {row["threads"]} thr: median {row["median_ms"]:.1f} ms, '
              f'p95 {row["p95_ms"]:.1f} ms, peak {row["peak_mb"]:.0f} MB', flush=True)
    else:
        print(f'  {row["backend"]:<18} {row["threads"]} thr: {row["error"]}', flush=True)


def print_table(rows: list[dict[str, Any]]) -> None:
    """Print one line per (model, backend, threads)."""
    header = (f'{"method":<10} {"model":<28} {"backend":<18} {"thr":>3} {"median":>8} '
              f'{"p95":>8} {"x anomalib":>10} {"peak MB":>8} {"disk MB":>8} {"score diff":>10}')
    print(header)
    print('-' * len(header))
    for row in rows:
        name = Path(row['model']).name[:28]
        if 'median_ms' not in row:
            print(f'{row["method"]:<10} {name:<28} {row["backend"]:<18} {row["threads"]:>3} '
                  f'failed: {row.get("error", "")[:60]}')
            continue
        speedup = row.get('speedup_vs_anomalib_torch')
        diff = row.get('score_rel_diff')
        print(f'{row["method"]:<10} {name:<28} {row["backend"]:<18} {row["threads"]:>3} '
              f'{row["median_ms"]:>8.1f} {row["p95_ms"]:>8.1f} '
              f'{(f"{speedup:.1f}x" if speedup else "-"):>10} {row["peak_mb"]:>8.0f} '
              f'{row["footprint_mb"]:>8.1f} {(f"{diff:.1e}" if diff is not None else "-"):>10}')


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``bench latency``."""
    bench = subparsers.add_parser('bench', help='benchmarks')
    commands = bench.add_subparsers(dest='bench_command', required=True)
    latency = commands.add_parser(
        'latency', help="latency/memory/footprint: our paths vs anomalib's inferencers")
    latency.add_argument('--models', nargs='+', required=True,
                         help='model files (.safetensors/.onnx) or folders of them')
    latency.add_argument('--images', type=int, default=50, help='timed images per backend')
    latency.add_argument('--warmup', type=int, default=5)
    latency.add_argument('--size', type=int, default=256, help='image side in pixels')
    latency.add_argument('--threads', default=f'1,{os.cpu_count()}',
                         help='comma-separated thread counts')
    latency.add_argument('--backends', default=','.join(BACKENDS))
    latency.add_argument('--work-dir', default='bench_latency',
                         help='exports, images and scratch files go here')
    latency.add_argument('--output', default='latency.json')
    latency.add_argument('--timeout', type=float, default=1800, help='per worker, seconds')
    latency.set_defaults(func=run_latency)


if __name__ == '__main__':
    print(json.dumps(run_worker(json.loads(sys.argv[1]))))
