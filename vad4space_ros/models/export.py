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

"""Export a fitted detector to one self-describing ONNX file for CPU runtimes.

The exported graph takes the normalised image batch (``image``, Bx3xHxW float32, as prepared by
:func:`.preprocess.to_model_input`) and returns ``pred_score`` (B), ``anomaly_map`` (BxHxW at
model resolution) and ``embedding`` (BxD, the L2-normalised global-average-pooled deepest
backbone level, exactly what :class:`.detector.TorchDetector` hooks out for the downlink).
The vad4space metadata (method, backbone, input size, normalisation, calibration, plus an
``export`` section) is stored in the ONNX ``metadata_props`` under ``vad4space``, so the one
file is a complete detector: :mod:`.runtime` runs it with ONNX Runtime or OpenVINO. ONNX is a
protobuf, not pickle: loading an untrusted file executes no Python code.

Footprint options (all measured in the latency/accuracy benchmarks; none is on by default):

- anomalib's Gaussian blur of the anomaly map (a 2-D kernel, 33x33 for PaDiM/PatchCore) is
  exported as the equivalent pair of 1-D convolutions (the kernel is separable); same result up
  to float rounding, ~16x fewer multiply-adds.
- PaDiM's and PatchCore's map upsampling (bilinear resp. nearest) followed by that blur is
  one separable linear map from the feature grid (e.g. 32x32) to the image (256x256), so it is
  exported as ``rows @ map @ cols`` with the two small operator matrices computed from
  anomalib's own interpolation and blur kernel (same result up to float rounding; replaces the
  upsample and 33-tap convolutions over 65k pixels by ~2M multiply-adds).
- PatchCore's nearest-neighbour search (``n_neighbors=1``) takes the minimum of
  ``|b|^2 - 2 x.b`` over the memory bank and adds ``|x|^2`` and the square root to the minima
  only (anomalib forms every distance, clamps and square-roots the whole patch x bank matrix),
  and looks up the nearest bank entry only for each image's highest-scoring patch, the one
  patch the score's reweighting uses (anomalib takes an arg-min over every patch); the same
  scores and maps up to float rounding.
- PaDiM's inverse covariances are symmetric, so only their upper triangles are stored and the
  runtime unpacks them once at load (lossless up to float rounding; always on for PaDiM).
- ``weights_fp16``: large float initializers are stored as float16 and cast back to float32 in
  the graph (ONNX Runtime folds the cast at load, so arithmetic stays float32).
- ``padim_features`` / ``bank_entries``: keep a random subset of PaDiM's channels, or the first
  entries of PatchCore's memory bank; each equals fitting with the smaller setting
  (:mod:`.reduction`), and the threshold is then recalibrated on held-out normal images
  (required).
- int8 quantisation of an exported file (ONNX Runtime only) is in :mod:`.quantize`.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import asdict, dataclass
import json
from pathlib import Path
from typing import Any, Iterator, Sequence

from anomalib.models.components import GaussianBlur2d

import numpy as np
import onnx
from onnx import helper, numpy_helper, TensorProto
import torch
from torch import nn
from torch.nn import functional as F

from vad4space_ros.atomic_files import atomic_output
from vad4space_ros.deploy.artifact import EXPORT_FORMAT, METADATA_KEY
from vad4space_ros.deploy.calibration import Calibration
from vad4space_ros.deploy.ensemble import ENSEMBLE_SUFFIX, rewritten_manifest
from vad4space_ros.deploy.loading import load_onnx
from vad4space_ros.deploy.spectral import bands_to_rgb, FusedDetector
from vad4space_ros.models.backbones import backbone_weights, get_backbone
from vad4space_ros.models.methods import build_method
from vad4space_ros.models.reduction import reduce_model
from vad4space_ros.models.torch_detector import (
    detached_state, feature_backbone, load_artifact, TorchDetector)

INPUT_NAME = 'image'
FP16_SUFFIX = '__fp16'
"""Appended to the name of an initializer stored as float16 (``weights_fp16``)."""
OUTPUT_NAMES = ('pred_score', 'anomaly_map', 'embedding')
OPSET = 17
FP16_MIN_ELEMENTS = 1024


@dataclass(frozen=True)
class ExportOptions:
    """How to export: batch axis, storage precision, fewer PaDiM channels or bank entries."""

    dynamic_batch: bool = True
    weights_fp16: bool = False
    padim_features: int | None = None
    bank_entries: int | None = None
    seed: int = 0


class ExportGraph(nn.Module):
    """An anomalib torch model returning (pred_score, anomaly_map, embedding) for export."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model.eval()
        self._deepest: torch.Tensor | None = None
        feature_backbone(model).register_forward_hook(self._keep_deepest)

    def _keep_deepest(self, _module: nn.Module, _inputs: Any, outputs: Any) -> None:
        self._deepest = list(outputs.values())[-1] if isinstance(outputs, dict) else outputs[-1]

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Score a normalised batch; return scores, maps and embeddings."""
        output = self.model(image)
        embedding = F.normalize(self._deepest.mean(dim=(2, 3)), dim=1)
        maps = output.anomaly_map
        if maps.ndim == 4:
            maps = maps[:, 0]
        return output.pred_score.reshape(-1), maps, embedding


class PackedGaussian(nn.Module):
    """PaDiM's Gaussians with each symmetric inverse covariance stored as its upper triangle."""

    def __init__(self, mean: torch.Tensor, inv_covariance: torch.Tensor) -> None:
        super().__init__()
        channels = inv_covariance.shape[-1]
        rows, cols = torch.triu_indices(channels, channels)
        symmetric = (inv_covariance + inv_covariance.transpose(1, 2)) / 2
        position = torch.zeros(channels, channels, dtype=torch.long)
        position[rows, cols] = torch.arange(rows.numel())
        position[cols, rows] = torch.arange(rows.numel())
        self.channels = channels
        self.register_buffer('mean', mean.contiguous())
        self.register_buffer('packed', symmetric[:, rows, cols].contiguous())
        self.register_buffer('unpack_index', position.reshape(-1))

    @property
    def inv_covariance(self) -> torch.Tensor:
        """Return the full (positions x C x C) inverse covariances."""
        return self.packed[:, self.unpack_index].reshape(-1, self.channels, self.channels)


