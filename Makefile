# The two commands a new machine needs: `make demo` and `make test`. Everything is installed into
# virtual environments here, from this repository's own files (CPU builds; see constraints.txt).
# For the edit-test loop: `make test-fast` (the core and the suites of the distributions you changed).
#
# Installs use uv, bootstrapped by pip into .venv-uv (its version pinned in constraints.txt): one
# download cache for every environment, files hard-linked from it rather than copied, and the
# repository's distributions built into wheels once (.whl/) and installed from there,
# instead of a pip build of each distribution in each environment on every run. uv reads none of
# pip's settings, so tools/pip_sources.py hands it the sources pip uses on this machine (a local
# folder holding torch's CPU build, say); constraints.txt pins that build.

PYTHON ?= python3
VENV := .venv
WHEELS := .whl
DEMO_WS ?= sextant-workspace/mlp
UV := .venv-uv/bin/uv
comma := ,

# hard links from uv's cache (uv copies where the cache is on another file system, and says so);
# never a Python downloaded by uv: every environment is made from $(PYTHON)
export UV_LINK_MODE ?= hardlink
export UV_PYTHON_DOWNLOADS := never
# bytecode written at install, as pip does by default: where PYTHONDONTWRITEBYTECODE is set (these
# machines) Python never writes it, and every process compiled torch's sources again (import torch
# 3.0 s, 1.45 s compiled; `sextant optimize` of the MLP 25.7 s, 20.6 s compiled)
export UV_COMPILE_BYTECODE ?= 1

# pip's package sources as uv options, read once per `make` (sub-makes inherit them)
ifndef SEXTANT_UV_SOURCES
export SEXTANT_UV_SOURCES := $(shell $(PYTHON) tools/pip_sources.py)
endif
INSTALL = $(UV) pip install -q -c constraints.txt $(SEXTANT_UV_SOURCES) --python

.PHONY: browser postgres system-packages demo envs wheels test test-suites test-fast test-fast-tests test-core test-torch test-onnx test-search test-tensorflow test-tensorrt test-openvino test-triton test-template test-_template test-all test-architectures install clean

$(UV): constraints.txt
	$(PYTHON) -m venv .venv-uv
	.venv-uv/bin/pip install -q --disable-pip-version-check -c constraints.txt uv
	touch $@

# --- the repository's distributions, each built into a wheel once (rebuilt when its files change) ---
# name → folder: core, else plugins/NAME; .whl/NAME/ holds its one wheel
DIST_NAMES := core torch onnx search tensorflow tensorrt triton openvino _template
dir_of = $(if $(filter core,$(1)),core,plugins/$(1))
# a wheel with extras, as a shell word: $(call whl,torch,[test]) → ".whl/torch/sextant_torch-….whl[test]"
whl = "$$(echo $(WHEELS)/$(1)/*.whl)$(2)"

# setuptools reuses build/ between builds: a module deleted from src/ would live on in the wheel
define wheel_rule
$(WHEELS)/$(1)/.built: $(call dir_of,$(1))/pyproject.toml $(shell find $(call dir_of,$(1))/src -type f -not -path '*/__pycache__/*' -not -path '*.egg-info/*' 2>/dev/null) | $(UV)
	rm -rf $(WHEELS)/$(1) $(call dir_of,$(1))/build
	$(UV) build -q --wheel --out-dir $(WHEELS)/$(1) $(call dir_of,$(1))
	touch $$@
endef
$(foreach d,$(DIST_NAMES),$(eval $(call wheel_rule,$(d))))
wheels: $(foreach d,$(DIST_NAMES),$(WHEELS)/$(d)/.built)

# --- one environment with every distribution (editable), for the demo and the cross-distribution tests ---
# (--seed: pip inside, for users and for tests/test_plugins_and_docs.py's `pip install --target`; after
# the wheels, whose builds empty the build/ folders that setuptools' editable builds also use)
$(VENV)/.installed: $(foreach d,$(DIST_NAMES),$(call dir_of,$(d))/pyproject.toml) constraints.txt | $(UV) wheels
	$(UV) venv -q --seed --allow-existing --python $(PYTHON) $(VENV)
	$(INSTALL) $(VENV) -e './core[report,test]' -e './plugins/torch[test,onnx,pipelines]' -e './plugins/onnx[cpu,genai,test]' -e './plugins/search[test]' -e './plugins/tensorflow[cpu,onnx,test]' -e './plugins/tensorrt[test]' -e ./plugins/triton -e './plugins/openvino[generation,genai,int8]'
	touch $@

install: $(VENV)/.installed

demo: install
	$(VENV)/bin/sextant plugins
	$(VENV)/bin/sextant optimize examples/mlp.py:build --samples examples/mlp.py:samples --workspace $(DEMO_WS)

# --- each distribution alone with the core (from the wheels), so a missing dependency declaration fails ---
# The environment is made anew when a declaration changes; the distributions themselves are reinstalled
# from the fresh wheels on every run (--no-deps: quick).
extras_of = [test$(if $(filter onnx tensorflow,$(1)),$(comma)cpu,)]
alone_wheels = $(call whl,core,$(2)) $(if $(filter core,$(1)),,$(call whl,$(1),$(3)))
SUITES := core _template search torch onnx tensorflow tensorrt openvino

