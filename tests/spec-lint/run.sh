#!/usr/bin/env bash
# make spec-lint: Redocly CLI (pinned in package-lock.json, installed with
# `npm ci`) lints openapi.yaml with the rules of redocly.yaml; every warning is
# an error, and the problems that are right as they are, with their reasons,
# are in .redocly.lint-ignore.yaml. Runs offline.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
# shellcheck source=tests/lib/node.sh
source tests/lib/node.sh
dir=tests/spec-lint
ensure_node_modules "$dir"

export REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true
if (cd "$dir" && npx --no-install redocly lint ../../openapi.yaml --config redocly.yaml --format stylish); then
    echo "spec-lint: 1 passed, 0 failed (openapi.yaml)"
else
    echo "spec-lint: 0 passed, 1 failed (openapi.yaml)"
    exit 1
fi
