#!/usr/bin/env bash
# Runs the local stack's command line (crates/devstack) with any arguments, e.g.
#
#   scripts/devstack.sh up                      # start the stack and keep it running
#   scripts/devstack.sh demo                    # one pass over the sample requests
#   scripts/devstack.sh --help
#
# It builds first, with the one build command of every build of the stack (devstack's
# functions::build_args): the whole workspace with its tests, which is what the test command
# builds too, so cargo compiles the dependency tree once, with one set of features.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

echo "building the workspace (the first time takes several minutes on two cores)" >&2
cargo build --quiet --workspace --all-targets
target_dir="$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
exec "$target_dir/debug/devstack" "$@"
