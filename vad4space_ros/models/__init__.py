"""Torch models: backbones and offline weights, the seven anomalib methods, export."""
import warnings

# anomalib 2.7.0 imports deprecated timm/dinov2 modules; their FutureWarnings are not ours.
warnings.filterwarnings('ignore', message='Importing from timm.models.layers is deprecated')
warnings.filterwarnings('ignore', message='The anomalib.models.components.dinov2 package')
