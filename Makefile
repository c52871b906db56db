# callmanager — two commands do all the set-up: `make run` and `make test`.
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
ARGS   ?=

.PHONY: run stop test bench install deps clean lab lab-down prompts webapp

install: deps $(STAMP)

deps:
	@bash scripts/install-debian.sh

# A venv on Debian's Python (the one Kamailio's app_python3 embeds), with the project installed.
$(STAMP): pyproject.toml
	@test -x $(PY) || /usr/bin/python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	@touch $(STAMP)

run: install
	$(PY) -m controlplane.node.run start $(ARGS)

stop:
	@test -x $(PY) && $(PY) -m controlplane.node.run stop $(ARGS) || echo "nothing to stop (no venv yet)"

# Tests run in TEST_WORKERS processes (pytest-xdist, one test file at a time each; tests/conftest.py); 1: one process.
TEST_WORKERS ?= 3
test: install
	$(PY) -m pytest -q $(if $(filter 1,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --no-loadscope-reorder --durations=15) $(ARGS)

bench: install
	$(PY) -m tests.bench.run $(ARGS)

# The rollout lab (tests/lab): network-namespace hosts with sshd, two data centers joined by a 20 ms WAN.
lab: install
	$(PY) -m tests.lab.netlab up $(ARGS)

lab-down:
	@test -x $(PY) && $(PY) -m tests.lab.netlab down || echo "no lab (no venv yet)"

# The media server's shipped prompts, made again from their texts (mediaserver/prompts/make_prompts.py) with espeak-ng.
prompts: install
	@command -v espeak-ng >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends espeak-ng)
	$(PY) mediaserver/prompts/make_prompts.py

# The web phone's bundle (webapp/dist, committed) built again from webapp/src with the pinned JsSIP and esbuild.
webapp:
	@command -v npm >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm)
	cd webapp && npm ci --no-audit --no-fund && node build.mjs

clean:
	rm -rf var/run var/log var/spool var/snapshot
