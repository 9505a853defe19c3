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

"""Start node executables as processes with ``--ros-args`` (what a launch file does).

Used by ``vad4space demo`` to wire replay → detector → evaluator where ``ros2 launch`` is not
available, and by the tests' harness. Nothing here imports rclpy.
"""
from __future__ import annotations

from collections.abc import Sequence
import json
import os
from pathlib import Path
import signal
import subprocess
import sys
from typing import Any

PACKAGE_ROOT = Path(__file__).resolve().parents[2]


def package_share(*parts: str) -> Path:
    """Return a file of the package share (installed via ament index, else the source tree)."""
    try:
        from ament_index_python.packages import get_package_share_directory
        share = Path(get_package_share_directory('vad4space_ros'))
    except (ImportError, LookupError, OSError):  # not installed with an ament index
        share = PACKAGE_ROOT
    return share.joinpath(*parts)


def node_command(executable: str, module: str | None = None) -> list[str]:
    """Return the command that starts a node: the venv's console script, else ``python -m``."""
    script = Path(sys.executable).parent / executable
    if script.exists():
        return [str(script)]
    if module is None:
        raise FileNotFoundError(f'{script} does not exist and no module was given')
    return [sys.executable, '-m', module]


def format_parameter(value: Any) -> str:
    """Format a Python value as a ``-p name:=value`` YAML literal of the same ROS type."""
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, float):
        return repr(value) if ('.' in repr(value) or 'e' in repr(value)) else f'{value:.1f}'
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a YAML string: never re-typed as a number
    if isinstance(value, (list, tuple)):
        return '[' + ', '.join(format_parameter(item) for item in value) + ']'
    raise TypeError(f'cannot pass {type(value).__name__} as a ROS parameter')


def ros_arguments(parameters: dict[str, Any] | None = None,
                  remappings: dict[str, str] | None = None,
                  params_file: str | os.PathLike | None = None,
                  name: str | None = None,
                  log_level: str | None = None) -> list[str]:
    """Build the ``--ros-args`` tail of a node command line."""
    arguments = ['--ros-args']
    if name:
        arguments += ['-r', f'__node:={name}']
    if params_file is not None:
        arguments += ['--params-file', str(params_file)]
    for key, value in (parameters or {}).items():
        arguments += ['-p', f'{key}:={format_parameter(value)}']
    for source, target in (remappings or {}).items():
        arguments += ['-r', f'{source}:={target}']
    if log_level:
        arguments += ['--log-level', log_level]
    return arguments


class NodeProcess:
    """A node running as a subprocess; its stdout and stderr go to one log file."""

    def __init__(self, command: Sequence[str], log_path: Path,
                 env: dict[str, str] | None = None) -> None:
        """Start ``command`` with this process's environment plus ``env``."""
        self.command = list(command)
        self.log_path = log_path
        self._log_handle = open(log_path, 'wb')
        self.popen = subprocess.Popen(
            self.command, stdout=self._log_handle, stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})}, start_new_session=True)

    @property
    def pid(self) -> int:
        """Process id of the node."""
        return self.popen.pid

    def alive(self) -> bool:
        """Whether the process is still running."""
        return self.popen.poll() is None

    def log(self) -> str:
        """Everything the node printed so far."""
        if not self._log_handle.closed:
            self._log_handle.flush()
        return self.log_path.read_text(errors='replace')

    def assert_alive(self) -> None:
        """Raise AssertionError with the node's log if it has exited."""
        if not self.alive():
            raise AssertionError(
                f'node exited with code {self.popen.returncode}; log:\n{self.log()}')

    def wait(self, timeout: float) -> int:
        """Wait for the process to exit by itself and return its exit code."""
        return self.popen.wait(timeout=timeout)

    def stop(self, timeout: float = 10.0) -> int:
        """Stop the node: SIGINT, then SIGTERM, then SIGKILL; return its exit code."""
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
            if not self.alive():
                break
            try:
                os.kill(self.popen.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.popen.wait(timeout=timeout / 2 if sig != signal.SIGKILL else timeout)
            except subprocess.TimeoutExpired:
                continue
        self._log_handle.close()
        return self.popen.returncode
