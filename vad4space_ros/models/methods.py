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

"""The seven VAD methods, built from anomalib 2.7.0 on a vad4space backbone.

anomalib's defaults assume ResNet/WideResNet backbones in places; the adaptations made here are:

- all methods: the backbone is a ``vad4space_*`` timm model (see :mod:`.backbones`) so its
  ImageNet weights load offline; three feature levels at strides 4/8/16 (MobileNetV2 blocks 1, 2
  and 4). anomalib's own pre-/post-processing, evaluator and visualiser are off: images are
  prepared by :mod:`.preprocess`, thresholds come from :mod:`.calibration`.
- PaDiM: ``n_features`` must be given for a non-ResNet backbone (default: all channels of the
  chosen levels, 152 for MobileNetV2's three).
- PaDiM and PatchCore fits are made to scale: PaDiM accumulates running statistics instead of
  storing every embedding (training/padim_stats.py), PatchCore selects anomalib's greedy coreset
  with a vectorised lazy search (training/coreset.py).
- PatchCore: levels 2 and 3 only (stride 8/16, as anomalib's layer2+layer3 default) since the
  stride-4 level would quadruple the memory bank and coreset time on a CPU.
- CFA: anomalib only builds torchvision ResNet/VGG extractors (and downloads them); here the
  feature extractor and the coupled-hypersphere descriptor are sized from the backbone.
- RD4AD: anomalib's bottleneck and decoder exist only for ResNets; here trainable 1x1
  projections map the backbone levels to ResNet-18 widths into anomalib's OCBE bottleneck and
  ResNet-18 decoder, and the decoder outputs back to the backbone widths for the loss.
- FastFlow: anomalib accepts only ResNet/CaiT/DeiT; here the same ResNet-style branch
  (features at 3 levels, trainable LayerNorms, 2-D flows) is built on the backbone.
- SimpleNet: anomalib's SuperSimpleNet, unsupervised, on levels 2 and 3 (its default layer2+3).
  Its synthetic feature-space anomalies use Gaussian noise of std 0.015, tuned for WideResNet-50
  features; MobileNetV2's linear-bottleneck features are larger (std about 0.45 on lunar chips),
  so that noise is too faint to learn from (the head then ranked craters *below* normal terrain:
  AUROC 0.1-0.36 on generated chips). The noise std is raised to 0.25 (AUROC 0.95 there; 0.1
  gave 0.77). This was chosen from those three values on generated data, not real imagery.
  Its Perlin-noise masks draw scales up to 32 cells, so the (2x upscaled) stride-8 feature map
  must be at least 32x32: the input must be at least 128 px (a 64-px input fails inside
  anomalib with a tensor-size error; :func:`build_method` refuses it up front).

Method options (``build_method(..., options)``, recorded in the artifact metadata so loading
rebuilds the same architecture): PaDiM ``levels`` (which of the three backbone levels, 1-based)
and ``n_features`` (anomalib's random channel subset); PatchCore ``levels``,
``coreset_sampling_ratio`` and ``num_neighbors``. :data:`EDGE_OPTIONS` is the onboard profile:
PaDiM on levels 2-3 (a 32x32 Gaussian grid at 256 px instead of 64x64) with 64 of their 128
channels, PatchCore with a 1% coreset (the PatchCore paper's smallest setting), so a model fits
Table III's footprint and a 2-core CPU's 10-15 ms budget (see ``vad4space bench latency``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Any, Callable

from anomalib.models import Cfa, Fastflow, Padim, Patchcore, ReverseDistillation, Stfpm
from anomalib.models import Supersimplenet
from anomalib.models.components import AnomalibModule, TimmFeatureExtractor
from anomalib.models.components.backbone.resnet_decoder import get_decoder
from anomalib.models.image.cfa.anomaly_map import AnomalyMapGenerator as CfaMapGenerator
from anomalib.models.image.cfa.loss import CfaLoss
from anomalib.models.image.cfa.torch_model import CfaModel, CoordConv2d, Descriptor
from anomalib.models.image.fastflow.anomaly_map import AnomalyMapGenerator as FlowMapGenerator
from anomalib.models.image.fastflow.loss import FastflowLoss
from anomalib.models.image.fastflow.torch_model import create_fast_flow_block, FastflowModel
from anomalib.models.image.reverse_distillation.anomaly_map import (
    AnomalyMapGenerationMode, AnomalyMapGenerator as RdMapGenerator)
from anomalib.models.image.reverse_distillation.components import get_bottleneck_layer
from anomalib.models.image.reverse_distillation.loss import ReverseDistillationLoss
from anomalib.models.image.reverse_distillation.torch_model import ReverseDistillationModel
from anomalib.pre_processing import PreProcessor
import timm
import torch
from torch import nn
from torchvision.transforms.v2 import Resize

from vad4space_ros.catalog import METHOD_NAMES
from vad4space_ros.models.backbones import BackboneSpec
from vad4space_ros.training.coreset import subsample_memory_bank
from vad4space_ros.training.padim_stats import make_streaming

RESNET18_WIDTHS = (64, 128, 256)
SUPERSIMPLENET_NOISE_STD = 0.25  # anomalib's 0.015 suits WideResNet-50 features (see above)
SUPERSIMPLENET_MIN_INPUT = 128  # its Perlin masks need a 32x32 feature map (see above)


class MobileCfaDescriptor(Descriptor):
    """CFA's coupled-hypersphere descriptor sized for any backbone's channel sum."""

    def __init__(self, gamma_d: int, channels: int) -> None:
        nn.Module.__init__(self)
        self.backbone = 'vad4space'
        self.layer = CoordConv2d(in_channels=channels, out_channels=channels // gamma_d,
                                 kernel_size=1)


class MobileCfaModel(CfaModel):
    """anomalib's CfaModel on a timm backbone instead of a downloaded torchvision ResNet."""

    def __init__(self, spec: BackboneSpec, gamma_c: int = 1, gamma_d: int = 1,
                 num_nearest_neighbors: int = 3, num_hard_negative_features: int = 3,
                 radius: float = 1e-5) -> None:
        nn.Module.__init__(self)
        self.gamma_c = gamma_c
        self.gamma_d = gamma_d
        self.num_nearest_neighbors = num_nearest_neighbors
        self.num_hard_negative_features = num_hard_negative_features
        self.register_buffer('memory_bank', torch.tensor(0.0))
        self.backbone = spec.registered_name
        self.feature_extractor = TimmFeatureExtractor(
            backbone=spec.registered_name, layers=list(spec.layers), pre_trained=True).eval()
        self.descriptor = MobileCfaDescriptor(gamma_d, sum(spec.channels))
        self.radius = torch.ones(1, requires_grad=True) * radius
        self.anomaly_map_generator = CfaMapGenerator(num_nearest_neighbors=num_nearest_neighbors)

    def get_scale(self, input_size: tuple[int, int] | torch.Size) -> torch.Size:
        """Return the resolution of the largest (first) feature map for ``input_size``."""
        with torch.no_grad():
            features = self.feature_extractor(torch.zeros(1, 3, *input_size))
        return next(iter(features.values())).shape[-2:]


