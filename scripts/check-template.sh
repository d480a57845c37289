#!/usr/bin/env bash
# Lints template.yaml offline with the project's pinned tools:
#   1. `sam validate --lint`: SAM's own transform plus cfn-lint's CloudFormation rules;
#   2. cfn-lint with the serverless rules of cfn-lint-serverless (tracing, log retention,
#      explicit memory and timeout, API throttling and access logs, redrive policies, ...).
# Either failing fails the script. Rules the template opts out of are listed, with the reason,
# in the `cfn-lint` Metadata of the resource concerned; tests/template.rs checks the invariants
# that those rules cannot see.
#
# Usage: scripts/check-template.sh   (from anywhere; needs .venv from scripts/setup.sh)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"

for tool in sam cfn-lint; do
    if [[ ! -x "$venv/bin/$tool" ]]; then
        echo "error: $venv/bin/$tool not found." >&2
        echo "       Create the project venv first: scripts/setup.sh (installs tools/requirements.lock)." >&2
        exit 1
    fi
done
if ! "$venv/bin/python" -c 'import cfn_lint_serverless.rules' 2>/dev/null; then
    echo "error: cfn-lint-serverless is missing from $venv; rerun scripts/setup.sh." >&2
    exit 1
fi

cd "$root"

# Neither command calls AWS or needs credentials. The region only picks the resource
# specifications that cfn-lint checks against; telemetry is off so nothing leaves the machine.
export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}"
export SAM_CLI_TELEMETRY=0

echo "== sam validate --lint ($("$venv/bin/sam" --version))"
"$venv/bin/sam" validate --lint --template-file template.yaml

echo "== cfn-lint with serverless rules ($("$venv/bin/cfn-lint" --version))"
"$venv/bin/cfn-lint" --append-rules cfn_lint_serverless.rules -- template.yaml

echo "template.yaml: sam validate and cfn-lint (with serverless rules) passed"
