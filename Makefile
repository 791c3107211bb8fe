# Two commands on a fresh machine:  `make demo` (the main job end to end) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint bench clean browser sshd

# The demo installs what the demo runs: fastreg with its Cython extension, and Pillow (the `ui`
# extra) for the JPEGs it generates and for `fastreg ui` afterwards. The tests' tools come on top.
$(BIN)/fastreg: pyproject.toml setup.py fastreg/_hash.pyx fastreg/_files.pyx fastreg/_index.pyx fastreg/_posix.pxd
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[ui]'
	touch $@

$(VENV)/.test-deps: $(BIN)/fastreg pyproject.toml
	$(BIN)/pip install -q -e '.[test]'
	touch $@

demo: $(BIN)/fastreg
	bash scripts/demo.sh

lint: $(VENV)/.test-deps
	$(BIN)/ruff check fastreg tests bench
	$(BIN)/mypy

# torch for the DataLoader tests of fastreg.data: a test-time install, never a requirement of the
# package (pinned: on this project's CI machines pip finds that release's CPU build on disk).
TORCH := torch==2.13.0
$(VENV)/.torch: $(VENV)/.test-deps
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install -q '$(TORCH)'
	touch $@

# Chromium and ChromeDriver from the distribution for the browser tests of `fastreg ui` (Selenium
# drives them; nothing is downloaded at run time). Installed where apt-get can (as root); elsewhere
# those tests are skipped, unless FASTREG_BROWSER_TESTS=required (CI).
browser:
	@test -x /usr/bin/chromium -a -x /usr/bin/chromedriver || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    { apt-get update -qq || true; } && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null \
	      || echo "note: could not install chromium: the browser tests will be skipped"; \
	  else echo "note: no /usr/bin/chromium: the browser tests will be skipped (apt-get install chromium chromium-driver)"; fi; }

# The distribution's OpenSSH server for the ssh:// remote tests (each test session starts its own
# sshd on a loopback port with its own config and keys; the system service is never used).
# Installed where apt-get can (as root); elsewhere those tests are skipped, unless
# FASTREG_SERVER_TESTS=required (CI).
sshd:
	@test -x /usr/sbin/sshd || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-server >/dev/null \
	      || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-server >/dev/null; } \
	      || echo "note: could not install openssh-server: the ssh:// tests will be skipped"; \
	  else echo "note: no /usr/sbin/sshd: the ssh:// tests will be skipped (apt-get install openssh-server)"; fi; }

# Azurite (Azure Blob Storage's emulator) for the azure:// remote tests: the npm package, under
# .tools/azurite, with the distribution's Node.js (installed as root where it is missing).
AZURITE := .tools/azurite/node_modules/.bin/azurite-blob
$(AZURITE):
	@command -v npm >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null \
	      || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null; }; fi; }
	@command -v npm >/dev/null && npm install -s --no-audit --no-fund --prefix .tools/azurite azurite@3 \
	  || echo "note: could not install azurite: the azure:// tests will be skipped"

test: $(VENV)/.torch browser sshd $(AZURITE) lint
	$(BIN)/python -m pytest -q

bench: $(VENV)/.test-deps
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) build demo bench/work fastreg/_hash.c fastreg/_files.c fastreg/_index.c fastreg/*.so
