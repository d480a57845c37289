#!/usr/bin/env bash
# Builds the three functions for Lambda the way `sam deploy` will ship them, then reports how long
# the build took and how large each deployment package is.
#
#   scripts/sam-build.sh [extra `sam build` arguments, e.g. --parameter-overrides Architecture=arm64]
#
# `sam build` runs `cargo lambda build --release --bin <name>` for each function (template
# Metadata: BuildMethod rust-cargolambda), so the pinned cargo-lambda and the zig linker that
# it cross-compiles with must be on PATH: both come from the project venv (scripts/setup.sh).
# The output goes to .aws-sam/build/<Function>/bootstrap (git-ignored). The size printed is
# the bootstrap compressed as `sam deploy` uploads it (zip, deflate), which is what counts
# toward Lambda's 50 MB limit and the cold start's download.
#
# A release build of the AWS SDK crates takes several minutes on a 2-core machine the first
# time; later builds reuse target/.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"

for tool in sam cargo-lambda python-zig; do
    if [[ ! -x "$venv/bin/$tool" ]]; then
        echo "error: $venv/bin/$tool not found." >&2
        echo "       Create the project venv first: scripts/setup.sh (installs tools/requirements.lock)." >&2
        exit 1
    fi
done

cd "$root"
export PATH="$venv/bin:$PATH"
export SAM_CLI_TELEMETRY=0
export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}"

started=$(date +%s)
status=0
"$venv/bin/sam" build --template-file template.yaml "$@" || status=$?
elapsed=$(( $(date +%s) - started ))

echo
echo "sam build: exit ${status} after $((elapsed / 60)) min $((elapsed % 60)) s"

# After a failed build .aws-sam/ may still hold an earlier build's binaries: report none.
if (( status != 0 )); then
    exit "$status"
fi

shopt -s nullglob
artifacts=(.aws-sam/build/*/bootstrap)
if (( ${#artifacts[@]} == 0 )); then
    echo "error: sam build succeeded but produced no .aws-sam/build/*/bootstrap" >&2
    exit 1
fi

"$venv/bin/python" - "${artifacts[@]}" <<'PY'
import io, os, sys, zipfile

print(f"{'artifact':<44} {'bootstrap':>12} {'zipped':>12}")
for path in sys.argv[1:]:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.write(path, "bootstrap")
    print(f"{path:<44} {os.path.getsize(path):>12,} {buffer.tell():>12,}")
PY
