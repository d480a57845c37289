#!/usr/bin/env bash
# Measures what Lambda bills and what users feel (issue 5): cold start, peak memory, zipped
# artifact size, batch concurrency, webhook throughput, AWS requests and cost per capture.
#
#   scripts/bench.sh [bench options, e.g. --starts 30 --config profile.release.opt-level=3]
#
# It installs the pinned tools (scripts/setup.sh: moto, cargo-lambda and zig in .venv), then
# runs the bench in release mode. The bench builds the functions with `cargo lambda build
# --release` into target/bench/lambda, starts everything it needs on 127.0.0.1 (moto, the
# PeekShot simulator, the functions against a Lambda runtime API stand-in), stops all of it
# when it ends, prints Markdown tables and writes target/bench/results.json. Not part of
# scripts/test.sh: it takes a few minutes after the build, and its figures depend on the
# machine. docs/performance.md explains each figure.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

scripts/setup.sh
exec cargo run --release -p bench -- "$@"
