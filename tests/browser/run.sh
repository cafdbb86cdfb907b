#!/usr/bin/env bash
# make browser: the Swagger UI explorer and Redoc in Debian's headless Chromium,
# driven by playwright-core (pinned in package-lock.json, installed with
# `npm ci`; it never downloads a browser), against a live server
# (scripts/with-test-server.sh). Installs Debian's chromium with apt-get when
# /usr/bin/chromium is missing. Screenshots go to target/browser/.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
# shellcheck source=tests/lib/node.sh
source tests/lib/node.sh
# shellcheck source=tests/lib/apt.sh
source tests/lib/apt.sh

ensure_debian_package browser chromium /usr/bin/chromium
/usr/bin/chromium --version 2>/dev/null || true

dir=tests/browser
ensure_node_modules "$dir"
rm -rf target/browser
exec scripts/with-test-server.sh node "$dir/explorer.test.js"
