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

"""Model footprint, per-image latency and peak memory of a fitted detector (Table III).

Definitions (all on the deployable path, :meth:`TorchDetector.predict` on one image):

- ``artifact_mb``: size of the ``.safetensors`` model file on disk (MB = 10^6 bytes).
- ``state_mb``: the paper's "memory footprint": bytes of all parameters and buffers (backbone,
  memory banks, statistics, heads) in the model's state_dict, each storage counted once.
- ``latency_ms_median`` / ``latency_ms_mean``: wall time of ``predict`` (preprocessing, forward
  pass, map upsampling, score calibration) on single images (batch 1), after ``warmup`` calls,
  with ``threads`` torch threads.
- ``peak_memory_mb``: mean over images of the *extra* resident memory one ``predict`` needs:
  the process's peak RSS (``VmHWM``) during the call minus its RSS just before it, with the
  peak reset before every image (``/proc/self/clear_refs``). It counts activations and
  temporaries that touch new pages; memory the allocator kept from earlier calls is not
  counted again. ``model_rss_mb``: RSS growth from loading the model and warming up (weights +
  runtime caches). tracemalloc is not used: it cannot see torch's CPU allocations.

The measurement runs in a fresh subprocess per model (``python -m`` this module), so models
measured earlier do not leave memory behind, with ``MALLOC_MMAP_THRESHOLD_=131072`` so large
buffers come from (and return to) the OS each call instead of a reused heap.
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
import subprocess
import sys
import time
from typing import Any, Sequence

MEGABYTE = 1e6


def process_memory_mb(pid: int | str = 'self', field: str = 'VmRSS') -> float:
    """Return a memory figure of ``/proc/<pid>/status`` (VmRSS, VmHWM, ...) in MB (10^6 B).

    Raise KeyError when the status file has no such field, OSError when the process is gone.
    """
    for line in Path(f'/proc/{pid}/status').read_text().splitlines():
        if line.startswith(field + ':'):
            return int(line.split()[1]) * 1024 / MEGABYTE
    raise KeyError(f'/proc/{pid}/status has no field {field!r}')


def rss_mb() -> float:
    """Return this process's resident memory in MB."""
    return process_memory_mb('self', 'VmRSS')


def peak_rss_mb() -> float:
    """Return this process's peak resident memory (since the last reset) in MB."""
    return process_memory_mb('self', 'VmHWM')


def reset_peak_rss() -> None:
    """Reset the peak-RSS counter (Linux >= 4.0); raise OSError where unsupported."""
    Path('/proc/self/clear_refs').write_text('5')


def state_bytes(model: Any) -> int:
    """Return the bytes of a torch model's parameters and buffers, each storage once."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for tensor in model.state_dict().values():
        key = (tensor.untyped_storage().data_ptr(), tensor.untyped_storage().nbytes())
        if key not in seen:
            seen.add(key)
            total += tensor.untyped_storage().nbytes()
    return total


def footprint(model_path: Path, model: Any) -> dict[str, float]:
    """Return artifact size on disk and parameters+buffers size, in MB."""
    return {'artifact_mb': Path(model_path).stat().st_size / MEGABYTE,
            'state_mb': state_bytes(model) / MEGABYTE}


def measure_in_process(model_path: Path, image_paths: Sequence[Path], warmup: int,
                       threads: int) -> dict[str, float]:
    """Load the model here and time/measure ``predict`` on each image (see module docstring)."""
    import numpy as np
    import torch

    from vad4space_ros.data.samples import load_rgb
    from vad4space_ros.deploy.loading import load_model

    torch.set_num_threads(threads)
    images = [load_rgb(path) for path in image_paths]
    if not images:
        raise ValueError('resource measurement needs at least one image')
    base_rss = rss_mb()
    detector = load_model(model_path)
    for index in range(warmup):
        detector.predict(images[index % len(images)])
    model_rss = rss_mb() - base_rss
    latencies, peaks = [], []
    for image in images:
        reset_peak_rss()
        before = rss_mb()
        start = time.perf_counter()
        detector.predict(image)
        latencies.append((time.perf_counter() - start) * 1000.0)
        peaks.append(max(0.0, peak_rss_mb() - before))
    return {**footprint(model_path, detector.model),
            'latency_ms_median': float(np.median(latencies)),
            'latency_ms_mean': float(np.mean(latencies)),
            'peak_memory_mb': float(np.mean(peaks)),
            'peak_memory_mb_max': float(np.max(peaks)),
            'model_rss_mb': model_rss,
            'images': len(images), 'warmup': warmup, 'threads': threads}


def measure(model_path: Path, image_paths: Sequence[Path], warmup: int = 3,
            threads: int = 1, timeout_s: float = 600.0) -> dict[str, float]:
    """Measure a model in a fresh subprocess; return the figures of the module docstring."""
    environment = dict(os.environ, OMP_NUM_THREADS=str(threads),
                       MALLOC_MMAP_THRESHOLD_='131072')
    command = [sys.executable, '-m', __name__, '--model', str(model_path),
               '--warmup', str(warmup), '--threads', str(threads),
               *[str(path) for path in image_paths]]
    done = subprocess.run(command, capture_output=True, text=True, env=environment,
                          timeout=timeout_s, check=False)
    if done.returncode != 0:
        raise RuntimeError(f'resource measurement of {model_path} failed '
                           f'(exit {done.returncode}): {done.stderr[-2000:]}')
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    """Measure one model and print its figures as one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--model', type=Path, required=True)
    parser.add_argument('--warmup', type=int, default=3)
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('images', type=Path, nargs='+')
    args = parser.parse_args(argv)
    figures = measure_in_process(args.model, args.images, args.warmup, args.threads)
    print(json.dumps(figures))
    return 0


if __name__ == '__main__':
    sys.exit(main())
