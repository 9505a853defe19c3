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

"""Time PatchCore's fit on the LROC training normals: anomalib's coreset vs training/coreset.py.

Usage (on a ``vad4space data generate lroc --size full`` root; SYNTHETIC data)::

    python benchmarks/patchcore_coreset.py --root /tmp/lroc_full [--baseline-seconds 120]

Steps, each timed: patch embeddings of the training normals (80% of them, as ``fit_detector``
holds 20% out for calibration), the vectorised coreset on that memory bank, and anomalib's
``KCenterGreedy`` on the same bank for ``--baseline-seconds`` (its projection, then as many greedy
steps as fit in the time; the full selection time is extrapolated from the step rate, which is
constant: every step is one full pass over the bank). With ``--fit``, also the end-to-end
``fit_detector`` wall time. Prints one JSON line and writes it to ``--out``.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
import time

from anomalib.data import ImageBatch
from anomalib.models.components import KCenterGreedy
import torch
from torch.utils.data import DataLoader

from vad4space_ros.data.datasets import load_dataset
from vad4space_ros.data.samples import NORMAL
from vad4space_ros.models.backbones import backbone_weights, get_backbone, load_backbone_state
from vad4space_ros.models.methods import build_method
from vad4space_ros.training.coreset import select_coreset
from vad4space_ros.training.fitting import fit_detector, FitConfig, ImageListDataset
from vad4space_ros.training.fitting import split_calibration


def _embeddings(paths: list[Path], size: int) -> torch.Tensor:
    spec = get_backbone('mobilenet_v2')
    with backbone_weights(load_backbone_state(spec, 'imagenet')):
        module = build_method('patchcore', spec, (size, size))
    model = module.model.train()
    loader = DataLoader(ImageListDataset(paths, (size, size), spec), batch_size=32,
                        collate_fn=ImageBatch.collate)
    with torch.no_grad():
        for batch in loader:
            model(batch.image)
    return torch.vstack(model.embedding_store)


def _baseline(bank: torch.Tensor, ratio: float, seconds: float) -> dict[str, float]:
    sampler = KCenterGreedy(bank, ratio)
    began = time.perf_counter()
    sampler.model.fit(bank)
    sampler.features = sampler.model.transform(bank)
    projection = time.perf_counter() - began
    index = torch.tensor(0)
    steps = 0
    began = time.perf_counter()
    while time.perf_counter() - began < seconds:
        sampler.update_distances(cluster_center=index)
        index = sampler.get_new_idx()
        sampler.min_distances.scatter_(0, index.unsqueeze(0).unsqueeze(1), 0.0)
        steps += 1
    per_step = (time.perf_counter() - began) / steps
    return {'anomalib_projection_s': round(projection, 1),
            'anomalib_dims': int(sampler.features.shape[1]),
            'anomalib_steps_timed': steps, 'anomalib_step_ms': round(per_step * 1e3, 2),
            'anomalib_coreset_s_extrapolated': round(projection
                                                     + per_step * sampler.coreset_size, 0)}


def main() -> None:
    """Run the timings of the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--root', required=True)
    parser.add_argument('--input-size', type=int, default=128)
    parser.add_argument('--ratio', type=float, default=0.1)
    parser.add_argument('--baseline-seconds', type=float, default=120.0)
    parser.add_argument('--fit', action='store_true', help='also time fit_detector end to end')
    parser.add_argument('--out', default='benchmarks/results/patchcore_coreset.json')
    args = parser.parse_args()
    torch.manual_seed(0)
    normals = [s.path for s in load_dataset('lroc', args.root).select('train', NORMAL)]
    train, _ = split_calibration(normals, 0.2, 0)
    result = {'synthetic': True, 'train_images': len(train), 'input_size': args.input_size,
              'ratio': args.ratio, 'threads': torch.get_num_threads()}
    began = time.perf_counter()
    bank = _embeddings(train, args.input_size)
    result.update(patches=bank.shape[0], dims=bank.shape[1],
                  embedding_s=round(time.perf_counter() - began, 1))
    print(json.dumps(result), flush=True)
    began = time.perf_counter()
    indices = select_coreset(bank, args.ratio)
    result.update(coreset_size=len(indices), fast_coreset_s=round(time.perf_counter() - began, 1))
    print(json.dumps(result), flush=True)
    result.update(_baseline(bank, args.ratio, args.baseline_seconds))
    result['speedup'] = round(result['anomalib_coreset_s_extrapolated']
                              / result['fast_coreset_s'], 1)
    del bank
    if args.fit:
        began = time.perf_counter()
        fit_detector(normals, FitConfig('patchcore', input_size=(args.input_size,) * 2))
        result['fit_detector_s'] = round(time.perf_counter() - began, 1)
    print(json.dumps(result), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + '\n')


if __name__ == '__main__':
    main()
