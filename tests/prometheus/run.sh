#!/usr/bin/env bash
# make prometheus: a real Prometheus (Debian's prometheus package, installed
# with apt-get when /usr/bin/prometheus is missing) scrapes a live server
# (scripts/with-test-server.sh) every second; suite.py then asks Prometheus's
# HTTP API for http_requests_total and up. See README.md beside this file.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
# shellcheck source=tests/lib/apt.sh
source tests/lib/apt.sh

ensure_debian_package prometheus prometheus /usr/bin/prometheus --no-install-recommends
/usr/bin/prometheus --version 2>&1 | head -n 1

exec scripts/with-test-server.sh python3 tests/prometheus/suite.py
