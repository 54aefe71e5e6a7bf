# One virtual environment in .venv; every target installs what it needs first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint migrate bench install clean i18n browser-deps

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## run: migrate, load the demo data and serve on http://127.0.0.1:8000 (scheduler in-process)
# The demo has repair callbacks made by the IVR (the local call simulator without a Twilio
# account), so that the console's IVR page shows calls being placed and answered.
DEMO_ENV := CALLCENTER_RULES__TYPES__REPAIR__CHANNEL=ivr

run: $(STAMP)
	$(BIN)/callcenter db upgrade
	$(DEMO_ENV) $(BIN)/callcenter demo load
	$(DEMO_ENV) $(BIN)/callcenter serve --host 127.0.0.1 --port 8000

## test: lint, type-check and run the whole test suite (the browser tests too)
test: lint browser-deps
	$(BIN)/pytest -n auto --dist loadgroup -q

# The console's browser tests drive Debian's Chromium, and its pages need a CJK font.
browser-deps:
	@missing=""; \
	[ -x /usr/bin/chromium ] || missing="chromium"; \
	fc-list :lang=zh 2>/dev/null | grep -q . || missing="$$missing fonts-noto-cjk"; \
	if [ -n "$$missing" ]; then \
		echo "installing for the browser tests:$$missing"; \
		apt-get update -q >/dev/null && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing >/dev/null; \
	fi

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

migrate: $(STAMP)
	$(BIN)/callcenter db upgrade

bench: $(STAMP)
	$(BIN)/python -m bench.run_all

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

## i18n: extract the console's messages and merge them into the catalogues (then translate)
i18n: $(STAMP)
	$(BIN)/pybabel extract -F babel.cfg -k N_ -k gettext_noop --no-location --sort-output \
		--project callcenter --version 0.1 -o api/console/locales/messages.pot .
	$(BIN)/pybabel update -i api/console/locales/messages.pot -d api/console/locales \
		-l zh_CN --no-fuzzy-matching --ignore-obsolete
