# The two commands of the README. Each creates the project-local venv (.venv) when it is missing and
# installs into it; when pyproject.toml has not changed since the last install, that step is a no-op.
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)
ARGS   ?=

.PHONY: run test sheet install

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $@

# The main job: the default (quick) experiment end to end, report included. Extra overrides: make run ARGS="..."
run: $(STAMP)
	$(VENV)/bin/unclip-harness $(ARGS)

# The test suite (CPU, smoke preset): everything at fp32, then the numerics tests again under forced bf16, so
# a machine of either kind (with or without bf16 units) catches a numerical regression. ARGS go to both runs;
# ARGS that select no numerics test (pytest's exit status 5) leave the second run nothing to do.
test: $(STAMP)
	$(PY) -m pytest $(ARGS)
	$(PY) -m pytest -m numerics --precision=bf16 $(ARGS) || [ $$? -eq 5 ]

# A contact sheet of the world: make sheet ARGS="data.resolution=32 --out world.png"
sheet: $(STAMP)
	$(PY) -m harness.sheet $(ARGS)
