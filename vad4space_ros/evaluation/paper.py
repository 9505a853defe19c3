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

"""Reference numbers from the VAD4Space paper (Tables I-III), measured on the REAL datasets.

Our benchmark runs (on the generated stand-in data here) are printed beside these for orientation
only: different images, sizes and hardware, so the numbers are not comparable as results.
Table I is LROC (with img-ACC for setting 1), Table II Mastcam, Table III model resources
(Intel Core i5-9600K CPU). The paper's img-F1 comes from anomalib's F1AdaptiveThreshold, i.e.
our ``img_f1_oracle``.
"""
from __future__ import annotations

METRIC_KEYS = ('img_auroc', 'img_f1_oracle', 'auc_pr')


def _rows(text: str, keys: tuple[str, ...]) -> dict[str, dict[int, dict[str, float]]]:
    table: dict[str, dict[int, dict[str, float]]] = {}
    for line in text.strip().splitlines():
        method, *values = line.split()
        numbers = [float(v) for v in values]
        first = len(keys)
        table[method] = {1: dict(zip(keys, numbers[:first])),
                         2: dict(zip(METRIC_KEYS, numbers[first:first + 3])),
                         3: dict(zip(METRIC_KEYS, numbers[first + 3:first + 6]))}
    return table


# Columns: setting 1 (ROC F1 PR [ACC]), setting 2 (ROC F1 PR), setting 3 (ROC F1 PR).
PAPER_METRICS = {
    'lroc': _rows("""
        padim     0.68 0.53 0.52 0.73 0.71 0.28 0.16 0.63 0.21 0.14
        cfa       0.66 0.52 0.45 0.71 0.69 0.21 0.11 0.63 0.18 0.08
        rd4ad     0.52 0.49 0.32 0.69 0.58 0.14 0.07 0.47 0.48 0.29
        simplenet 0.51 0.48 0.33 0.69 0.51 0.14 0.06 0.46 0.11 0.05
        patchcore 0.62 0.47 0.40 0.59 0.65 0.21 0.11 0.64 0.18 0.07
        stfpm     0.58 0.47 0.32 0.52 0.59 0.15 0.07 0.45 0.12 0.05
        fastflow  0.70 0.52 0.47 0.70 0.67 0.17 0.11 0.61 0.23 0.13
        """, METRIC_KEYS + ('img_acc_oracle',)),
    'mastcam': _rows("""
        padim     0.70 0.72 0.68 0.73 0.22 0.12 0.71 0.22 0.10
        cfa       0.68 0.68 0.61 0.68 0.22 0.09 0.62 0.15 0.07
        rd4ad     0.66 0.73 0.65 0.66 0.22 0.12 0.65 0.20 0.10
        simplenet 0.60 0.69 0.59 0.61 0.16 0.10 0.62 0.19 0.12
        patchcore 0.81 0.79 0.75 0.80 0.25 0.16 0.40 0.11 0.04
        stfpm     0.50 0.51 0.51 0.51 0.11 0.05 0.70 0.20 0.13
        fastflow  0.72 0.71 0.70 0.66 0.19 0.12 0.67 0.21 0.13
        """, METRIC_KEYS),
}

# Table III: memory footprint (MB), peak CPU memory (MB), latency (ms).
PAPER_RESOURCES = {
    'padim': {'footprint_mb': 10.7, 'peak_memory_mb': 1.0, 'latency_ms': 40.0},
    'cfa': {'footprint_mb': 5.7, 'peak_memory_mb': 1.0, 'latency_ms': 18.0},
    'rd4ad': {'footprint_mb': 116.0, 'peak_memory_mb': 3.0, 'latency_ms': 41.0},
    'simplenet': {'footprint_mb': 11.5, 'peak_memory_mb': 3.0, 'latency_ms': 30.0},
    'patchcore': {'footprint_mb': 17.4, 'peak_memory_mb': 1.0, 'latency_ms': 28.0},
    'stfpm': {'footprint_mb': 10.4, 'peak_memory_mb': 3.0, 'latency_ms': 24.0},
    'fastflow': {'footprint_mb': 8.8, 'peak_memory_mb': 1.0, 'latency_ms': 27.0},
}


def paper_metric(dataset: str, method: str, setting: int, key: str) -> float | None:
    """Return the paper's value of one metric, or None when the paper does not report it."""
    return PAPER_METRICS.get(dataset, {}).get(method, {}).get(setting, {}).get(key)
