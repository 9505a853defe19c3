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

"""Run an exported ONNX detector (``vad4space export``) with ONNX Runtime or OpenVINO.

The exported graph takes the normalised image batch and returns ``pred_score``,
``anomaly_map`` and ``embedding``; the file's ``metadata_props`` carry the vad4space metadata
(:mod:`.artifact`). ONNX is a protobuf, not pickle: loading an untrusted file executes no
Python code. OpenVINO reads the same ``.onnx`` file; no model cache is written.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from vad4space_ros.deploy.artifact import ArtifactError, EXPORT_FORMAT, parse_metadata
from vad4space_ros.deploy.detector import Detector, Outputs

RUNTIMES = ('onnxruntime', 'openvino')
RUNTIME_ENV = 'VAD4SPACE_RUNTIME'
Runner = Callable[[np.ndarray], Sequence[np.ndarray]]


class OnnxDetector(Detector):
    """A detector whose exported graph runs in ONNX Runtime or OpenVINO."""

    def __init__(self, run: Runner, metadata: dict[str, Any], runtime: str) -> None:
        super().__init__(metadata)
        self.runtime = runtime
        self._run = run

    def run(self, batch: np.ndarray) -> Outputs:
        """Run the graph on a normalised Bx3xHxW batch."""
        scores, maps, embeddings = self._run(batch)
        return scores, maps, embeddings


def open_onnx(path: Path, runtime: str | None = None,
              threads: int | None = None) -> tuple[Runner, dict[str, Any], str]:
    """Open an exported model; return its runner, validated metadata and the runtime used."""
    runtime = runtime or default_runtime()
    if runtime not in RUNTIMES:
        raise ValueError(f'unknown runtime {runtime!r}; choose one of {RUNTIMES}')
    if not path.is_file():
        raise ArtifactError(f'model file not found: {path}')
    loader = _onnxruntime_session if runtime == 'onnxruntime' else _openvino_model
    try:
        run, header = loader(path, threads)
    except Exception as error:  # the runtimes raise their own (non-standard) error types
        raise ArtifactError(f'{path} is not a readable exported model: {error}') from None
    metadata = parse_metadata(path, header)
    if metadata.get('export', {}).get('format') != EXPORT_FORMAT:
        raise ArtifactError(f'{path}: metadata lacks the {EXPORT_FORMAT} export section')
    return run, metadata, runtime


def _onnxruntime_session(path: Path, threads: int | None) -> tuple[Runner, dict[str, str]]:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads or 0
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    session = onnxruntime.InferenceSession(str(path), options,
                                           providers=['CPUExecutionProvider'])
    input_name = session.get_inputs()[0].name
    header = session.get_modelmeta().custom_metadata_map

    def run(batch: np.ndarray) -> Sequence[np.ndarray]:
        return session.run(None, {input_name: batch})

    return run, header


def _openvino_model(path: Path, threads: int | None) -> tuple[Runner, dict[str, str]]:
    import openvino

    core = openvino.Core()
    model = core.read_model(str(path))
    header = {}
    if model.has_rt_info(['framework', 'vad4space']):
        header['vad4space'] = model.get_rt_info(['framework', 'vad4space']).astype(str)
    # f32: on CPUs with bf16 units (AVX512-BF16, AMX) OpenVINO would otherwise compute in bf16,
    # which moved PatchCore scores by 4-8% here, off the f32 calibration stored in the model.
    config: dict[str, Any] = {'PERFORMANCE_HINT': 'LATENCY', 'INFERENCE_PRECISION_HINT': 'f32'}
    if threads:
        config['INFERENCE_NUM_THREADS'] = threads
    compiled = core.compile_model(model, 'CPU', config)
    request = compiled.create_infer_request()
    outputs = compiled.outputs

    def run(batch: np.ndarray) -> Sequence[np.ndarray]:
        results = request.infer({0: batch})
        return [np.array(results[output]) for output in outputs]

    return run, header


def default_runtime() -> str:
    """Runtime chosen by ``VAD4SPACE_RUNTIME`` (default onnxruntime)."""
    runtime = os.environ.get(RUNTIME_ENV, 'onnxruntime')
    if runtime not in RUNTIMES:
        raise ValueError(f'{RUNTIME_ENV}={runtime!r}; choose one of {RUNTIMES}')
    return runtime
