"""The onboard runtime: numpy, ONNX Runtime and OpenCV only (never torch or anomalib).

Everything a flight computer needs to open a model file and score camera frames lives here;
:func:`.loading.load_model` opens any model file and imports the torch stack only for
``.safetensors`` models.
"""
