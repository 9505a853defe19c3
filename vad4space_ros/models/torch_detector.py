"""The deployable detector: one safetensors file holding a fitted model and its metadata.

The artifact is a ``.safetensors`` file (tensors only, no pickle, so loading an untrusted file
cannot execute code). Its header metadata key ``vad4space`` holds JSON: method, backbone,
weight source, input size, normalisation, calibration and versions. Loading rebuilds the
anomalib architecture with random backbone weights and then loads the full state_dict strictly.
"""
from __future__ import annotations

from dataclasses import dataclass
import json
from pathlib import Path
import time
from typing import Any, Sequence

import numpy as np
from safetensors import safe_open, SafetensorError
from safetensors.torch import save_file
import torch
from torch import nn
from torch.nn import functional as F

from vad4space_ros.deploy.artifact import ARTIFACT_FORMAT, ArtifactError, METADATA_KEY
from vad4space_ros.deploy.calibration import CALIBRATED_THRESHOLD, Calibration
from vad4space_ros.deploy.preprocess import as_rgb, to_model_input
from vad4space_ros.models.backbones import backbone_weights, get_backbone, state_fingerprint
from vad4space_ros.models.methods import build_method, get_method


@dataclass
class Prediction:
    """The detector's output for one image."""

    score: float
    raw_score: float
    is_anomaly: bool
    anomaly_map: np.ndarray
    embedding: np.ndarray
    latency_ms: float


