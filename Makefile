# Two entry points, both doing all set-up on a fresh Debian 12 machine as root:
#   make demo   set up, then run the main job on the built-in network-namespace lab
#   make test   set up, then lint, type-check and run every test (lab tests included)
# Set-up is idempotent: apt runs only when a package is missing, pip only when
# pyproject.toml, setup.py or the C decoder changed since the last install.

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
APT_PACKAGES := frr frr-pythontools bird2 nftables libnftables1 conntrack iproute2 \
                iputils-ping tcpdump procps psmisc prometheus systemd openssl conntrackd
# prometheus: the metrics lab test starts its own; systemd: systemd-analyze checks the unit;
# openssl: the eAPI switch tests make a self-signed certificate for https; conntrackd: the
# twin-lb lab runs one per lb router, inside its namespace.
# Installed for the tests (they start their own Prometheus and conntrackds), never to run as
# a service: Debian starts these at install, so the apt step stops and disables what it just
# installed (a conntrackd on the host would sync the host's own conntrack table).
NO_SERVICE := prometheus prometheus-node-exporter conntrackd
PYTEST_ARGS ?=

.PHONY: setup apt no-service venv demo test lint typecheck unit proto clean

setup: apt venv

apt:
	@missing=$$(for p in $(APT_PACKAGES); do \
	    dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	    echo "installing Debian packages: $$missing"; \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; \
	    case " $$missing " in *" prometheus "*|*" conntrackd "*) $(MAKE) --no-print-directory no-service;; esac; \
	fi

# Stop and disable the services the prometheus package starts (systemd, or SysV init).
no-service:
	@for s in $(NO_SERVICE); do \
	    [ -e /lib/systemd/system/$$s.service ] || [ -e /etc/init.d/$$s ] || continue; \
	    if [ -d /run/systemd/system ]; then systemctl disable --now $$s >/dev/null 2>&1 || true; \
	    else [ -x /etc/init.d/$$s ] && /etc/init.d/$$s stop >/dev/null 2>&1; \
	         update-rc.d $$s disable >/dev/null 2>&1 || true; fi; \
	    echo "$$s: installed for the tests, not left running as a service"; \
	done

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml setup.py dfagent/wire/_fastsyn.c
	@[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test,bench]'
	@touch $@

demo: setup
	$(BIN)/dfagent demo

lint: venv
	$(BIN)/ruff check dfagent tests
	$(BIN)/ruff format --check dfagent tests

# tests too: the fakes must keep the shape of the ports (core/ports.py) they stand in for.
typecheck: venv
	$(BIN)/mypy dfagent tests

unit: venv
	$(BIN)/pytest -q tests/unit $(PYTEST_ARGS)

# Regenerate the committed gRPC stubs after editing dfagent/api/dfagent.proto.
proto: venv
	scripts/gen_proto.sh

test: setup lint typecheck
	$(BIN)/pytest -q $(PYTEST_ARGS)

clean:
	-$(BIN)/dfagent lab down --all
	rm -rf $(VENV) *.egg-info
