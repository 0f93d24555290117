#!/usr/bin/env bash
# smsq quick start, for a fresh Debian/Ubuntu machine with Python 3.11+.
#   scripts/quickstart.sh demo   install everything, then run the end-to-end demo
#   scripts/quickstart.sh test   install everything, then run linters, type checks and all tests
# Installs redis-server and python3-venv (and, for the tests, chromium) with apt-get when they
# are missing (sudo when not root), then the pinned Python dependencies from requirements.lock
# into .venv.
set -euo pipefail
cd "$(dirname "$0")/.."

mode="${1:-}"
if [[ "$mode" != "demo" && "$mode" != "test" ]]; then
  echo "usage: $0 demo|test" >&2
  exit 64
fi

python3 - <<'PY' || { echo "smsq needs Python 3.11 or newer (python3 is older)" >&2; exit 1; }
import sys
sys.exit(0 if sys.version_info >= (3, 11) else 1)
PY

packages=()
command -v redis-server >/dev/null 2>&1 || packages+=(redis-server)
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || packages+=(python3-venv)
# The operators' web page is tested in a real headless browser (Debian's Chromium).
if [[ "$mode" == "test" ]] && ! command -v chromium >/dev/null 2>&1; then
  packages+=(chromium)
fi
# The gateway's tests run the AllMySMS page's own client snippets (PHP, Perl, Ruby, Java, curl).
if [[ "$mode" == "test" ]]; then
  command -v php >/dev/null 2>&1 || packages+=(php-cli php-curl)
  command -v ruby >/dev/null 2>&1 || packages+=(ruby)
  command -v javac >/dev/null 2>&1 || packages+=(default-jdk-headless)
  command -v curl >/dev/null 2>&1 || packages+=(curl)
  command -v openssl >/dev/null 2>&1 || packages+=(openssl)
  perl -MLWP::Protocol::https -e 1 >/dev/null 2>&1 \
    || packages+=(libwww-perl liblwp-protocol-https-perl)
fi
if ((${#packages[@]})); then
  sudo=""
  [[ "$(id -u)" -ne 0 ]] && sudo="sudo"
  echo "installing ${packages[*]} with apt-get" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${packages[@]}" >/dev/null
fi
# The Debian package starts a system redis-server on port 6379; smsq's demo and tests start
# their own on free ports, so a running system instance does not matter.

if [[ ! -x .venv/bin/python ]]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install -q --disable-pip-version-check --require-hashes -r requirements.lock
.venv/bin/python -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .

if [[ "$mode" == "demo" ]]; then
  exec .venv/bin/smsq demo
fi
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
exec .venv/bin/pytest -p no:cacheprovider
