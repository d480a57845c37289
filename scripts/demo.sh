#!/usr/bin/env bash
# Runs the pipeline on loopback once: sets up the Python tools, starts the local stack,
# sends the sample capture requests from events/sqs-capture-batch.json, waits for each
# capture to finish and prints a table. Extra arguments go to `devstack demo`
# (see `scripts/devstack.sh demo --help`).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

scripts/setup.sh
exec scripts/devstack.sh demo "$@"
