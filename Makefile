# vad4space_ros developer entry points. `make demo` and `make test` set up .venv on first use.
VENV ?= .venv
PY := $(VENV)/bin/python
SHARED_ONNX := $(abspath ../shared/data/mobilenetv2_onnx_int8/mobilenetv2-12-int8.onnx)
# Offline ImageNet MobileNetV2: converted from the ONNX Model Zoo file when it is available here.
export VAD4SPACE_MOBILENETV2_ONNX ?= $(if $(wildcard $(SHARED_ONNX)),$(SHARED_ONNX),)

.PHONY: setup demo test lint clean

$(VENV)/.installed: requirements.txt setup.py scripts/setup_env.sh
	VAD4SPACE_VENV=$(VENV) bash scripts/setup_env.sh
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(VENV)/bin/vad4space demo --out runs/demo

test: setup
	$(PY) -m pytest -q

lint: setup
	$(PY) -m pytest -q -m "flake8 or pep257 or linter"

clean:
	rm -rf runs build install log .pytest_cache
