"""Open any model file and return what scores frames with it."""
from __future__ import annotations

from pathlib import Path

from vad4space_ros.deploy.spectral import load_model as _load_any

__all__ = ['load_model']


def load_model(path: str | Path):
    """Load a plain or fused ``.safetensors`` model or an exported ``.onnx`` file."""
    return _load_any(path)
