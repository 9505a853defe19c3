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

"""Which model files may be loaded at run time: only files under the configured ``model_dir``.

Anyone on the DDS domain can call ``set_parameters``; this keeps them from making the detector
open an arbitrary file on the vehicle. No rclpy here, so the rule is testable on its own.
"""
from __future__ import annotations

from pathlib import Path, PurePath


class ModelAccessError(ValueError):
    """A run-time ``model_path`` that the node refuses to load."""


def allowed_model_path(model_dir: str, requested: str) -> Path:
    """Return ``requested`` resolved (symlinks followed) if it is a file under ``model_dir``.

    Raise :class:`ModelAccessError` with the reason otherwise: no ``model_dir`` configured,
    ``..`` in the path, a path (or symlink target) outside ``model_dir``, or no such file.
    """
    if not model_dir:
        raise ModelAccessError(
            'run-time model_path changes are disabled: parameter model_dir is empty (start '
            'the node with -p model_dir:=/models to allow files under /models)')
    if not requested:
        raise ModelAccessError('model_path is empty')
    if '..' in PurePath(requested).parts:
        raise ModelAccessError(f'model_path {requested!r} contains "..": give a path under '
                               f'model_dir {model_dir!r} without parent references')
    root = Path(model_dir).resolve()
    target = Path(requested).resolve()
    if not target.is_relative_to(root):
        raise ModelAccessError(f'model_path {requested!r} resolves to {str(target)!r}, which '
                               f'is outside model_dir {str(root)!r}')
    if not target.is_file():
        raise ModelAccessError(f'model_path {requested!r} is not a file under model_dir '
                               f'{str(root)!r}')
    return target
