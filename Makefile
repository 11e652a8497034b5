# `make demo` and `make test` each create .venv and install the project into it.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test bench clean

# The offline speech sets (zoo/data/speech.py) are spoken by espeak-ng: installed here when
# missing and apt is at hand (as root, or through sudo), otherwise a warning; those sets
# then fail with the same advice.
ESPEAK_APT := apt-get install -y --no-install-recommends espeak-ng

$(STAMP): setup.cfg pyproject.toml
	@command -v espeak-ng >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    $(ESPEAK_APT) || { apt-get update && $(ESPEAK_APT); }; \
	  elif command -v apt-get >/dev/null && command -v sudo >/dev/null; then \
	    sudo $(ESPEAK_APT) || { sudo apt-get update && sudo $(ESPEAK_APT); }; \
	  fi; \
	  command -v espeak-ng >/dev/null || echo "warning: espeak-ng is needed for the offline speech sets" \
	    "(spoken_commands, spoken_sentences): install it (apt-get install espeak-ng, brew install espeak-ng)" >&2; \
	}
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/zoo demo

# Two processes, a file at a time each (a file's module fixtures, its trained models, stay in one).
TEST_WORKERS ?= 2

test: $(STAMP)
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile --durations=30 tests

bench: $(STAMP)
	$(PY) -m pip install --quiet -e '.[test,bench]'
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) runs models build *.egg-info
