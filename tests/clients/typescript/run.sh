#!/usr/bin/env bash
# make clients (TypeScript half): install the pinned tools (`npm ci`), generate
# types from openapi.yaml with openapi-typescript into generated/, type-check
# e2e.ts against them with tsc (which also compiles it to dist/), then run it
# with openapi-fetch against a live server (scripts/with-test-server.sh).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../../.."
# shellcheck source=tests/lib/node.sh
source tests/lib/node.sh
dir=tests/clients/typescript
ensure_node_modules "$dir"

rm -rf "$dir/generated" "$dir/dist"
(cd "$dir" && npm run --silent generate && npm run --silent typecheck)
echo "clients-typescript: generated $dir/generated/schema.d.ts from openapi.yaml; tsc found no errors"

exec scripts/with-test-server.sh node "$dir/dist/e2e.js"
