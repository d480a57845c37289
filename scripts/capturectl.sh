#!/usr/bin/env bash
# Runs the operator's command line (crates/capturectl) with any arguments, e.g.
#
#   set -a; . .devstack/stack.env; set +a     # the local stack's names and endpoint
#   scripts/capturectl.sh dead-letters list
#   scripts/capturectl.sh show <capture id>
#   scripts/capturectl.sh --help
#
# Like scripts/devstack.sh it builds with the local stack's one build command (devstack's
# functions::build_args: the whole workspace, tests included), so that it reuses the stack's
# and the test command's build instead of compiling the dependency tree again with other
# features.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

cargo build --quiet --workspace --all-targets
target_dir="$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
exec "$target_dir/debug/capturectl" "$@"
