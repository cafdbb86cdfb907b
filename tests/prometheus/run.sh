#!/usr/bin/env bash
# make prometheus: a real Prometheus (Debian's prometheus package, installed
# with apt-get when /usr/bin/prometheus is missing) scrapes a live server
# (scripts/with-test-server.sh) every second; suite.py then asks Prometheus's
# HTTP API for http_requests_total and up. See README.md beside this file.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."

if [[ ! -x /usr/bin/prometheus ]]; then
    echo "prometheus: /usr/bin/prometheus is missing; installing Debian's prometheus with apt-get"
    as_root=()
    if [[ $(id -u) -ne 0 ]]; then
        command -v sudo >/dev/null 2>&1 || {
            echo "prometheus: not root and no sudo; install the package prometheus first" >&2
            exit 1
        }
        as_root=(sudo)
    fi
    # The package's maintainer scripts would start a Prometheus daemon of its own; a
    # policy-rc.d that says no (Debian's own mechanism) keeps them from it, unless the
    # machine already has one.
    guard=""
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        guard=/usr/sbin/policy-rc.d
        printf '#!/bin/sh\nexit 101\n' | "${as_root[@]}" tee "$guard" >/dev/null
        "${as_root[@]}" chmod 755 "$guard"
        trap '"${as_root[@]}" rm -f "$guard"' EXIT
    fi
    "${as_root[@]}" apt-get update -q >/dev/null
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q --no-install-recommends prometheus >/dev/null
    if [[ -n $guard ]]; then
        "${as_root[@]}" rm -f "$guard"
        trap - EXIT
    fi
fi
/usr/bin/prometheus --version 2>&1 | head -n 1

exec scripts/with-test-server.sh python3 tests/prometheus/suite.py