.SECONDEXPANSION:
$(foreach s,$(SUITES),.venv-$(s)/.installed): .venv-%/.installed: constraints.txt core/pyproject.toml $$(call dir_of,$$*)/pyproject.toml | $(UV) $(WHEELS)/core/.built $(WHEELS)/$$*/.built
	rm -rf .venv-$*
	$(UV) venv -q --python $(PYTHON) .venv-$*
	$(INSTALL) .venv-$* $(call alone_wheels,$*,[test],$(call extras_of,$*))
	touch $@

$(addprefix test-,$(SUITES)): test-%: .venv-%/.installed $(WHEELS)/core/.built $(WHEELS)/$$*/.built
	$(INSTALL) .venv-$* --no-deps --reinstall $(call alone_wheels,$*)
	.venv-$*/bin/python -m pytest --durations=10 $(if $(filter core,$*),core/tests,plugins/$*/tests)

test-template: test-_template

# --- Debian's packages the tests use: PostgreSQL (the two-worker analyze test, started by the test on
# loopback) and Chromium (tests/test_report_browser.py), installed when missing where apt-get can (as
# root), in one apt-get (it takes a system-wide lock, so two at once would fail). Where it cannot, those
# tests skip and say so; where it could, SEXTANT_REQUIRE_POSTGRES/BROWSER=1 make a missing one a failure.
CAN_APT := $(shell command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && echo 1)
APT_MISSING = $(if $(wildcard /usr/lib/postgresql/*/bin/initdb),,postgresql) $(if $(shell command -v chromium),,chromium)

system-packages:
	@missing="$(strip $(APT_MISSING))"; [ -z "$$missing" ] || { [ -n "$(CAN_APT)" ] && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; } || echo "!!! $$missing not installed and apt-get cannot install it here: the two-worker analyze test (PostgreSQL) or tests/test_report_browser.py (Chromium) will SKIP" >&2

postgres browser: system-packages

# the suites that need them depend on system-packages, except in the second phase of `make test`
# (SYSTEM_DONE=1), which comes after the first installed them: there a prerequisite with a recipe would
# hold back the suites that wait for it
SYSTEM := $(if $(SYSTEM_DONE),,system-packages)

# sextant-triton runs the real tritonserver from the nvidia-pytriton wheel, whose Python stub needs
# numpy<2 (nvidia-pytriton pins it): its own environment holds what its tests optimize and deploy
# (sextant analyze's tests also use the search strategies, the report's plotly, perf_analyzer 2.51
# taken out of the tritonclient 2.51 wheel by `pip download`, hence --seed, and a real PostgreSQL), and
# sextant-openvino, so that a package whose winner is an OpenVINO candidate deploys, serves and is analyzed
# here as in the README's one environment for serving
TRITON_NAMES := core torch onnx search triton openvino
TRITON_WHEELS_EXTRAS = $(call whl,core,[report$(comma)test]) $(call whl,torch,[test$(comma)onnx]) $(call whl,onnx,[cpu$(comma)test]) $(call whl,search) $(call whl,triton,[test]) $(call whl,openvino)
TRITON_WHEELS = $(foreach d,$(TRITON_NAMES),$(call whl,$(d)))

.venv-triton/.installed: constraints.txt $(foreach d,$(TRITON_NAMES),$(call dir_of,$(d))/pyproject.toml) | $(UV) $(foreach d,$(TRITON_NAMES),$(WHEELS)/$(d)/.built)
	rm -rf .venv-triton
	$(UV) venv -q --seed --python $(PYTHON) .venv-triton
	$(INSTALL) .venv-triton $(TRITON_WHEELS_EXTRAS)
	.venv-triton/bin/python -m sextant_triton.perf install --if-missing
	touch $@

# SEXTANT_REQUIRE_TRITON=1: tritonserver and perf_analyzer are installed above, so a test that cannot
# find them fails instead of skipping; SEXTANT_REQUIRE_ALL=1: so does one missing any other component
# (torch.compile's compiler, say)
test-triton: .venv-triton/.installed $(SYSTEM) $(foreach d,$(TRITON_NAMES),$(WHEELS)/$(d)/.built)
	$(INSTALL) .venv-triton --no-deps --reinstall $(TRITON_WHEELS)
	SEXTANT_REQUIRE_TRITON=1 SEXTANT_REQUIRE_ALL=1 SEXTANT_REQUIRE_POSTGRES=$(if $(CAN_APT),1,0) .venv-triton/bin/python -m pytest --durations=10 plugins/triton/tests

# --- with everything installed together: the cross-distribution tests, and the plugin tests that need
# another plugin or a package their own environment lacks (torch exports run by ONNX Runtime; the
# ModelOutput of a transformers BertModel exported; the TensorRT planner, which plans from the ONNX
# plugin's sources). Every plugin's whole suite ran above in an environment of its own.
# SEXTANT_REQUIRE_ALL=1: everything is installed here, so a test that cannot import what it needs fails
# instead of skipping (a test module that cannot be imported is a collection error, and
# --continue-on-collection-errors runs the rest and still fails).
ALL_TESTS := tests plugins/torch/tests/test_torch_plugin.py::test_convnet_every_format \
	plugins/torch/tests/test_torch_plugin.py::test_transformer_with_dict_inputs_mask_and_varying_length \
	plugins/torch/tests/test_exported_outputs.py::test_a_transformers_model_output_exports_and_loads_in_a_fresh_process \
	plugins/torch/tests/test_exported_outputs.py::test_the_legacy_onnx_exporter_passes_keyword_inputs_by_name \
	plugins/tensorrt/tests/test_tensorrt_plugin.py::test_without_a_gpu_the_planner_skips_engine_builds_with_the_reason

test-all: install $(SYSTEM)
	SEXTANT_REQUIRE_ALL=1 SEXTANT_REQUIRE_BROWSER=$(if $(CAN_APT),1,0) $(VENV)/bin/python -m pytest --durations=10 --continue-on-collection-errors $(ALL_TESTS)

# Every model of tests/zoo.py (real transformers architectures from tiny random configurations)
# optimized and its pick checked in a fresh process: the default two (BERT and Wav2Vec2) run in test-all,
# the full set here (about a minute each on 2 cores; not part of `make test`)
test-architectures: install
	$(VENV)/bin/python -m pytest tests/test_architectures.py -m "architectures or not architectures"

# --- make test: in two phases. First the environments (and PostgreSQL and Chromium), two installs side
# by side. Then the suites, two at a time on 2 cores (TEST_JOBS). Three at a time was faster (clean runs
# on a 2-core AMD EPYC: 1243 s with two, 990-1083 s with three) but loads the machine enough that two of
# four such runs failed a test that passes at two (a pick that changed with the load; a perf_analyzer run
# that did not find a just-loaded model): `make test TEST_JOBS=3` where a failure costs only a rerun.
# Longest first (test-all ~850-1000 s, test-triton ~720-780, test-torch ~390-520, test-core ~200-260,
# the rest under a minute and a half each): make hands a free job slot to the next suite in this list,
# so the longest start at once and the others follow in whichever slot frees first, the shortest last.
# (In one phase, make's walk through the prerequisites would start the suites whose environments came
# first, and the longest last.) --keep-going: one failing suite does not stop the others, and the run
# still fails; --output-sync: each suite's output comes in one piece when it ends. The longest print
# their ten slowest tests (--durations=10): they decide how long `make test` takes.
SUITE_TARGETS := test-all test-triton test-torch test-core test-tensorflow test-openvino test-onnx test-search test-tensorrt test-template
ENVS := $(VENV)/.installed .venv-triton/.installed $(foreach s,$(SUITES),.venv-$(s)/.installed)

envs:
	$(MAKE) --no-print-directory -j2 system-packages $(ENVS)

test-suites: $(SUITE_TARGETS)

TEST_JOBS ?= 2
test: envs
	$(MAKE) --no-print-directory -j$(TEST_JOBS) --keep-going --output-sync=target test-suites SYSTEM_DONE=1

# --- make test-fast: the core's suite and those of the distributions changed since main (committed or
# not), each in its own environment as in `make test`, plus the files of tests/ that changed
FAST_BASE ?= $(shell git merge-base HEAD main 2>/dev/null || git merge-base HEAD origin/main 2>/dev/null)
CHANGED = $(sort $(shell { git diff --name-only $(FAST_BASE); git ls-files --others --exclude-standard; } 2>/dev/null))
CHANGED_SUITES = $(sort $(foreach f,$(filter plugins/%,$(CHANGED)),$(word 2,$(subst /, ,$(f)))))
CHANGED_TESTS = $(wildcard $(filter tests/test_%.py,$(CHANGED)))

test-fast:
	$(MAKE) --no-print-directory -j2 --keep-going --output-sync=target test-core $(addprefix test-,$(filter $(SUITES) triton,$(CHANGED_SUITES))) $(if $(CHANGED_TESTS),FAST_TESTS="$(CHANGED_TESTS)" test-fast-tests)

test-fast-tests: install
	SEXTANT_REQUIRE_ALL=1 $(VENV)/bin/python -m pytest $(FAST_TESTS)

clean:
	rm -rf $(VENV) .venv-uv .venv-core .venv-_template .venv-search .venv-torch .venv-onnx .venv-tensorflow .venv-tensorrt .venv-openvino .venv-triton $(WHEELS) sextant-workspace

# The CUDA paths on a GPU machine that has Python and a CUDA build of PyTorch but no network: the
# tree's distributions installed with --no-deps beside the machine's torch (wheels it lacks carried
# in gpu/wheels), `pytest -m gpu`, the examples on cuda; one summary (see gpu/check.py). Exits 0
# saying "no CUDA device" where there is none. GPU_PYTHON: the interpreter that has the CUDA torch.
GPU_PYTHON ?= python3
GPU_CHECK_FLAGS ?=

.PHONY: test-gpu
test-gpu:
	$(GPU_PYTHON) gpu/check.py $(GPU_CHECK_FLAGS)
