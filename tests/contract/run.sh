#!/usr/bin/env bash
# make contract: Schemathesis (pinned in requirements.txt, installed into
# target/venv/contract) against a live server on a fresh database
# (scripts/with-test-server.sh). See README.md beside this file.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
# shellcheck source=tests/lib/venv.sh
source tests/lib/venv.sh
ensure_venv target/venv/contract tests/contract/requirements.txt
exec scripts/with-test-server.sh bash tests/contract/suite.sh
