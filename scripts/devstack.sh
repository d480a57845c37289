#!/usr/bin/env bash
# Runs the local stack's command line (crates/devstack) with any arguments, e.g.
#
#   scripts/devstack.sh up                      # start the stack and keep it running
#   scripts/devstack.sh dead-letters list       # what is in the dead-letter queue, and why
#   scripts/devstack.sh --help
#
# It builds the stack's packages first, in one command with the same package list as every
# other build of the stack (devstack's functions::BUILD_PACKAGES), so that cargo compiles
# the dependency tree once instead of once per package selection.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

cargo build --quiet -p devstack -p submitter -p webhook -p reconciler -p peekshot-sim -p capturectl
target_dir="$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
exec "$target_dir/debug/devstack" "$@"
