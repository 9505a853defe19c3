"""Names of the methods, backbones and weight sources, importable without torch or anomalib.

The CLI offers these as choices; :mod:`.methods` and :mod:`.backbones` define one entry for each.
"""
METHOD_NAMES = ('patchcore', 'padim', 'cfa', 'stfpm', 'rd4ad', 'simplenet', 'fastflow')
BACKBONE_NAMES = ('mobilenet_v2', 'efficientnet_lite0')
WEIGHT_SOURCES = ('imagenet', 'timm', 'none')
ONNX_ENV = 'VAD4SPACE_MOBILENETV2_ONNX'
CACHE_ENV = 'VAD4SPACE_CACHE'
