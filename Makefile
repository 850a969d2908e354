# Two commands do all the set-up: `make demo` and `make test`.
VENV ?= .venv
# Everything the demo and the tests use; a serving install needs only `.[cpu]` or `.[gpu]`.
EXTRAS ?= gpu,train,embedded,test
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# Quiet on stdout (`make demo ARGS=--json | jq` reads one JSON line), said on stderr.
$(STAMP): pyproject.toml
	@echo "installing .[$(EXTRAS)] into $(VENV) (a few minutes the first time)" >&2
	@python3 -m venv $(VENV)
	@$(PY) -m pip install -q --upgrade pip >&2
	@$(PY) -m pip install -q -e '.[$(EXTRAS)]' >&2
	@touch $(STAMP)

.PHONY: install demo test bench
install: $(STAMP)

demo: $(STAMP)
	@$(VENV)/bin/reckon demo $(ARGS)

test: $(STAMP)
	$(PY) -m pytest -q $(ARGS)

bench: $(STAMP)
	@$(VENV)/bin/reckon bench $(ARGS)
