"""ROS-free core: backbones, methods, artifacts, data, metrics, ranking."""
import warnings

# anomalib 2.7.0 imports deprecated timm/dinov2 modules; their FutureWarnings are not ours.
warnings.filterwarnings('ignore', message='Importing from timm.models.layers is deprecated')
warnings.filterwarnings('ignore', message='The anomalib.models.components.dinov2 package')