class MobileCfa(Cfa):
    """anomalib's Cfa lightning module using :class:`MobileCfaModel`."""

    def __init__(self, spec: BackboneSpec, **components: Any) -> None:
        AnomalibModule.__init__(self, **components)
        self.model = MobileCfaModel(spec)
        self.loss = CfaLoss(num_nearest_neighbors=3, num_hard_negative_features=3, radius=1e-5)


class MobileFastflowModel(FastflowModel):
    """anomalib's FastflowModel with its ResNet branch applied to a timm backbone."""

    def __init__(self, spec: BackboneSpec, input_size: tuple[int, int], flow_steps: int = 8,
                 conv3x3_only: bool = False, hidden_ratio: float = 1.0) -> None:
        nn.Module.__init__(self)
        self.input_size = input_size
        self.feature_extractor = timm.create_model(
            spec.registered_name, pretrained=True, features_only=True, out_indices=[1, 2, 3])
        channels = self.feature_extractor.feature_info.channels()
        scales = self.feature_extractor.feature_info.reduction()
        self.norms = nn.ModuleList(
            nn.LayerNorm([c, input_size[0] // s, input_size[1] // s], elementwise_affine=True)
            for c, s in zip(channels, scales))
        for parameter in self.feature_extractor.parameters():
            parameter.requires_grad = False
        self.fast_flow_blocks = nn.ModuleList(
            create_fast_flow_block(
                input_dimensions=[c, input_size[0] // s, input_size[1] // s],
                conv3x3_only=conv3x3_only, hidden_ratio=hidden_ratio, flow_steps=flow_steps)
            for c, s in zip(channels, scales))
        self.anomaly_map_generator = FlowMapGenerator(input_size=input_size)


class MobileFastflow(Fastflow):
    """anomalib's Fastflow lightning module using :class:`MobileFastflowModel`."""

    def __init__(self, spec: BackboneSpec, **components: Any) -> None:
        AnomalibModule.__init__(self, **components)
        self.backbone = spec.registered_name
        self.pre_trained = True
        self.flow_steps = 8
        self.conv3x3_only = False
        self.hidden_ratio = 1.0
        self.model = MobileFastflowModel(spec, tuple(self.input_size))
        self.loss = FastflowLoss()


class ProjectedBottleneck(nn.Module):
    """1x1 projections of backbone levels to ResNet-18 widths, then anomalib's OCBE bottleneck."""

    def __init__(self, channels: tuple[int, ...]) -> None:
        super().__init__()
        self.projections = nn.ModuleList(
            nn.Sequential(nn.Conv2d(c, w, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True))
            for c, w in zip(channels, RESNET18_WIDTHS))
        self.ocbe = get_bottleneck_layer('resnet18')

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        """Fuse the projected levels into one-class embeddings."""
        return self.ocbe([proj(f) for proj, f in zip(self.projections, features)])


class ProjectedDecoder(nn.Module):
    """anomalib's ResNet-18 decoder with 1x1 projections back to the backbone widths."""

    def __init__(self, channels: tuple[int, ...]) -> None:
        super().__init__()
        self.decoder = get_decoder('resnet18')
        self.projections = nn.ModuleList(
            nn.Conv2d(w, c, 1) for c, w in zip(channels, RESNET18_WIDTHS))

    def forward(self, embedding: torch.Tensor) -> list[torch.Tensor]:
        """Decode the embedding into one feature map per backbone level."""
        return [proj(f) for proj, f in zip(self.projections, self.decoder(embedding))]


class MobileReverseDistillationModel(ReverseDistillationModel):
    """anomalib's ReverseDistillationModel with the projected bottleneck and decoder."""

    def __init__(self, spec: BackboneSpec, input_size: tuple[int, int]) -> None:
        nn.Module.__init__(self)
        self.tiler = None
        self.encoder = TimmFeatureExtractor(
            backbone=spec.registered_name, pre_trained=True, layers=list(spec.layers))
        self.bottleneck = ProjectedBottleneck(spec.channels)
        self.decoder = ProjectedDecoder(spec.channels)
        self.anomaly_map_generator = RdMapGenerator(
            image_size=input_size, mode=AnomalyMapGenerationMode.ADD)


class MobileReverseDistillation(ReverseDistillation):
    """anomalib's ReverseDistillation lightning module using the model above."""

    def __init__(self, spec: BackboneSpec, **components: Any) -> None:
        AnomalibModule.__init__(self, **components)
        self.backbone = spec.registered_name
        self.pre_trained = True
        self.layers = list(spec.layers)
        self.anomaly_map_mode = AnomalyMapGenerationMode.ADD
        self.model = MobileReverseDistillationModel(spec, tuple(self.input_size))
        self.loss = ReverseDistillationLoss()


Options = dict[str, Any]


@dataclass(frozen=True)
class MethodSpec:
    """How to build one VAD method, how long it trains by default and its tunable options."""

    name: str
    anomalib_name: str
    build: Callable[[BackboneSpec, dict[str, Any], Options], AnomalibModule]
    default_epochs: int
    options: Options = field(default_factory=dict)
    min_input_size: int = 0

    def resolve_options(self, options: Options | None) -> Options:
        """Return the defaults updated by ``options``; raise ValueError on unknown names."""
        options = dict(options or {})
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            allowed = ', '.join(sorted(self.options)) or 'none'
            raise ValueError(f'{self.name} has no option(s) {unknown}; allowed: {allowed}')
        return {**self.options, **options}


def _layers(spec: BackboneSpec, levels: list[int]) -> list[str]:
    """Return the backbone layer names of 1-based ``levels`` (validated)."""
    levels = [int(level) for level in levels]
    if not levels or sorted(set(levels)) != levels or not 1 <= levels[0] <= levels[-1] <= 3:
        raise ValueError(f'levels must be increasing values in 1..3, got {levels}')
    return [spec.layers[level - 1] for level in levels]


def _padim(spec: BackboneSpec, components: dict[str, Any], options: Options) -> AnomalibModule:
    layers = _layers(spec, options['levels'])
    channels = sum(spec.channels[spec.layers.index(layer)] for layer in layers)
    n_features = options['n_features'] or channels
    if not 0 < n_features <= channels:
        raise ValueError(f'n_features must be in 1..{channels} for levels {options["levels"]}')
    module = Padim(backbone=spec.registered_name, layers=layers, pre_trained=True,
                   n_features=n_features, **components)
    make_streaming(module.model)  # running mean/covariance instead of all embeddings
    return module


def _patchcore(spec: BackboneSpec, components: dict[str, Any], options: Options) -> AnomalibModule:
    ratio = float(options['coreset_sampling_ratio'])
    if not 0.0 < ratio <= 1.0:
        raise ValueError(f'coreset_sampling_ratio must be in (0, 1], got {ratio}')
    module = Patchcore(backbone=spec.registered_name, layers=_layers(spec, options['levels']),
                       pre_trained=True, coreset_sampling_ratio=ratio,
                       num_neighbors=int(options['num_neighbors']), **components)
    # anomalib's greedy coreset, same selection, vectorised (training/coreset.py)
    module.model.subsample_embedding = partial(subsample_memory_bank, module.model)
    return module


def _stfpm(spec: BackboneSpec, components: dict[str, Any], _options: Options) -> AnomalibModule:
    return Stfpm(backbone=spec.registered_name, layers=list(spec.layers), **components)


def _supersimplenet(spec: BackboneSpec, components: dict[str, Any],
                    _options: Options) -> AnomalibModule:
    module = Supersimplenet(backbone=spec.registered_name, layers=list(spec.layers[1:]),
                            **components)
    module.model.anomaly_generator.noise_std = SUPERSIMPLENET_NOISE_STD
    return module


METHODS: dict[str, MethodSpec] = {
    spec.name: spec for spec in (
        MethodSpec('patchcore', 'Patchcore', _patchcore, 1,
                   {'levels': [2, 3], 'coreset_sampling_ratio': 0.1, 'num_neighbors': 9}),
        MethodSpec('padim', 'Padim', _padim, 1, {'levels': [1, 2, 3], 'n_features': None}),
        MethodSpec('cfa', 'Cfa', lambda s, c, _o: MobileCfa(s, **c), 5),
        MethodSpec('stfpm', 'Stfpm', _stfpm, 10),
        MethodSpec('rd4ad', 'ReverseDistillation',
                   lambda s, c, _o: MobileReverseDistillation(s, **c), 10),
        MethodSpec('simplenet', 'Supersimplenet', _supersimplenet, 10,
                   min_input_size=SUPERSIMPLENET_MIN_INPUT),
        MethodSpec('fastflow', 'Fastflow', lambda s, c, _o: MobileFastflow(s, **c), 10),
    )
}
EDGE_OPTIONS: dict[str, Options] = {
    'padim': {'levels': [2, 3], 'n_features': 64},
    'patchcore': {'coreset_sampling_ratio': 0.01},
}


if tuple(METHODS) != METHOD_NAMES:
    raise ImportError('methods.METHODS and catalog.METHOD_NAMES disagree')


def get_method(name: str) -> MethodSpec:
    """Return a method spec by name or raise ValueError listing the seven names."""
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f'unknown method {name!r}; choose one of {sorted(METHODS)}') from None


def build_method(method: str, spec: BackboneSpec, input_size: tuple[int, int],
                 options: Options | None = None) -> AnomalibModule:
    """Build the anomalib module of ``method`` (weights per the active backbone_weights()).

    ``options`` overrides the method's defaults (:attr:`MethodSpec.options`).
    """
    method_spec = get_method(method)
    if min(input_size) < method_spec.min_input_size:
        raise ValueError(f'{method} needs an input of at least {method_spec.min_input_size} px '
                         f'(got {input_size[0]}x{input_size[1]})')
    components = {
        # Resize only: images arrive already resized and normalised (see preprocess.py); the
        # pre-processor is what tells FastFlow/RD4AD their input size.
        'pre_processor': PreProcessor(transform=Resize(list(input_size), antialias=True)),
        'post_processor': False,
        'evaluator': False,
        'visualizer': False,
    }
    return method_spec.build(spec, components, method_spec.resolve_options(options))
