#!/usr/bin/env bash
# Installs the project's pinned Python tools into .venv at the repository root:
# moto_server (the local DynamoDB and SQS endpoint), cargo-lambda (runs the functions
# locally), aws-sam-cli and cfn-lint. The versions come from tools/requirements.lock.
#
# Safe to run any number of times: a stamp file in .venv holds the SHA-256 of the lock
# file that was last installed, and when it still matches (and the tools are there)
# nothing is done. Set PYTHON to choose the interpreter (default: python3 on PATH).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
lock="$root/tools/requirements.lock"
stamp="$venv/.requirements.lock.sha256"
python="${PYTHON:-python3}"

lock_hash="$(sha256sum "$lock" | cut -d ' ' -f 1)"

tools_present() {
    [[ -x "$venv/bin/moto_server" && -x "$venv/bin/cargo-lambda" ]]
}

if [[ -f "$stamp" && "$(cat "$stamp")" == "$lock_hash" ]] && tools_present; then
    echo "setup: .venv already matches tools/requirements.lock" >&2
    exit 0
fi

if [[ ! -x "$venv/bin/python" ]]; then
    echo "setup: creating .venv with $("$python" --version 2>&1)" >&2
    if ! "$python" -m venv "$venv"; then
        echo "setup: '$python -m venv' failed; on Debian's own Python install python3-venv," \
            "or point PYTHON at another Python 3.11" >&2
        exit 1
    fi
fi

echo "setup: installing tools/requirements.lock into .venv" >&2
"$venv/bin/python" -m pip install --disable-pip-version-check --quiet -r "$lock"

if ! tools_present; then
    echo "setup: moto_server or cargo-lambda is still missing from .venv/bin after the install" >&2
    exit 1
fi

echo "$lock_hash" >"$stamp"
echo "setup: done" >&2
