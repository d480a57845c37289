#!/usr/bin/env bash
# The project's test command (README "The two commands"; .ci/run runs exactly this).
#
#   1. installs the pinned Python tools into .venv (scripts/setup.sh; a no-op when current);
#   2. checks formatting and lints every target with warnings as errors;
#   3. lints template.yaml with sam validate --lint and cfn-lint's serverless rules;
#   4. runs every test of the workspace in the debug profile: unit tests, the simulator's and
#      the local stack's own tests, the template invariants, and the end-to-end tests, which
#      start the whole local stack (moto, simulator, cargo lambda watch) on free loopback ports.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

step() { printf '\n==> %s\n' "$*" >&2; }

step "tools (scripts/setup.sh)"
scripts/setup.sh

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

step "template lint (scripts/check-template.sh)"
scripts/check-template.sh

# --no-fail-fast: a failing test binary (the chaos run, say) must not hide the others' results.
step "cargo test --workspace"
cargo test --workspace --no-fail-fast
