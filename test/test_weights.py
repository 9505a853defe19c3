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

"""Offline ImageNet backbone weights: converter faithfulness, the local-dir cache, the CLI.

The int8 MobileNetV2 reference runs in onnxruntime. onnxruntime's native int8 kernels on AVX2
CPUs without VNNI (this machine: AMD EPYC) overflow int16 intermediates (VPMADDUBSW; see
microsoft/onnxruntime#16105, #24220), so the reference graph rewrites QLinearConv/QLinearMatMul
into their spec-equivalent Dequantize -> Conv/MatMul -> Quantize form (graph optimisations off so
onnxruntime does not fuse them back). Everything else (QLinearAdd, QLinearGlobalAveragePool) runs
natively. Dequantisation in that graph is done by onnxruntime ops, not by the converter.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
import subprocess
import sys

import numpy as np
import pytest
import torch

from vad4space_ros.models import weights
from vad4space_ros.models.backbones import get_backbone, IMAGENET_MEAN

ONNX_FILE = Path(__file__).resolve().parents[2] / 'shared/data/mobilenetv2_onnx_int8' \
    / 'mobilenetv2-12-int8.onnx'
ONNX_PATH = Path(os.environ.get(weights.ONNX_ENV, ONNX_FILE))
needs_onnx = pytest.mark.skipif(
    not ONNX_PATH.is_file(),
    reason=f'MobileNetV2 int8 ONNX file not present ({ONNX_PATH}); set {weights.ONNX_ENV}')
CAT_CLASSES = {281, 282, 283, 284, 285}  # tabby, tiger cat, Persian, Siamese, Egyptian cat
COFFEE_CLASSES = {504, 967, 968}  # coffee mug, espresso, cup

torch.set_num_threads(1)


def natural_images(count: int, seed: int = 0) -> np.ndarray:
    """Return ``count`` random crops (+ flips) of scikit-image's bundled photos, NCHW in [0, 1]."""
    from skimage import data

    photos = [getattr(data, name)() for name in (
        'astronaut', 'coffee', 'chelsea', 'rocket', 'hubble_deep_field', 'immunohistochemistry')]
    rng = np.random.default_rng(seed)
    crops = []
    for index in range(count):
        photo = photos[index % len(photos)]
        height, width = photo.shape[:2]
        side = int(min(height, width) * rng.uniform(0.4, 1.0))
        top, left = rng.integers(0, height - side + 1), rng.integers(0, width - side + 1)
        crops.append(_to_input(photo[top:top + side, left:left + side], flip=rng.random() < 0.5))
    return np.stack(crops)


def _to_input(photo: np.ndarray, flip: bool = False) -> np.ndarray:
    """Resize an HxWx3 uint8 photo to a 3x224x224 float array in [0, 1]."""
    tensor = torch.from_numpy(photo.astype(np.float32) / 255).permute(2, 0, 1)[None]
    tensor = torch.nn.functional.interpolate(tensor, size=(224, 224), mode='bilinear',
                                             antialias=True, align_corners=False)[0]
    return (tensor.flip(-1) if flip else tensor).clamp(0, 1).numpy()


def normalise(images: np.ndarray, backbone: str) -> np.ndarray:
    """Apply the backbone's pretrained mean/std (the ONNX zoo model expects ImageNet's)."""
    spec = get_backbone(backbone)
    mean = np.array(spec.mean, dtype=np.float32)[:, None, None]
    std = np.array(spec.std, dtype=np.float32)[:, None, None]
    return ((images - mean) / std).astype(np.float32)


