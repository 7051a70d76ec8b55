# The two commands a new machine needs: `make demo` and `make test`. Everything is installed into
# virtual environments here, from this repository's own files (CPU builds; see constraints.txt).

PYTHON ?= python3
PIP_FLAGS ?= -q --disable-pip-version-check -c constraints.txt
VENV := .venv
DISTS := core plugins/torch plugins/onnx plugins/search plugins/tensorflow plugins/tensorrt plugins/triton plugins/openvino
DEMO_WS ?= sextant-workspace/mlp

.PHONY: browser postgres demo envs test test-core test-torch test-onnx test-search test-tensorflow test-tensorrt test-openvino test-triton test-template test-_template test-all test-architectures install clean

# one environment with every distribution (editable), for the demo and the cross-distribution tests
$(VENV)/.installed: $(foreach d,$(DISTS),$(d)/pyproject.toml) constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install $(PIP_FLAGS) --upgrade pip
	$(VENV)/bin/pip install $(PIP_FLAGS) -e './core[report,test]' -e ./plugins/torch[test,onnx,pipelines] -e './plugins/onnx[cpu,test]' -e './plugins/search[test]' -e './plugins/tensorflow[cpu,onnx,test]' -e './plugins/tensorrt[test]' -e ./plugins/triton -e ./plugins/openvino
	touch $@

install: $(VENV)/.installed

demo: install
	$(VENV)/bin/sextant plugins
	$(VENV)/bin/sextant optimize examples/mlp.py:build --samples examples/mlp.py:samples --workspace $(DEMO_WS)

# each distribution alone with the core (non-editable), so a missing dependency declaration fails;
# the stamp covers the dependencies, and the distributions themselves are reinstalled on every run
comma := ,
dist_of = $(if $(filter core,$(1)),,'./plugins/$(1)[test$(if $(filter onnx tensorflow,$(1)),$(comma)cpu,)]')

.venv-%/.installed: constraints.txt core/pyproject.toml
	$(PYTHON) -m venv .venv-$*
	.venv-$*/bin/pip install $(PIP_FLAGS) --upgrade pip
	.venv-$*/bin/pip install $(PIP_FLAGS) ./core[test] $(call dist_of,$*)
	touch $@

test-core test-torch test-onnx test-search test-tensorflow test-tensorrt test-openvino test-_template: test-%: .venv-%/.installed
	.venv-$*/bin/pip install $(PIP_FLAGS) --no-deps --force-reinstall ./core $(call dist_of,$*)
	.venv-$*/bin/python -m pytest $(if $(filter core,$*),core/tests,plugins/$*/tests)

test-template: test-_template

# sextant-triton runs the real tritonserver from the nvidia-pytriton wheel, whose Python stub needs
# numpy<2 (nvidia-pytriton pins it): its own environment holds what its tests optimize and deploy
# (sextant analyze's tests also use the search strategies, the report's plotly, perf_analyzer 2.51
# taken out of the tritonclient 2.51 wheel, and a real PostgreSQL)
TRITON_DISTS := './core[report,test]' './plugins/torch[test,onnx]' './plugins/onnx[cpu,test]' './plugins/search' './plugins/triton[test]'

.venv-triton/.installed: constraints.txt core/pyproject.toml plugins/torch/pyproject.toml plugins/onnx/pyproject.toml plugins/search/pyproject.toml plugins/triton/pyproject.toml
	$(PYTHON) -m venv .venv-triton
	.venv-triton/bin/pip install $(PIP_FLAGS) --upgrade pip
	.venv-triton/bin/pip install $(PIP_FLAGS) $(TRITON_DISTS)
	.venv-triton/bin/python -m sextant_triton.perf install --if-missing
	touch $@

test-triton: .venv-triton/.installed postgres
	.venv-triton/bin/pip install $(PIP_FLAGS) --no-deps --force-reinstall $(TRITON_DISTS)
	SEXTANT_REQUIRE_POSTGRES=$(if $(CAN_APT),1,0) .venv-triton/bin/python -m pytest plugins/triton/tests

# PostgreSQL for the two-worker analyze test (Debian's package; started by the test on loopback)
postgres:
	@command -v /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { [ -n "$(CAN_APT)" ] && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; } || echo "!!! PostgreSQL is not installed and apt-get cannot install it here: the two-worker analyze test will SKIP" >&2

# Chromium for tests/test_report_browser.py (Debian's package): installed when missing where apt-get
# can (as root); where it cannot, that test skips and says so in pytest's summary. Where apt-get
# could install it, SEXTANT_REQUIRE_BROWSER=1 makes a missing browser a failure, not a skip.
CAN_APT := $(shell command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && echo 1)

browser:
	@command -v chromium >/dev/null 2>&1 || { [ -n "$(CAN_APT)" ] && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || echo "!!! chromium is not installed and apt-get cannot install it here: tests/test_report_browser.py will SKIP (the report is not checked in a browser)" >&2

# Every plugin's whole suite ran above in an environment of its own (and sextant-triton's with torch,
# ONNX and the search plugin). With everything installed together: the cross-distribution tests, and
# the plugin tests whose paths need another plugin (torch and TensorFlow exports run by ONNX Runtime;
# tests/test_tensorflow_onnx.py runs Keras models against ONNX Runtime end to end).
ALL_TESTS := tests plugins/tensorflow/tests/test_tensorflow_plugin.py::test_savedmodel_to_onnx_keeps_names_and_numbers \
	plugins/torch/tests/test_torch_plugin.py::test_convnet_every_format \
	plugins/torch/tests/test_torch_plugin.py::test_transformer_with_dict_inputs_mask_and_varying_length \
	plugins/torch/tests/test_exported_outputs.py::test_the_legacy_onnx_exporter_passes_keyword_inputs_by_name

test-all: install browser
	SEXTANT_REQUIRE_BROWSER=$(if $(CAN_APT),1,0) $(VENV)/bin/python -m pytest $(ALL_TESTS)

# Every model of tests/zoo.py (real transformers architectures from tiny random configurations)
# optimized and its pick checked in a fresh process: the default two (BERT and Wav2Vec2) run in test-all, the full set
# here (about a minute each on 2 cores; not part of `make test`)
test-architectures: install
	$(VENV)/bin/python -m pytest tests/test_architectures.py -m "architectures or not architectures"

# the environments first, two at a time (installing is mostly unpacking and compiling, one core each;
# apt-get, which takes a system-wide lock, stays in the sequential part), then the suites one by one
ENVS := $(VENV)/.installed $(foreach d,core _template search torch onnx tensorflow tensorrt openvino triton,.venv-$(d)/.installed)

envs:
	$(MAKE) -j2 $(ENVS)

test: envs test-core test-template test-search test-torch test-onnx test-tensorflow test-tensorrt test-openvino test-triton test-all

clean:
	rm -rf $(VENV) .venv-core .venv-_template .venv-search .venv-torch .venv-onnx .venv-tensorflow .venv-tensorrt .venv-openvino .venv-triton sextant-workspace

# The CUDA paths on a GPU machine that has Python and a CUDA build of PyTorch but no network: the
# tree's distributions installed with --no-deps beside the machine's torch (wheels it lacks carried
# in gpu/wheels), `pytest -m gpu`, the examples on cuda; one summary (see gpu/check.py). Exits 0
# saying "no CUDA device" where there is none. GPU_PYTHON: the interpreter that has the CUDA torch.
GPU_PYTHON ?= python3
GPU_CHECK_FLAGS ?=

.PHONY: test-gpu
test-gpu:
	$(GPU_PYTHON) gpu/check.py $(GPU_CHECK_FLAGS)
