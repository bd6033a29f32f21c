# Set-up and checks for a fresh Debian (12 or later) machine, as root (or with sudo).
#   make demo   install what is missing, fit sleepstudy and InstEval, print summaries
#   make test   install what is missing, run the test suite
#   make bench  also install R's lme4 and run the benchmarks against it
#   make docs   build the documentation (Sphinx) into docs/_build/html, running its examples
#   make rdeps  R with lme4, lmerTest, pbkrtest, numDeriv: what tests/reference/make_*.R need
SHELL := /bin/bash
PYTHON ?= /usr/bin/python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
SYSPKGS := build-essential python3-dev python3-venv libsuitesparse-dev libopenblas0-pthread
RPKGS := r-base-core r-cran-lme4 r-cran-jsonlite r-cran-numderiv r-cran-lmertest r-cran-pbkrtest
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test bench docs sysdeps rdeps clean

define apt_install
	@missing=""; for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then echo "installing:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null; fi
endef

sysdeps:
	$(call apt_install,$(SYSPKGS))

rdeps:
	$(call apt_install,$(RPKGS))

$(VENV)/.installed: pyproject.toml | sysdeps
	@[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip setuptools wheel
	$(PIP) install -q numpy cython
	@# scikit-sparse 0.5 needs SuiteSparse >= 7; Debian 12 ships 5.12, where 0.4.x builds. The
	@# header is read now, after sysdeps installed it (tools/scikit_sparse_spec.py)
	@spec=$$($(PYTHON) tools/scikit_sparse_spec.py) && echo "installing $$spec" && \
	$(PIP) install -q --no-build-isolation "$$spec"
	$(PIP) install -q -e ".[test]"
	@# compile the numba kernels once, into the tree, for every later process and user
	$(PY) -m sparsemixed.precompile
	@touch $@

demo: $(VENV)/.installed
	$(PY) -m sparsemixed.demo

test: $(VENV)/.installed
	$(PY) -m pytest -q

bench: $(VENV)/.installed rdeps
	$(PY) benchmarks/run.py

# -W -n: any warning, a broken link or cross-reference among them, fails the build; -E: a
# fresh environment, so that the examples run and the API reflects the code every time
docs: $(VENV)/.installed
	$(PY) -m sphinx -W -n -E -b html docs docs/_build/html

clean:
	rm -rf $(VENV) build *.egg-info
