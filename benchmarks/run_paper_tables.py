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

r"""Run ``vad4space benchmark`` for both datasets and join their tables into one markdown file.

Without ``--lroc-root`` / ``--mastcam-root`` each dataset is generated (SYNTHETIC, small) under
``OUT/<dataset>/``. The settings used for the tables in the project notes (a shared 2-core CPU)::

    OMP_NUM_THREADS=1 MALLOC_MMAP_THRESHOLD_=131072 \
    VAD4SPACE_MOBILENETV2_ONNX=.../mobilenetv2-12-int8.onnx \
    .venv/bin/python benchmarks/run_paper_tables.py --out /work/bench_out \
        --input-size 128 --max-epochs 1 --max-train 50 --latency-images 10

Timings depend on the machine and its load; the tables say which data they come from.
"""
from __future__ import annotations

import argparse
from pathlib import Path
import subprocess
import sys

DATASETS = ('lroc', 'mastcam')


def main(argv: list[str] | None = None) -> int:
    """Run both datasets (one subprocess each, in turn) and write OUT/paper_tables.md."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out', type=Path, required=True)
    parser.add_argument('--lroc-root')
    parser.add_argument('--mastcam-root')
    args, passthrough = parser.parse_known_args(argv)
    cli = str(Path(sys.executable).parent / 'vad4space')
    sections = []
    for dataset in DATASETS:
        out = args.out / dataset
        command = [cli, 'benchmark', '--dataset', dataset, '--out', str(out), *passthrough]
        root = getattr(args, f'{dataset}_root')
        if root:
            command += ['--root', root]
        print('$', ' '.join(command), flush=True)
        if subprocess.run(command, check=False).returncode != 0:
            print(f'{dataset} benchmark failed', file=sys.stderr)
            return 1
        sections.append(f'## {dataset.upper()}\n\n' + (out / 'tables.md').read_text())
    target = args.out / 'paper_tables.md'
    target.write_text('\n'.join(sections))
    print(f'wrote {target}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
