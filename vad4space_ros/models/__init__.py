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

"""Torch models: backbones and offline weights, the seven anomalib methods, export."""
import warnings

# anomalib 2.7.0 imports deprecated timm/dinov2 modules; their FutureWarnings are not ours.
warnings.filterwarnings('ignore', message='Importing from timm.models.layers is deprecated')
warnings.filterwarnings('ignore', message='The anomalib.models.components.dinov2 package')
