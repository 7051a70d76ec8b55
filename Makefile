# The two commands a new machine needs: `make demo` and `make test`. Everything is installed into
# virtual environments here, from this repository's own files (CPU builds; see constraints.txt).

PYTHON ?= python3
PIP_FLAGS ?= -q --disable-pip-version-check -c constraints.txt
VENV := .venv
DISTS := core plugins/torch plugins/onnx
DEMO_WS ?= sextant-workspace/mlp

.PHONY: demo test test-core test-torch test-onnx test-template test-all install clean

# one environment with every distribution (editable), for the demo and the cross-distribution tests
$(VENV)/.installed: $(foreach d,$(DISTS),$(d)/pyproject.toml) constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install $(PIP_FLAGS) --upgrade pip
	$(VENV)/bin/pip install $(PIP_FLAGS) -e ./core[test] -e ./plugins/torch[test,onnx] -e './plugins/onnx[cpu,test]'
	touch $@

install: $(VENV)/.installed

demo: install
	$(VENV)/bin/sextant plugins
	$(VENV)/bin/sextant optimize examples/mlp.py:build --samples examples/mlp.py:samples --workspace $(DEMO_WS)

# each distribution alone with the core (non-editable), so a missing dependency declaration fails
.venv-%/.installed: constraints.txt core/pyproject.toml
	$(PYTHON) -m venv .venv-$*
	.venv-$*/bin/pip install $(PIP_FLAGS) --upgrade pip
	.venv-$*/bin/pip install $(PIP_FLAGS) ./core[test] $(if $(filter core,$*),,'./plugins/$*[test$(if $(filter onnx,$*),$(comma)cpu,)]')
	touch $@

comma := ,

test-core: .venv-core/.installed
	.venv-core/bin/python -m pytest core/tests

test-torch: .venv-torch/.installed
	.venv-torch/bin/python -m pytest plugins/torch/tests

test-onnx: .venv-onnx/.installed
	.venv-onnx/bin/python -m pytest plugins/onnx/tests

test-template: .venv-_template/.installed
	.venv-_template/bin/python -m pytest plugins/_template/tests

test-all: install
	$(VENV)/bin/python -m pytest tests plugins/torch/tests plugins/onnx/tests

test: test-core test-template test-torch test-onnx test-all

clean:
	rm -rf $(VENV) .venv-core .venv-_template .venv-torch .venv-onnx sextant-workspace