class AnomalyDetector:
    """A fitted anomalib model with calibration, ready for inference on RGB images."""

    def __init__(self, model: nn.Module, metadata: dict[str, Any]) -> None:
        self.model = model.eval()
        self.metadata = metadata
        self._embedding: torch.Tensor | None = None
        feature_backbone(model).register_forward_hook(self._keep_embedding)

    @property
    def calibration(self) -> Calibration:
        """Threshold and score scale fitted on held-out normal images."""
        return Calibration(**self.metadata['calibration'])

    @property
    def method(self) -> str:
        """Name of the VAD method."""
        return self.metadata['method']

    @property
    def backbone(self) -> str:
        """Name of the backbone."""
        return self.metadata['backbone']

    @property
    def model_id(self) -> str:
        """Identifier of this fitted model (method, backbone and a hash of its tensors)."""
        return self.metadata['model_id']

    @property
    def input_size(self) -> tuple[int, int]:
        """Model input (height, width)."""
        return tuple(self.metadata['input_size'])

    def _keep_embedding(self, _module: nn.Module, _inputs: Any, outputs: Any) -> None:
        deepest = list(outputs.values())[-1] if isinstance(outputs, dict) else outputs[-1]
        self._embedding = F.normalize(deepest.mean(dim=(2, 3)), dim=1)

    @torch.inference_mode()
    def infer(self, images: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Return raw scores (B), maps at model resolution (BxHxW) and embeddings (BxD)."""
        spec = get_backbone(self.metadata['backbone'])
        output = self.model(torch.tensor(  # a torch-allocated copy: aligned like torch's own
            to_model_input(images, self.input_size, spec.mean, spec.std)))
        maps = output.anomaly_map
        if maps.ndim == 4:
            maps = maps[:, 0]
        scores = output.pred_score.reshape(-1)
        return (scores.float().numpy(), maps.float().numpy(),
                self._embedding.float().numpy())

    def raw_scores(self, images: Sequence[np.ndarray], batch_size: int = 16) -> np.ndarray:
        """Raw scores of many images, in batches."""
        chunks = [self.infer(images[i:i + batch_size])[0]
                  for i in range(0, len(images), batch_size)]
        return np.concatenate(chunks) if chunks else np.zeros(0, np.float32)

    def predict(self, image: np.ndarray,
                threshold: float = CALIBRATED_THRESHOLD) -> Prediction:
        """Score one HxWx3 (or HxW) uint8 image; ``threshold`` is on the calibrated scale."""
        rgb = as_rgb(image)
        start = time.perf_counter()
        raw, maps, embeddings = self.infer([rgb])
        anomaly_map = maps[0]
        if anomaly_map.shape != rgb.shape[:2]:
            anomaly_map = F.interpolate(
                torch.from_numpy(maps[:1, None]), size=rgb.shape[:2], mode='bilinear',
                align_corners=False)[0, 0].numpy()
        latency_ms = (time.perf_counter() - start) * 1000.0
        score = float(self.calibration.normalise(float(raw[0])))
        return Prediction(score=score, raw_score=float(raw[0]), is_anomaly=score >= threshold,
                          anomaly_map=anomaly_map.astype(np.float32), embedding=embeddings[0],
                          latency_ms=latency_ms)

    def save(self, path: str | Path) -> Path:
        """Write the artifact atomically; return its path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tensors = detached_state(self.model)
        temporary = path.with_name(path.name + '.partial')
        save_file(tensors, str(temporary), metadata={METADATA_KEY: json.dumps(self.metadata)})
        temporary.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> 'AnomalyDetector':
        """Load an artifact written by :meth:`save`; raise ArtifactError when unusable.

        A ``.onnx`` file (see :mod:`.export`) loads as a :class:`.runtime.ExportedDetector`
        with the same interface, run by ``VAD4SPACE_RUNTIME`` (default onnxruntime).
        """
        path = Path(path)
        if cls is AnomalyDetector and path.suffix.lower() == '.onnx':
            from vad4space_ros.deploy.onnx_detector import default_runtime, ExportedDetector
            return ExportedDetector.load(path, default_runtime())
        if not path.is_file():
            raise ArtifactError(f'model file not found: {path}')
        try:
            with safe_open(str(path), framework='pt') as artifact:
                header = artifact.metadata() or {}
                state = {key: artifact.get_tensor(key) for key in artifact.keys()}
        except (SafetensorError, OSError, ValueError) as error:
            raise ArtifactError(f'{path} is not a readable vad4space model: {error}') from None
        metadata = parse_metadata(path, header)
        try:
            return cls.from_state(metadata, state)
        except (RuntimeError, ValueError, KeyError) as error:
            raise ArtifactError(f'{path} does not match its metadata: {error}') from None

    @classmethod
    def from_state(cls, metadata: dict[str, Any],
                   state: dict[str, torch.Tensor]) -> 'AnomalyDetector':
        """Rebuild the architecture named in ``metadata`` and load ``state`` strictly."""
        with backbone_weights(None):
            module = build_method(metadata['method'], get_backbone(metadata['backbone']),
                                  tuple(metadata['input_size']), metadata.get('method_options'))
        module.model.load_state_dict(state, strict=True)
        return cls(module.model, metadata)


def parse_metadata(path: Path, header: dict[str, str]) -> dict[str, Any]:
    """Validate the JSON metadata of an artifact header; raise ArtifactError when unusable."""
    try:
        metadata = json.loads(header[METADATA_KEY])
    except (KeyError, json.JSONDecodeError):
        raise ArtifactError(f'{path} has no vad4space metadata') from None
    if metadata.get('format') != ARTIFACT_FORMAT:
        raise ArtifactError(
            f'{path}: unsupported format {metadata.get("format")!r}, expected {ARTIFACT_FORMAT}')
    for key in ('method', 'backbone', 'input_size', 'calibration', 'model_id'):
        if key not in metadata:
            raise ArtifactError(f'{path}: metadata lacks {key!r}')
    try:
        get_method(metadata['method'])
        get_backbone(metadata['backbone'])
    except ValueError as error:
        raise ArtifactError(f'{path}: {error}') from None
    return metadata


def detached_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """Return a contiguous CPU copy of a model's state_dict, as stored in artifacts."""
    return {key: value.detach().cpu().contiguous().clone()
            for key, value in model.state_dict().items()}


def feature_backbone(model: nn.Module) -> nn.Module:
    """Return the first (pretrained) timm feature extractor inside an anomalib model."""
    for module in model.modules():
        if hasattr(module, 'feature_info') and not hasattr(module, 'feature_extractor'):
            return module
    raise ValueError(f'{type(model).__name__} has no timm feature extractor')


def build_metadata(method: str, backbone: str, weights: str, weights_fingerprint: str,
                   input_size: tuple[int, int], calibration: Calibration,
                   model: nn.Module, extra: dict[str, Any]) -> dict[str, Any]:
    """Assemble the artifact metadata for a freshly fitted model."""
    import anomalib
    digest = state_fingerprint(model.state_dict())[:10]
    return {
        'format': ARTIFACT_FORMAT,
        'method': method,
        'backbone': backbone,
        'weights': weights,
        'weights_fingerprint': weights_fingerprint,
        'input_size': list(input_size),
        'normalisation': {'mean': list(get_backbone(backbone).mean),
                          'std': list(get_backbone(backbone).std)},
        'calibration': calibration.to_dict(),
        'model_id': f'{method}-{backbone}-{digest}',
        'anomalib_version': anomalib.__version__,
        'torch_version': torch.__version__,
        **extra,
    }
