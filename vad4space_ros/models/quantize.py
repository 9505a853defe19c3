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

"""int8 quantisation of an exported ONNX model (ONNX Runtime only); both refit the threshold.

- :func:`quantize_int8`: static int8 quantisation of the backbone convolutions (QDQ, per
  channel), calibrated on held-out normal images.
- :func:`quantize_search_int8`: PatchCore's nearest-neighbour search, the product of the patch
  embeddings with the memory bank, in int8 (ONNX Runtime's dynamic quantisation: the bank per
  entry, the embeddings per batch, so a score moves slightly with the other images in its
  batch). In a tiled frame this product is most of the work.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import onnx

from vad4space_ros.atomic_files import atomic_output
from vad4space_ros.deploy.preprocess import model_input
from vad4space_ros.deploy.spectral import with_id_suffix
from vad4space_ros.models.export import (
    FP16_SUFFIX, get_metadata, INPUT_NAME, recalibrate, set_metadata)


def quantize_int8(source: str | Path, target: str | Path,
                  calibration_images: Sequence[np.ndarray]) -> Path:
    """Quantise the convolutions of an exported model to int8 (static, per channel)."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, quantize_static

    source, target = Path(source), Path(target)
    metadata = get_metadata(onnx.load(str(source), load_external_data=False))

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter(
                {INPUT_NAME: model_input([image], metadata)}
                for image in calibration_images)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.items, None)

    if 'spectral' in metadata:
        raise ValueError('int8 re-calibration of a fused model is not supported')
    with atomic_output(target) as temporary:
        quantize_static(str(source), str(temporary), Reader(), quant_format=QuantFormat.QDQ,
                        op_types_to_quantize=['Conv'], per_channel=True)
        _finish(temporary, metadata, '-int8', {'int8': 'static QDQ, Conv only',
                                               'int8_calibration_images': len(calibration_images)})
        recalibrate(temporary, calibration_images, metadata)
    return target


def bank_product(proto: onnx.ModelProto) -> onnx.NodeProto:
    """Return the MatMul of a PatchCore export that multiplies embeddings by the memory bank."""
    arrays = {tensor.name: tensor for tensor in proto.graph.initializer}
    banks = [tensor for name, tensor in arrays.items()
             if name.removesuffix(FP16_SUFFIX).endswith('memory_bank')]
    if len(banks) != 1:
        raise ValueError('no PatchCore memory bank found in the model')
    if banks[0].data_type != onnx.TensorProto.FLOAT:
        raise ValueError('the memory bank is stored as float16 (exported with --fp16): '
                         'export without it to quantise the search')
    rows, dims = banks[0].dims
    for node in proto.graph.node:
        weight = arrays.get(node.input[1]) if node.op_type == 'MatMul' else None
        if weight is not None and list(weight.dims) == [dims, rows]:
            return node
    raise ValueError('no MatMul with the memory bank found in the model')


def quantize_search_int8(source: str | Path, target: str | Path,
                         calibration_images: Sequence[np.ndarray]) -> Path:
    """Run PatchCore's memory-bank product in int8 (dynamic); refit the threshold.

    A fused model's ``calibration_images`` are band cubes of its bands (see ``recalibrate``).
    """
    from onnxruntime.quantization import quantize_dynamic, QuantType

    source, target = Path(source), Path(target)
    proto = onnx.load(str(source))
    metadata = get_metadata(proto)
    if metadata['method'] != 'patchcore':
        raise ValueError(f'int8 search applies to PatchCore only, not {metadata["method"]}')
    product = bank_product(proto)
    dims, entries = next(t.dims for t in proto.graph.initializer if t.name == product.input[1])
    with atomic_output(target) as temporary:
        quantize_dynamic(str(source), str(temporary), nodes_to_quantize=[product.name],
                         op_types_to_quantize=['MatMul'], weight_type=QuantType.QInt8,
                         per_channel=True)
        _finish(temporary, metadata, '-int8search', {
            'int8_search': f'dynamic, {entries} bank entries x {dims} dims'})
        recalibrate(temporary, calibration_images, metadata)
    return target


def _finish(path: Path, metadata: dict[str, Any], suffix: str, export: dict[str, Any]) -> None:
    """Give a quantised file its own model_id and record how it was quantised."""
    metadata['model_id'] = with_id_suffix(metadata, suffix)
    metadata['export'] = {**metadata.get('export', {}), **export}
    proto = onnx.load(str(path))
    set_metadata(proto, metadata)
    onnx.save(proto, str(path))
