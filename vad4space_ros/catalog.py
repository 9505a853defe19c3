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

"""Names of the methods, backbones and weight sources, importable without torch or anomalib.

The CLI offers these as choices; :mod:`.methods` and :mod:`.backbones` define one entry for each.
"""
METHOD_NAMES = ('patchcore', 'padim', 'cfa', 'stfpm', 'rd4ad', 'simplenet', 'fastflow')
BACKBONE_NAMES = ('mobilenet_v2', 'efficientnet_lite0')
WEIGHT_SOURCES = ('imagenet', 'timm', 'none')
ONNX_ENV = 'VAD4SPACE_MOBILENETV2_ONNX'
CACHE_ENV = 'VAD4SPACE_CACHE'
