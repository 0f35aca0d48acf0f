# The two quick-start commands: `make demo` and `make test`. Each sets up everything it needs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
OUT ?= data

.PHONY: setup browser system demo test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e ".[test,dev]"
	touch $@

setup: $(VENV)/.installed browser system

# A browser for the pages that need JavaScript, and Chrome's headless shell (a smaller build)
# for the signing pages: Debian's chromium and chromium-headless-shell when we can install
# packages, else Playwright's own downloads. Already present (or TAGARCHIVE_CHROMIUM /
# TAGARCHIVE_HEADLESS_SHELL set): nothing to do.
browser: $(VENV)/.installed
	@$(BIN)/python -c "from crawler.downloader.chromium import find_chromium; import sys; sys.exit(0 if find_chromium() else 1)" 2>/dev/null \
	|| { if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	       apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	     else $(BIN)/playwright install chromium; fi; }
	@$(BIN)/python -c "from crawler.downloader.chromium import find_headless_shell; import sys; sys.exit(0 if find_headless_shell() else 1)" 2>/dev/null \
	|| { if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	       DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium-headless-shell >/dev/null \
	       || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium-headless-shell >/dev/null; }; \
	     else $(BIN)/playwright install chromium-headless-shell; fi; }

# Other system pieces, installed only when missing and only where we can (root on Debian/Ubuntu):
# Java for the Spark recipe (pyspark) and CJK fonts so reports and PNGs show 小红书, not boxes.
system:
	@missing=""; \
	command -v java >/dev/null || missing="$$missing default-jre-headless"; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	fc-list 2>/dev/null | grep -qi "noto sans cjk" || missing="$$missing fonts-noto-cjk"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "please install:$$missing (Java: the Spark recipe test; redis-server: the distributed tests)"; fi; \
	fi

demo: setup
	$(BIN)/tagarchive demo --out $(OUT)

test: setup
	$(BIN)/pytest -q -n 3 --dist loadfile

# ruff, the layer contracts (pyproject.toml [tool.importlinter], docs/architecture.md) and
# mypy --strict over crawler, pipelines and storage (pyproject.toml [tool.mypy])
lint: $(VENV)/.installed
	$(BIN)/ruff check crawler pipelines storage replica tests benchmarks
	$(BIN)/lint-imports
	$(BIN)/mypy

# Every benchmark with its target and PASS/FAIL (docs/performance.md); BENCH_ARGS=--quick for a
# shorter run, BENCH_ARGS="--only http" for one.
bench: setup
	$(BIN)/python -m benchmarks $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
