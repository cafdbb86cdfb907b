#!/usr/bin/env bash
# make clients (Python half): generate a client from openapi.yaml with
# openapi-python-client (pinned in requirements.txt, installed into
# target/venv/clients) into target/clients/python/newsapi_client, then run
# e2e.py against a live server (scripts/with-test-server.sh).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../../.."
# shellcheck source=tests/lib/venv.sh
source tests/lib/venv.sh
ensure_venv target/venv/clients tests/clients/python/requirements.txt

out=target/clients/python/newsapi_client
rm -rf "$out"
mkdir -p "$(dirname "$out")"
# The generator formats its output with ruff, which it finds on PATH.
PATH="$PWD/target/venv/clients/bin:$PATH" target/venv/clients/bin/openapi-python-client generate \
    --path openapi.yaml --meta none --output-path "$out" --fail-on-warning
rm -rf "$out/.ruff_cache"
echo "clients-python: generated $out from openapi.yaml"

exec scripts/with-test-server.sh target/venv/clients/bin/python tests/clients/python/e2e.py