def exact_int8_model(onnx_path: Path, expose_convs: bool = False):
    """Return the int8 model with QLinearConv/QLinearMatMul in their Q/DQ-equivalent form."""
    import onnx
    from onnx import helper, numpy_helper, TensorProto

    model = onnx.load(str(onnx_path))
    graph = model.graph
    nodes = []

    def dequantize(name, scale, zero_point, shape, prefix):
        graph.initializer.append(numpy_helper.from_array(np.array(shape, np.int64), prefix + 's'))
        out = [helper.make_node('Cast', [name], [prefix + 'f'], to=TensorProto.FLOAT),
               helper.make_node('Reshape', [scale, prefix + 's'], [prefix + 'k'])]
        value = prefix + 'f'
        if zero_point is not None:
            out += [helper.make_node('Cast', [zero_point], [prefix + 'z'], to=TensorProto.FLOAT),
                    helper.make_node('Reshape', [prefix + 'z', prefix + 's'], [prefix + 'zr']),
                    helper.make_node('Sub', [value, prefix + 'zr'], [prefix + 'c'])]
            value = prefix + 'c'
        out.append(helper.make_node('Mul', [value, prefix + 'k'], [prefix + 'out']))
        return out, prefix + 'out'

    conv_count = 0
    for index, node in enumerate(graph.node):
        prefix = f'exact{index}_'
        if node.op_type == 'QLinearConv':
            x, x_scale, x_zero, w, w_scale, w_zero, y_scale, y_zero = node.input[:8]
            new = [helper.make_node('DequantizeLinear', [x, x_scale, x_zero], [prefix + 'x'])]
            weight_nodes, weight = dequantize(w, w_scale, w_zero, [-1, 1, 1, 1], prefix + 'w')
            new += weight_nodes
            inputs = [prefix + 'x', weight]
            if len(node.input) > 8:
                new.append(helper.make_node('Mul', [x_scale, w_scale], [prefix + 'bias_scale']))
                bias_nodes, bias = dequantize(node.input[8], prefix + 'bias_scale', None, [-1],
                                              prefix + 'b')
                new += bias_nodes
                inputs.append(bias)
            attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            new += [helper.make_node('Conv', inputs, [prefix + 'y'], **attributes),
                    helper.make_node('QuantizeLinear', [prefix + 'y', y_scale, y_zero],
                                     [node.output[0]])]
            if expose_convs:
                new.append(helper.make_node('DequantizeLinear', [node.output[0], y_scale, y_zero],
                                            [f'conv{conv_count}_out']))
                graph.output.append(helper.make_tensor_value_info(f'conv{conv_count}_in',
                                                                  TensorProto.FLOAT, None))
                graph.output.append(helper.make_tensor_value_info(f'conv{conv_count}_out',
                                                                  TensorProto.FLOAT, None))
                new.append(helper.make_node('Identity', [prefix + 'x'],
                                            [f'conv{conv_count}_in']))
            conv_count += 1
            nodes += new
        elif node.op_type == 'QLinearMatMul':
            a, a_scale, a_zero, b, b_scale, b_zero, y_scale, y_zero = node.input
            new = [helper.make_node('DequantizeLinear', [a, a_scale, a_zero], [prefix + 'a'])]
            matrix_nodes, matrix = dequantize(b, b_scale, b_zero, [1, -1], prefix + 'm')
            new += matrix_nodes
            new += [helper.make_node('MatMul', [prefix + 'a', matrix], [prefix + 'y']),
                    helper.make_node('QuantizeLinear', [prefix + 'y', y_scale, y_zero],
                                     [node.output[0]])]
            nodes += new
        else:
            nodes.append(node)
    del graph.node[:]
    graph.node.extend(nodes)
    return model


def onnx_session(model):
    """Return a single-threaded onnxruntime session without graph fusions."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
    return onnxruntime.InferenceSession(model.SerializeToString(), options,
                                        providers=['CPUExecutionProvider'])


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Return the row-wise cosine similarity of two 2-D arrays."""
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def build(name: str, state: dict | None = None, **kwargs) -> torch.nn.Module:
    """Create a timm model in eval mode, optionally loading ``state`` strictly."""
    import timm

    model = timm.create_model(name, **kwargs)
    if state is not None:
        model.load_state_dict(state, strict=True)
    return model.eval()


@pytest.fixture(scope='module')
def mobilenet_state() -> dict:
    """Return the converted MobileNetV2 state_dict (module-scoped: converts once)."""
    if not ONNX_PATH.is_file():
        pytest.skip(f'MobileNetV2 int8 ONNX file not present ({ONNX_PATH})')
    return weights.convert_mobilenetv2_onnx(ONNX_PATH)


