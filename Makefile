# The two commands of README.md:
#   make run   installs Ferry in .venv and opens it on the local sandbox
#   make test  installs Ferry with its test tools in .venv and runs every check
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test compat install install-test upgrade bench bench-quick bench-team bench-bandwidth bench-startup bench-floor screenshots bundle stress

# Every install comes from uv.lock (exact versions and hashes, for every
# platform): `make run`, `make test`, CI and the bundle get what was tested.
# uv itself, pinned, lives in a venv of its own (.uv); `make upgrade` moves
# the lock to the newest releases pyproject.toml allows and runs the tests.
UV_VERSION := 0.13.9
UV := .uv/bin/uv
SYNC := UV_PROJECT_ENVIRONMENT=$(VENV) UV_PYTHON_DOWNLOADS=never $(UV) sync --frozen --quiet \
	--python "$$(command -v $(PYTHON))"

$(UV):
	$(PYTHON) -m venv .uv
	.uv/bin/python -m pip install -q "uv==$(UV_VERSION)"

# Editable installs: a change to the code needs no reinstall, only a change to
# pyproject.toml or uv.lock does (the stamp files remember the last install).
install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

$(VENV)/.installed: pyproject.toml uv.lock | $(UV)
	$(SYNC)
	touch $@

$(VENV)/.installed-test: pyproject.toml uv.lock | $(UV)
	$(SYNC) --group test
	touch $@ $(VENV)/.installed

upgrade: | $(UV)
	$(UV) lock --upgrade
	rm -f $(VENV)/.installed $(VENV)/.installed-test
	$(MAKE) test

run: install
	@echo "Ferry is installed in $(CURDIR)/$(BIN); to have 'ferry' in every terminal:"
	@echo "  export PATH=\"$(CURDIR)/$(BIN):\$$PATH\"   (add it to ~/.profile)"
	$(BIN)/ferry sandbox --open

# --cov: the share of desktop_app/core's lines the tests ran, printed at the end
# and held above [tool.coverage.report] fail_under.
# lint-imports: the layering rule of docs/ARCHITECTURE.md ([tool.importlinter]
# in pyproject.toml); a broken contract fails the run.
test: install-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy desktop_app tests
	tools/ensure-system-packages
	QT_QPA_PLATFORM=offscreen $(BIN)/pytest --durations=20 --cov

# The inner loop: lint, layers, types and the unit tests (moto, no servers to start), about a minute.
test-fast: install-test
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/mypy desktop_app tests
	QT_QPA_PLATFORM=offscreen $(BIN)/pytest -q tests/unit

# The compatibility table: every case of tests/compat on SeaweedFS, moto,
# rclone serve s3, Ceph RGW, Swift + s3api and s3rver (about 20 min), written
# to docs/COMPATIBILITY.md with the date and versions, even when a case fails.
S3RVER_VERSION := 3.7.1
compat: install-test
	tools/ensure-system-packages compat
	test -x $(VENV)/node/node_modules/.bin/s3rver || \
		npm install --silent --no-audit --no-fund --prefix $(VENV)/node s3rver@$(S3RVER_VERSION)
	started=$$(date +%s); \
	FERRY_COMPAT_SERVERS=all FERRY_COMPAT_REPORT=$(VENV)/compat-report.json \
		$(BIN)/pytest -q -p no:cacheprovider tests/compat; status=$$?; \
	$(BIN)/python -m tests.compat.table $(VENV)/compat-report.json docs/COMPATIBILITY.md \
		--seconds $$(( $$(date +%s) - started )) && exit $$status

# The window under Xvfb: 20 rounds of folder -> upload -> clear -> quit (about 10 min).
stress: install-test
	tools/ensure-system-packages
	FERRY_STRESS_ROUNDS=20 QT_QPA_PLATFORM=offscreen $(BIN)/pytest -q tests/gui/test_stress.py

bench: install-test
	$(BIN)/python bench/run.py --rtt 0,30

# The same table in under three minutes: 256 MiB, 500 small files, 10,000 objects.
bench-quick: install-test
	$(BIN)/python bench/run.py --quick --rtt 0,30

bench-bandwidth: install-test
	$(BIN)/python bench/bandwidth.py

# 20 Ferry clients on one bucket and one PostgreSQL catalog, two relays to NATS.
bench-team: install-test
	$(BIN)/python bench/team.py --clients 20 --files 150

# What the stack (Python, boto3, SQLAlchemy) costs before Ferry's own work, beside
# the peers' 500 small files: the floor under the small-file targets (under a minute).
bench-floor: install-test
	$(BIN)/python bench/floor.py

# How fast the reading commands answer (`ferry status` within 0.3 s): a home of
# 50 transfers, each command 5 times after a warm-up (about a minute).
bench-startup: install-test
	$(BIN)/python bench/startup.py

# README's pictures: the window under Xvfb and icewm at 1366x768 and 1920x1080,
# driven with xdotool, the whole screen grabbed; then the window alone at 200 %.
screenshots: install-test
	tools/ensure-system-packages
	command -v icewm >/dev/null || apt-get install -y -q icewm >/dev/null \
		|| { echo "Please install icewm" >&2; exit 1; }
	$(BIN)/python tools/screenshots.py
	$(BIN)/python tools/screenshots.py --offscreen

bundle:
	packaging/build