def _separable_blur(blur: GaussianBlur2d, image: torch.Tensor) -> torch.Tensor:
    """Apply ``blur``'s (normalised, separable) kernel as a column then a row convolution."""
    kernel = blur.kernel[:1, 0]
    column = kernel.sum(dim=2).reshape(1, 1, -1, 1).expand(blur.channels, -1, -1, -1)
    row = kernel.sum(dim=1).reshape(1, 1, 1, -1).expand(blur.channels, -1, -1, -1)
    batch, channels, height, width = image.shape
    if blur.padding == 'same':
        image = F.pad(image, blur.padding_shape, mode=blur.border_type)
    output = F.conv2d(F.conv2d(image, column, groups=blur.channels), row, groups=blur.channels)
    return output if blur.padding != 'same' else output.view(batch, channels, height, width)


def _axis_operator(source: int, target: int, mode: str, blur: GaussianBlur2d,
                   axis: int) -> torch.Tensor:
    """Return the target x source matrix of 1-D upsampling then blur along ``axis`` (0=rows)."""
    basis = torch.eye(source).reshape(source, 1, source, 1)
    extra = {'align_corners': False} if mode == 'bilinear' else {}
    upsampled = F.interpolate(basis, size=(target, 1), mode=mode, **extra).reshape(source, 1, -1)
    kernel = blur.kernel[:1, 0].sum(dim=2 - axis).reshape(1, 1, -1)
    padding = blur.padding_shape[2 * (1 - axis):2 * (1 - axis) + 2]
    blurred = F.conv1d(F.pad(upsampled, padding, mode=blur.border_type), kernel)
    return blurred.reshape(source, target).T.contiguous()