@needs_onnx
def test_every_mobilenet_layer_reproduces_the_int8_layer(mobilenet_state):
    """Each converted conv+BN, fed the int8 model's own input, gives its output within 1 step."""
    import onnx
    from onnx import numpy_helper

    inputs = normalise(natural_images(2, seed=3), 'mobilenet_v2')
    outputs = onnx_session(exact_int8_model(ONNX_PATH, expose_convs=True)).run(
        None, {'input': inputs})
    names = [o.name for o in exact_int8_model(ONNX_PATH, expose_convs=True).graph.output]
    activations = dict(zip(names, outputs))
    graph = onnx.load(str(ONNX_PATH)).graph
    tensors = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    quantised = [n for n in graph.node if n.op_type == 'QLinearConv']
    model = build('mobilenetv2_100', mobilenet_state)
    modules = dict(model.named_modules())
    convs = [name for name, m in model.named_modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == len(quantised) == 52
    for index, (conv_name, node) in enumerate(zip(convs, quantised)):
        scale, zero = float(tensors[node.input[6]]), int(tensors[node.input[7]])
        with torch.no_grad():
            conv_out = modules[conv_name](torch.from_numpy(activations[f'conv{index}_in']))
            out = modules[weights._batchnorm_after(conv_name, modules)](conv_out)
        steps = torch.clamp(torch.round(out / scale) + zero, 0, 255) - zero
        expected = np.round(activations[f'conv{index}_out'] / scale)
        differs = np.abs(steps.numpy() - expected)
        assert differs.max() <= 1, f'{conv_name}: off by {differs.max()} quantisation steps'
        assert (differs > 0).mean() < 0.01, f'{conv_name}: {(differs > 0).mean():.2%} differ'


@needs_onnx
def test_converted_mobilenet_tracks_the_int8_model_end_to_end(mobilenet_state):
    """On 64 natural crops the float model agrees with the int8 model as the int8 one with itself.

    The int8 model is its own noise floor: adding 1e-3 Gaussian noise to its (normalised)
    input already moves its logits to a mean cosine ~0.98 and keeps top-1 on ~86% (measured).
    A float model cannot match it more closely than that, so the floors are set just below it;
    a wrong layer mapping or bias scale drops the cosine below 0.5.
    """
    inputs = normalise(natural_images(64), 'mobilenet_v2')
    reference = onnx_session(exact_int8_model(ONNX_PATH)).run(None, {'input': inputs})[0]
    with torch.no_grad():
        converted = build('mobilenetv2_100', mobilenet_state)(torch.from_numpy(inputs)).numpy()
    cosine = cosine_rows(converted, reference)
    top1 = float((converted.argmax(1) == reference.argmax(1)).mean())
    print(f'mobilenet_v2 vs int8: cosine mean {cosine.mean():.4f} min {cosine.min():.4f}, '
          f'top-1 agreement {top1:.3f}')
    assert cosine.mean() >= 0.96
    assert np.median(cosine) >= 0.97
    assert top1 >= 0.75


@needs_onnx
def test_converted_mobilenet_recognises_photos(mobilenet_state):
    """The converted MobileNetV2 names a cat and a coffee cup; random weights do not."""
    from skimage import data

    inputs = torch.from_numpy(normalise(np.stack(
        [_to_input(data.chelsea()), _to_input(data.coffee())]), 'mobilenet_v2'))
    with torch.no_grad():
        top5 = build('mobilenetv2_100', mobilenet_state)(inputs).topk(5).indices.tolist()
    assert CAT_CLASSES & set(top5[0]), top5[0]
    assert COFFEE_CLASSES & set(top5[1]), top5[1]


def test_efficientnet_lite0_loads_strictly_and_recognises_photos():
    """The Lite0 checkpoint maps onto timm names with no missing/unexpected key and is ImageNet."""
    from skimage import data

    state = weights.convert_efficientnet_lite0(weights.efficientnet_lite0_source())
    for name in ('efficientnet_lite0', 'tf_efficientnet_lite0'):
        result = build(name).load_state_dict(state, strict=True)
        assert not result.missing_keys and not result.unexpected_keys
    inputs = torch.from_numpy(normalise(np.stack(
        [_to_input(data.chelsea()), _to_input(data.coffee())]), 'efficientnet_lite0'))
    with torch.no_grad():
        top5 = build('tf_efficientnet_lite0', state)(inputs).topk(5).indices.tolist()
        random_top5 = build('tf_efficientnet_lite0')(inputs).topk(5).indices.tolist()
    assert CAT_CLASSES & set(top5[0]), top5[0]
    assert COFFEE_CLASSES & set(top5[1]), top5[1]
    assert not (CAT_CLASSES & set(random_top5[0]) and COFFEE_CLASSES & set(random_top5[1]))


@needs_onnx
def test_the_two_backbones_agree_far_more_than_chance(mobilenet_state):
    """Converted EfficientNet-Lite0 and MobileNetV2 share top-1 on many crops (random: ~0)."""
    images = natural_images(32, seed=1)
    lite0 = build('tf_efficientnet_lite0',
                  weights.convert_efficientnet_lite0(weights.efficientnet_lite0_source()))
    with torch.no_grad():
        mobile = build('mobilenetv2_100', mobilenet_state)(
            torch.from_numpy(normalise(images, 'mobilenet_v2'))).argmax(1)
        efficient = lite0(torch.from_numpy(normalise(images, 'efficientnet_lite0'))).argmax(1)
    agreement = float((mobile == efficient).float().mean())
    print(f'top-1 agreement mobilenet_v2 / efficientnet_lite0: {agreement:.3f}')
    assert agreement >= 0.3


@needs_onnx
def test_local_dir_round_trip_through_timm_offline(tmp_path, monkeypatch, mobilenet_state):
    """``timm.create_model('local-dir:…', pretrained=True)`` rebuilds the converted weights."""
    import timm

    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    folder = weights.ensure_backbone_weights('mobilenet_v2', cache_dir=tmp_path,
                                             onnx_path=ONNX_PATH)
    assert folder == tmp_path / 'backbones' / 'mobilenet_v2'
    config = json.loads((folder / 'config.json').read_text())
    assert config['architecture'] == 'mobilenetv2_100'
    assert config['vad4space_source']['sha256'] == weights.sha256_of(ONNX_PATH)
    model = timm.create_model(f'local-dir:{folder}', pretrained=True)
    for key, value in model.state_dict().items():
        assert torch.equal(value, mobilenet_state[key]), key
    assert tuple(model.pretrained_cfg['mean']) == IMAGENET_MEAN
    features = timm.create_model(f'local-dir:{folder}', pretrained=True, features_only=True,
                                 out_indices=(1, 2, 3))
    assert [info['num_chs'] for info in features.feature_info.get_dicts()] == [24, 32, 96]


def test_efficientnet_converts_on_first_use_and_reuses_cache(tmp_path, monkeypatch):
    """Lite0 needs no configuration; a second call reuses the folder without rewriting it."""
    import timm

    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    folder = weights.ensure_backbone_weights('efficientnet_lite0', cache_dir=tmp_path)
    stamp = (folder / 'model.safetensors').stat().st_mtime_ns
    assert weights.ensure_backbone_weights('efficientnet_lite0', cache_dir=tmp_path) == folder
    assert (folder / 'model.safetensors').stat().st_mtime_ns == stamp
    model = timm.create_model(f'local-dir:{folder}', pretrained=True)
    assert type(model.conv_stem).__name__ == 'Conv2dSame' and model.bn1.eps == 1e-3
    assert tuple(model.pretrained_cfg['mean']) == (0.5, 0.5, 0.5)


def test_missing_onnx_source_gives_actionable_error(tmp_path, monkeypatch):
    """No cache and no ONNX file configured: the error names both ways out."""
    monkeypatch.delenv(weights.ONNX_ENV, raising=False)
    with pytest.raises(FileNotFoundError) as error:
        weights.ensure_backbone_weights('mobilenet_v2', cache_dir=tmp_path)
    assert 'vad4space weights convert' in str(error.value)
    assert '--weights timm' in str(error.value)
    with pytest.raises(FileNotFoundError, match='not found'):
        weights.ensure_backbone_weights('mobilenet_v2', cache_dir=tmp_path,
                                        onnx_path=tmp_path / 'absent.onnx')
    assert not (tmp_path / 'backbones' / 'mobilenet_v2').exists()


def test_sources_other_than_imagenet_involve_no_files(tmp_path):
    """``timm`` means timm's own download, ``none`` random init; unknown names are refused."""
    assert weights.ensure_backbone_weights('mobilenet_v2', 'timm', cache_dir=tmp_path) is None
    assert weights.ensure_backbone_weights('efficientnet_lite0', 'none', tmp_path) is None
    assert not (tmp_path / 'backbones').exists()
    with pytest.raises(ValueError, match='weights source'):
        weights.ensure_backbone_weights('mobilenet_v2', 'internet', cache_dir=tmp_path)
    with pytest.raises(ValueError, match='unknown backbone'):
        weights.ensure_backbone_weights('resnet18', cache_dir=tmp_path)


def test_interrupted_conversion_leaves_no_partial_cache(tmp_path, monkeypatch):
    """A conversion killed while writing leaves the old folder intact and no staging debris."""
    from safetensors import torch as safetensors_torch

    weights.ensure_backbone_weights('efficientnet_lite0', cache_dir=tmp_path)
    folder = weights.backbone_cache_path('efficientnet_lite0', tmp_path)
    before = (folder / 'model.safetensors').read_bytes()

    def killed(*args, **kwargs):
        Path(args[1]).write_bytes(b'partial')
        raise KeyboardInterrupt

    monkeypatch.setattr(safetensors_torch, 'save_file', killed)
    with pytest.raises(KeyboardInterrupt):
        weights.write_backbone_weights('efficientnet_lite0',
                                       weights.efficientnet_lite0_source(), tmp_path)
    assert (folder / 'model.safetensors').read_bytes() == before
    assert sorted(p.name for p in folder.parent.iterdir()) == ['efficientnet_lite0']
    assert [entry['backbone'] for entry in weights.list_cached_backbones(tmp_path)] == [
        'efficientnet_lite0']


def test_killed_process_leaves_only_staging_debris_that_is_ignored(tmp_path):
    """SIGKILL mid-write: the cache still reads as empty and the next call converts cleanly."""
    script = (
        'import os, safetensors.torch as st\n'
        'from vad4space_ros.models import weights\n'
        'def die(*a, **k):\n'
        '    open(a[1], "wb").write(b"partial"); os.kill(os.getpid(), 9)\n'
        'st.save_file = die\n'
        f'weights.ensure_backbone_weights("efficientnet_lite0", cache_dir={str(tmp_path)!r})\n')
    result = subprocess.run([sys.executable, '-c', script], capture_output=True, timeout=120)
    assert result.returncode == -9
    assert weights.list_cached_backbones(tmp_path) == []
    assert not weights.backbone_cache_path('efficientnet_lite0', tmp_path).exists()
    folder = weights.ensure_backbone_weights('efficientnet_lite0', cache_dir=tmp_path)
    assert weights.read_cache_config(folder) is not None


@needs_onnx
def test_cli_convert_then_show(tmp_path, capsys):
    """``vad4space weights convert`` writes the folder, ``show`` lists it with its source."""
    from vad4space_ros.cli import main

    assert main(['weights', 'convert', '--backbone', 'mobilenet_v2', '--onnx', str(ONNX_PATH),
                 '--cache-dir', str(tmp_path)]) == 0
    assert 'wrote' in capsys.readouterr().out
    assert weights.read_cache_config(tmp_path / 'backbones' / 'mobilenet_v2') is not None
    assert main(['weights', 'show', '--cache-dir', str(tmp_path)]) == 0
    shown = capsys.readouterr().out
    assert 'mobilenet_v2' in shown and weights.sha256_of(ONNX_PATH)[:12] in shown
    assert main(['weights', 'convert', '--backbone', 'mobilenet_v2', '--onnx',
                 str(tmp_path / 'no.onnx'), '--cache-dir', str(tmp_path)]) == 2
    assert 'not found' in capsys.readouterr().err
