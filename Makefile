# Two commands a new user needs: `make demo` and `make test`. Both set up first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: setup setup-test test test-fast lint browser demo bench bench-scale bench-quality screenshots clean

# The runtime: the library, the pipeline's tools and the viewer (what `make demo` needs).
setup: $(VENV)/.installed-demo
# ...plus what the tests and lint need (torch, moto, dvc-s3, webdataset, mypy, ...).
setup-test: $(VENV)/.installed-test

# Re-install whenever the project's dependencies change.
$(VENV)/.installed-%: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[$*]'
	touch $@

# Lint first, then the tests, on every core (pytest-xdist: each test in its own temp
# folders, so they run side by side). pytest exits 5 when it collected nothing: say so
# instead of passing on nothing.
PYTEST_ARGS ?= -n auto
test: lint browser
	@$(BIN)/python -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests" >&2; fi; \
	exit $$rc

# The edit loop: every test but real git and DVC, Chromium, Ray and the slow fault
# injection (markers set in tests/conftest.py). `make test` still runs everything.
test-fast: setup-test
	@$(BIN)/python -m pytest -n auto -q -m "not slow and not dvc and not browser and not ray"

# Style, formatting, types, and what each part of the library may import.
lint: setup-test
	$(BIN)/ruff check imageshelf pipeline tests benchmarks
	$(BIN)/ruff format --check imageshelf pipeline tests benchmarks
	$(BIN)/mypy
	PYTHONPATH=tests $(BIN)/lint-imports  # tests/import_contracts.py: a contract type

# The viewer's tests drive a real Chromium: Debian's package, installed where we may
# (root with apt-get); elsewhere those tests fail with one line saying how to install it.
CHROMIUM ?= /usr/bin/chromium
browser:
	@test -x $(CHROMIUM) || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  echo "make test: installing Chromium from Debian's packages (the viewer's tests)" && \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
	  || echo "make test: no Chromium at $(CHROMIUM), and it cannot be installed here; the viewer's tests will fail" >&2

# dvc.yaml runs `python pipeline/<stage>.py`: the venv's python must come first on PATH.
demo: setup
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m imageshelf demo

# Side-by-side timings; writes benchmarks/results.md (and results-view.md, the viewer's;
# results-stream.md, streaming from the remote and Ray; results-quality.md, duplicates,
# leakage and unusable images against cleanvision on 2,000 planted images).
# IMAGES=2000 for a quick look.
# The peers (Lance, Hugging Face datasets, litdata) run in an environment of their own,
# and MDS in another (its pins conflict with theirs).
IMAGES ?= 20000
PEERS  := .venv-peers
MDS    := .venv-mds
bench: setup-test $(PEERS)/.installed $(MDS)/.installed
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python benchmarks/bench.py --images $(IMAGES)
	$(BIN)/python benchmarks/view.py --images 100000  # the viewer: benchmarks/results-view.md
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python benchmarks/stream.py  # results-stream.md
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python benchmarks/quality.py --images 2000  # results-quality.md

$(PEERS)/.installed: benchmarks/peers-requirements.txt
	test -x $(PEERS)/bin/python || $(PYTHON) -m venv $(PEERS)
	$(PEERS)/bin/python -m pip install --quiet -r benchmarks/peers-requirements.txt
	touch $@

$(MDS)/.installed: benchmarks/mds-requirements.txt
	test -x $(MDS)/bin/python || $(PYTHON) -m venv $(MDS)
	$(MDS)/bin/python -m pip install --quiet -r benchmarks/mds-requirements.txt
	touch $@

# The data-quality audit against cleanvision alone (benchmarks/results-quality.md); the
# issue's speed goal is at 20,000 images, by hand: QUALITY_IMAGES=20000 writes
# results-quality-20000.md (the corpus alone takes minutes to build).
QUALITY_IMAGES ?= 2000
bench-quality: setup-test $(PEERS)/.installed
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python benchmarks/quality.py --images $(QUALITY_IMAGES)

# What adding 1% costs at scale; writes benchmarks/results-scale.md. IMAGES=1000000 by hand.
SCALE_IMAGES ?= 100000
bench-scale: setup-test
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python benchmarks/scale.py --images $(SCALE_IMAGES)

# The README's pictures of the viewer, made by its tests' browser from the demo's images.
screenshots: setup-test browser
	IMAGESHELF_SCREENSHOTS=$(CURDIR)/docs/images $(BIN)/python -m pytest -q -p no:xdist \
	  tests/test_viewer.py tests/test_viewer_masks.py tests/test_viewer_quality.py \
	  -k "diff_of_two_commits or palette_mask_is_drawn or changed_mask_old_and_new or quality_counts_each_kind"

clean:
	rm -rf $(VENV) $(PEERS) $(MDS) .pytest_cache .mypy_cache .ruff_cache