class SeparableMapResize(nn.Module):
    """Upsample a feature-grid map to the image and blur it, as ``rows @ map @ cols``."""

    def __init__(self, grid: tuple[int, int], size: tuple[int, int], mode: str,
                 blur: GaussianBlur2d) -> None:
        super().__init__()
        self.register_buffer('rows', _axis_operator(grid[0], size[0], mode, blur, 0))
        columns = _axis_operator(grid[1], size[1], mode, blur, 1)
        self.register_buffer('cols', columns.T.contiguous())

    def forward(self, grid_map: torch.Tensor, *_size: Any) -> torch.Tensor:
        """Map a Bx1xhxw grid map to the Bx1xHxW blurred image map."""
        return torch.matmul(torch.matmul(self.rows, grid_map), self.cols)


def install_separable_map_resize(model: nn.Module, size: tuple[int, int]) -> bool:
    """Replace PaDiM's/PatchCore's upsample+blur by :class:`SeparableMapResize`, in place."""
    generator = getattr(model, 'anomaly_map_generator', None)
    upsampling = {'PadimModel': 'bilinear', 'PatchcoreModel': 'nearest'}
    mode = upsampling.get(type(model).__name__)
    if mode is None or generator is None:
        return False
    with torch.inference_mode():
        levels = feature_backbone(model)(torch.zeros(1, 3, *size))
    first = list(levels.values())[0] if isinstance(levels, dict) else levels[0]
    generator.map_resize = SeparableMapResize(tuple(first.shape[-2:]), size, mode,
                                              generator.blur)
    # Instance attributes shadow the generator's methods (a Module value would be registered
    # as a submodule instead, and the class method would still be found first).
    if mode == 'bilinear':  # PaDiM: distance -> up_sample -> smooth_anomaly_map
        generator.up_sample = lambda distance, _size: distance
        generator.smooth_anomaly_map = generator.map_resize.forward
    else:  # PatchCore: compute_anomaly_map = interpolate + blur
        generator.compute_anomaly_map = generator.map_resize.forward
    return True


def install_minimum_first_search(model: nn.Module) -> bool:
    """Make PatchCore's 1-nearest-neighbour search cheaper, in place (same scores).

    Only the minima over the memory bank are square-rooted, and the nearest bank entry is found
    for the highest-scoring patch of each image only (the one patch whose neighbourhood
    reweights the score), instead of an arg-min over every patch x bank distance.
    """
    if type(model).__name__ != 'PatchcoreModel':
        return False
    original_search, original_score = model.nearest_neighbors, model.compute_anomaly_score

    def partial_distances(embedding: torch.Tensor) -> torch.Tensor:
        bank = model.memory_bank
        return torch.matmul(embedding * -2.0, bank.T) + bank.pow(2).sum(dim=1)

    def nearest_neighbors(embedding: torch.Tensor,
                          n_neighbors: int) -> tuple[torch.Tensor, torch.Tensor]:
        if n_neighbors != 1:
            return original_search(embedding, n_neighbors)
        squared = partial_distances(embedding).amin(dim=1) + embedding.pow(2).sum(dim=1)
        # Locations are left unset (zeros): compute_anomaly_score below finds the one it uses.
        return squared.clamp_min(0).sqrt(), torch.zeros_like(squared, dtype=torch.long)

    def compute_anomaly_score(patch_scores: torch.Tensor, _locations: torch.Tensor,
                              embedding: torch.Tensor) -> torch.Tensor:
        if model.num_neighbors == 1:
            return patch_scores.amax(1)
        batch, patches = patch_scores.shape
        highest = patch_scores.argmax(dim=1)
        features = embedding.reshape(batch, patches, -1)[torch.arange(batch), highest]
        nearest = partial_distances(features).argmin(dim=1)
        return original_score(patch_scores, nearest[:, None].expand(batch, patches), embedding)

    model.nearest_neighbors = nearest_neighbors
    model.compute_anomaly_score = compute_anomaly_score
    return True


