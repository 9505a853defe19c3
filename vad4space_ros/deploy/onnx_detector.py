"""Run an exported ONNX detector (see :mod:`.export`) with ONNX Runtime or OpenVINO.

:class:`ExportedDetector` has the interface of :class:`.detector.AnomalyDetector` (``predict``,
``infer``, ``raw_scores``, ``metadata``, ``calibration``, ``method``, ``model_id``, ...), so
the detector node loads either file type through ``AnomalyDetector.load``. OpenVINO reads the
same ``.onnx`` file; no model cache is written (OpenVINO's CACHE_DIR stays unset).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from vad4space_ros.deploy.preprocess import to_model_input
from vad4space_ros.models.backbones import get_backbone
from vad4space_ros.models.torch_detector import AnomalyDetector, ArtifactError, parse_metadata

RUNTIMES = ('onnxruntime', 'openvino')
EXPORT_SUFFIX = '.onnx'


class ExportedDetector(AnomalyDetector):
    """A detector whose model runs in ONNX Runtime or OpenVINO instead of torch."""

    def __init__(self, run: Callable[[np.ndarray], Sequence[np.ndarray]],
                 metadata: dict[str, Any], runtime: str, path: Path) -> None:
        self.model = None
        self.metadata = metadata
        self.runtime = runtime
        self.path = path
        self._run = run

    def infer(self, images: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Return raw scores (B), maps at model resolution (BxHxW) and embeddings (BxD)."""
        spec = get_backbone(self.metadata['backbone'])
        batch = to_model_input(images, self.input_size, spec.mean, spec.std)
        scores, maps, embeddings = self._run(batch)
        return (np.asarray(scores, np.float32).reshape(-1), np.asarray(maps, np.float32),
                np.asarray(embeddings, np.float32))

    def save(self, path: str | Path) -> Path:
        """Copy the exported file to ``path``; return it."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(path.name + '.partial')
        temporary.write_bytes(self.path.read_bytes())
        temporary.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path, runtime: str = 'onnxruntime',
             threads: int | None = None) -> 'ExportedDetector':
        """Load an exported ``.onnx`` detector; raise ArtifactError when unusable."""
        path = Path(path)
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
        if metadata.get('export', {}).get('format') is None:
            raise ArtifactError(f'{path}: metadata lacks the export section')
        return cls(run, metadata, runtime, path)


def _onnxruntime_session(path: Path, threads: int | None) -> tuple[Callable, dict[str, str]]:
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


def _openvino_model(path: Path, threads: int | None) -> tuple[Callable, dict[str, str]]:
    import onnx
    import openvino

    proto = onnx.load(str(path), load_external_data=False)
    header = {entry.key: entry.value for entry in proto.metadata_props}
    del proto
    core = openvino.Core()
    config: dict[str, Any] = {'PERFORMANCE_HINT': 'LATENCY'}
    if threads:
        config['INFERENCE_NUM_THREADS'] = threads
    compiled = core.compile_model(core.read_model(str(path)), 'CPU', config)
    request = compiled.create_infer_request()
    outputs = compiled.outputs

    def run(batch: np.ndarray) -> Sequence[np.ndarray]:
        results = request.infer({0: batch})
        return [np.array(results[output]) for output in outputs]

    return run, header


def default_runtime() -> str:
    """Runtime chosen by ``VAD4SPACE_RUNTIME`` (default onnxruntime)."""
    runtime = os.environ.get('VAD4SPACE_RUNTIME', 'onnxruntime')
    if runtime not in RUNTIMES:
        raise ValueError(f'VAD4SPACE_RUNTIME={runtime!r}; choose one of {RUNTIMES}')
    return runtime
