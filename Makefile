# anfang-gateway: the two set-up commands are `make demo` and `make test`.
# Both install what they need first (mosquitto, a virtualenv in .venv).

PY        := .venv/bin/python
SCENARIO  ?= default
DURATION  ?= 60

.PHONY: setup demo test soak bench clean

setup:
	@./scripts/setup.sh

## Run the real gateway with every device simulated and its own local broker,
## printing each event as the broker delivers it (one JSON object per line).
demo: setup
	$(PY) -m gateway.cli sim --scenario $(SCENARIO) --duration $(DURATION)

## The default test suite (soak tests and benchmarks excluded). pytest's exit
## code 5 ("no tests collected") is a failure.
test: setup
	$(PY) -m pytest -p no:cacheprovider; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "test: pytest collected no tests" >&2; exit 1; fi; exit $$rc

## Long-running soak and chaos tests, run apart.
soak: setup
	$(PY) -m pytest -p no:cacheprovider -m soak; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "soak: no soak tests collected" >&2; exit 1; fi; exit $$rc

## Every benchmark, one table of figures and ratios, saved to docs/BENCHMARKS.md.
bench: setup
	$(PY) -m tests.benchmarks.run_all --output docs/BENCHMARKS.md

## The default scenario under random faults for MINUTES (default 5), then a verdict
## on every event (exit 1 if any was lost unreported, out of order, or changed).
.PHONY: chaos
chaos: setup
	$(PY) -m gateway.cli chaos --minutes $(or $(MINUTES),5) --seed $(or $(SEED),1)

clean:
	rm -rf .venv build *.egg-info .pytest_cache