@contextmanager
def separable_gaussian_blur() -> Iterator[None]:
    """Within the block, every anomalib GaussianBlur2d runs as two 1-D convolutions."""
    original = GaussianBlur2d.forward
    GaussianBlur2d.forward = _separable_blur
    try:
        yield
    finally:
        GaussianBlur2d.forward = original


def rebuild_module(detector: TorchDetector) -> nn.Module:
    """Return a fresh anomalib lightning module holding the detector's fitted weights."""
    metadata = detector.metadata
    with backbone_weights(None):
        module = build_method(metadata['method'], get_backbone(metadata['backbone']),
                              tuple(metadata['input_size']), metadata.get('method_options'))
    module.model.load_state_dict(detached_state(detector.model), strict=True)
    return module.eval()


def export_onnx(detector: TorchDetector | FusedDetector, path: str | Path,
                options: ExportOptions = ExportOptions(),
                calibration_images: Sequence[np.ndarray] | None = None) -> Path:
    """Write ``detector`` as an ONNX file with its metadata; return the path.

    ``calibration_images`` (held-out normal RGB images) are required when the export changes
    the scores (``padim_features``, ``bank_entries``; see :mod:`.reduction`): the threshold is
    then refitted on the exported model.
    A fused model exports its RGB branch's graph; the RX statistics (F means, FxF inverse
    covariance for F = 6 bands or 3 colours) go into the metadata's ``spectral`` section, so
    the one file is the whole fused detector.
    """
    path = Path(path)
    metadata = json.loads(json.dumps(detector.metadata))
    reduces = options.padim_features is not None or options.bank_entries is not None
    if isinstance(detector, FusedDetector):
        if reduces:
            raise ValueError('padim_features and bank_entries cannot re-calibrate a fused '
                             'model: export it without, or export the RGB model alone')
        metadata['spectral'].update({name: values.tolist() for name, values
                                     in detector.spectral.statistics().items()})
        detector = detector.rgb
    model = rebuild_module(detector).model
    export_info: dict[str, Any] = {'format': EXPORT_FORMAT, **asdict(options),
                                   'source_model_id': detector.model_id,
                                   'torch_version': torch.__version__,
                                   'onnx_version': onnx.__version__, 'opset': OPSET}
    if reduces and not calibration_images:
        raise ValueError('padim_features and bank_entries change the scores: give calibration '
                         'images')
    suffix = reduce_model(model, metadata['method'], options.padim_features,
                          options.bank_entries, options.seed)
    if metadata['method'] == 'padim':
        model.gaussian = PackedGaussian(model.gaussian.mean, model.gaussian.inv_covariance)
    install_separable_map_resize(model, tuple(metadata['input_size']))
    install_minimum_first_search(model)
    graph = ExportGraph(model)
    height, width = metadata['input_size']
    example = torch.zeros(1, 3, height, width)
    dynamic_axes = ({name: {0: 'batch'} for name in (INPUT_NAME, *OUTPUT_NAMES)}
                    if options.dynamic_batch else None)
    with atomic_output(path) as temporary:
        with torch.inference_mode(), separable_gaussian_blur():
            torch.onnx.export(graph, (example,), str(temporary), input_names=[INPUT_NAME],
                              output_names=list(OUTPUT_NAMES), dynamic_axes=dynamic_axes,
                              opset_version=OPSET, dynamo=False,
                              do_constant_folding=metadata['method'] != 'padim')
        proto = onnx.load(str(temporary))
        if options.weights_fp16:
            store_initializers_fp16(proto)
        if suffix:
            metadata['model_id'] = f'{detector.model_id}{suffix}'
        metadata['export'] = export_info
        set_metadata(proto, metadata)
        onnx.save(proto, str(temporary))
        if suffix:
            recalibrate(temporary, calibration_images, metadata)
    return path


