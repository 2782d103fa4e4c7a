#!/usr/bin/env sh
# What `make run` / `make test` need beyond this repository, checked before anything is built:
#   run:  Python 3.11+ with venv (Debian: python3-venv)
#   test: the same, plus Node.js with npm (the test peers) and Chromium (the pages are tested in
#         a real browser)
# Run as root on Debian/Ubuntu, what is missing is installed with apt-get; otherwise one line
# says what to install, and the exit status is 1.
set -eu
mode="${1:-run}"
python="${PYTHON:-python3}"
missing=""

if ! command -v "$python" >/dev/null 2>&1; then
    missing="$missing python3 python3-venv"
elif ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "make $mode: Herald needs Python 3.11 or newer ($python is $("$python" -V 2>&1)); set PYTHON=python3.11 or newer" >&2
    exit 1
elif ! "$python" -c 'import ensurepip, venv' >/dev/null 2>&1; then
    missing="$missing python3-venv"
fi
if [ "$mode" = test ]; then
    if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
        missing="$missing nodejs npm"
    fi
    if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1 \
        && ! command -v google-chrome >/dev/null 2>&1; then
        missing="$missing chromium"
    fi
fi
[ -z "$missing" ] && exit 0

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "make $mode: installing$missing with apt-get" >&2
    apt-get update -qq
    # shellcheck disable=SC2086  # one word per package
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing
    exit 0
fi
echo "make $mode needs$missing: install them (Debian/Ubuntu: sudo apt-get install -y$missing), then run make $mode again" >&2
exit 1
