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

if [[ ! -x /usr/bin/chromium ]]; then
    echo "browser: /usr/bin/chromium is missing; installing Debian's chromium with apt-get"
    as_root=()
    if [[ $(id -u) -ne 0 ]]; then
        command -v sudo >/dev/null 2>&1 || {
            echo "browser: not root and no sudo; install the package chromium first" >&2
            exit 1
        }
        as_root=(sudo)
    fi
    "${as_root[@]}" apt-get update -q >/dev/null
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null
fi
/usr/bin/chromium --version 2>/dev/null || true

dir=tests/browser
ensure_node_modules "$dir"
rm -rf target/browser
exec scripts/with-test-server.sh node "$dir/explorer.test.js"