def get_metadata(proto: onnx.ModelProto) -> dict[str, Any]:
    """Return the JSON metadata stored in the model's ``metadata_props``."""
    return json.loads({entry.key: entry.value for entry in proto.metadata_props}[METADATA_KEY])


def set_metadata(proto: onnx.ModelProto, metadata: dict[str, Any]) -> None:
    """Store ``metadata`` as JSON in the model's ``metadata_props`` (replacing any)."""
    for entry in list(proto.metadata_props):
        if entry.key == METADATA_KEY:
            proto.metadata_props.remove(entry)
    helper.set_model_props(proto, {METADATA_KEY: json.dumps(metadata)})


def write_with_metadata(source: str | Path, target: str | Path, metadata: dict[str, Any]) -> Path:
    """Write a copy of a model file (.onnx, .safetensors, ensemble .json) with ``metadata``."""
    source, target = Path(source), Path(target)
    if source.suffix.lower() == ENSEMBLE_SUFFIX:
        with atomic_output(target) as temporary:
            temporary.write_text(rewritten_manifest(source, target, metadata))
        return target
    if source.suffix.lower() != '.onnx':
        return load_artifact(source).save(target, metadata)
    proto = onnx.load(str(source))
    if 'spectral' in metadata:  # keep the RX statistics a fused ONNX file holds in its metadata
        metadata = {**metadata, 'spectral': {**get_metadata(proto)['spectral'],
                                             **metadata['spectral']}}
    set_metadata(proto, metadata)
    with atomic_output(target) as temporary:
        onnx.save(proto, str(temporary))
    return target


def recalibrate(path: Path, images: Sequence[np.ndarray], metadata: dict[str, Any]) -> None:
    """Refit the threshold of an exported model on held-out normal images, in place.

    A fused model takes band cubes of its bands: its RGB branch's threshold is refitted on
    their RGB views, then the fused score's calibration (the RX branch does not change).
    """
    rate = metadata['calibration']['false_alarm_rate']
    model = load_onnx(path)
    fused = isinstance(model, FusedDetector)
    views = ([bands_to_rgb(cube, model.config.rgb_bands) for cube in images] if fused
             else list(images))
    rgb = model.rgb if fused else model
    metadata['calibration'] = Calibration.from_normal_scores(rgb.raw_scores(views),
                                                             rate).to_dict()
    _store_metadata(path, metadata)
    if fused:
        metadata['spectral']['fusion_calibration'] = load_onnx(path).calibrate_fusion(
            images, rate).to_dict()
        _store_metadata(path, metadata)


def _store_metadata(path: Path, metadata: dict[str, Any]) -> None:
    """Replace the metadata of the ONNX file at ``path``."""
    proto = onnx.load(str(path))
    set_metadata(proto, metadata)
    onnx.save(proto, str(path))


def store_initializers_fp16(proto: onnx.ModelProto) -> int:
    """Store large float32 initializers as float16 behind a Cast; return how many changed."""
    graph = proto.graph
    casts = []
    kept = []
    for tensor in graph.initializer:
        size = int(np.prod(tensor.dims)) if tensor.dims else 1
        if tensor.data_type != TensorProto.FLOAT or size < FP16_MIN_ELEMENTS:
            kept.append(tensor)
            continue
        half = numpy_helper.from_array(numpy_helper.to_array(tensor).astype(np.float16),
                                       f'{tensor.name}{FP16_SUFFIX}')
        kept.append(half)
        casts.append(helper.make_node('Cast', [half.name], [tensor.name], to=TensorProto.FLOAT,
                                      name=f'{tensor.name}__cast'))
    del graph.initializer[:]
    graph.initializer.extend(kept)
    nodes = casts + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)
    return len(casts)
