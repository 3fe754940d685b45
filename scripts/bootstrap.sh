#!/usr/bin/env bash
# Idempotent set-up behind `make demo`, `make test` and friends:
#   1. a .venv made with Python 3.11+ (PYTHON=/path/to/python3.11 to choose one),
#   2. the project installed into it, again only when pyproject.toml has changed,
#   3. with --test-agents (make test), the test-only agents of tests/agents (crash, hang,
#      nul_error), which the product never installs; with --no-test-agents (make demo) they
#      are taken out again, so a demo in a venv the tests used runs the product's agents only,
#   4. reachable Redis and PostgreSQL, and Prometheus and Alertmanager installed (`promtool`,
#      `amtool` and the tests' own servers; as root they are installed with their services
#      left stopped, else the install line is printed): scripts/services.py ensure, unless --no-services.
# Silent when there is nothing to do; short progress lines on stderr when there is.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=.venv
# Holds the sha256 of the pyproject.toml last installed: a hash, because a fresh clone
# gives every file a new mtime.
STAMP="$VENV/.hive-installed"
AGENTS_STAMP="$VENV/.hive-test-agents-installed"
PYTHON="${PYTHON:-python3}"

services=1
test_agents=0
for arg in "$@"; do
    case "$arg" in
        --no-services) services=0 ;;
        --test-agents) test_agents=1 ;;
        --no-test-agents) test_agents=-1 ;;
        *) echo "usage: $0 [--no-services] [--test-agents|--no-test-agents]" >&2; exit 2 ;;
    esac
done

say() { printf 'bootstrap: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

log=$(mktemp)
trap 'rm -f "$log"' EXIT
# Run a command with its output kept aside; show the output only if it fails.
quietly() {
    if ! "$@" >"$log" 2>&1; then
        cat "$log" >&2
        return 1
    fi
}

is_311='import sys; sys.exit(sys.version_info < (3, 11))'

if [ -x "$VENV/bin/python" ]; then
    "$VENV/bin/python" -c "$is_311" \
        || die "$VENV has $("$VENV/bin/python" -V 2>&1); Hive needs 3.11+: rm -rf $VENV and run again"
else
    command -v "$PYTHON" >/dev/null 2>&1 \
        || die "$PYTHON not found: install Python 3.11+ (apt-get install -y python3 python3-venv)"
    "$PYTHON" -c "$is_311" \
        || die "$("$PYTHON" -V 2>&1) is too old; Hive needs 3.11+ (PYTHON=/path/to/python3.11 make ...)"
    say "creating $VENV with $("$PYTHON" -V 2>&1)"
    if ! quietly "$PYTHON" -m venv "$VENV"; then
        # Half a venv would pass the check above next time; leave nothing behind.
        rm -rf "$VENV"
        die "could not create $VENV (on Debian/Ubuntu: apt-get install -y python3-venv)"
    fi
fi

want=$("$VENV/bin/python" -c 'import hashlib; print(hashlib.sha256(open("pyproject.toml", "rb").read()).hexdigest())')
if [ "$(cat "$STAMP" 2>/dev/null || true)" != "$want" ]; then
    say "installing the project into $VENV (pip install -e '.[dev,flower,api]')"
    quietly "$VENV/bin/python" -m pip install --disable-pip-version-check -e '.[dev,flower,api]' \
        || die "pip install failed"
    printf '%s\n' "$want" >"$STAMP"
fi

if [ "$test_agents" = 1 ]; then
    want=$("$VENV/bin/python" -c 'import hashlib; print(hashlib.sha256(open("tests/agents/pyproject.toml", "rb").read()).hexdigest())')
    if [ "$(cat "$AGENTS_STAMP" 2>/dev/null || true)" != "$want" ]; then
        say "installing the test-only agents into $VENV (pip install -e tests/agents)"
        quietly "$VENV/bin/python" -m pip install --disable-pip-version-check -e tests/agents \
            || die "pip install of tests/agents failed"
        printf '%s\n' "$want" >"$AGENTS_STAMP"
    fi
fi

if [ "$test_agents" = -1 ] && [ -e "$AGENTS_STAMP" ]; then
    say "taking the test-only agents out of $VENV (pip uninstall hive-test-agents)"
    quietly "$VENV/bin/python" -m pip uninstall --disable-pip-version-check -y hive-test-agents \
        || die "pip uninstall of hive-test-agents failed"
    rm -f "$AGENTS_STAMP"
fi

if [ "$services" = 1 ]; then
    "$VENV/bin/python" scripts/services.py ensure
fi
