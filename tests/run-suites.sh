#!/usr/bin/env bash
# The suites that test the server from the outside, after `cargo test` in
# `make test`: spec lint, contract tests, the generated Python and TypeScript
# clients, the explorer in a browser, a real Prometheus scraping /metrics,
# PyJWT verifying EdDSA tokens through /.well-known/jwks.json across a key
# rotation, three replicas behind nginx and one through PgBouncer (tests/cluster), and PostgreSQL failover
# under load (pg_auto_failover). Each installs its own tools and starts its own
# server on a fresh database. All of them run even when one
# fails; the output ends with one line per suite and a total, and the exit
# status is non-zero when any suite failed.
#
#   tests/run-suites.sh [SUITE...]   (default: all, in the order below)
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

declare -A scripts=(
    [spec-lint]=tests/spec-lint/run.sh
    [contract]=tests/contract/run.sh
    [clients-python]=tests/clients/python/run.sh
    [clients-typescript]=tests/clients/typescript/run.sh
    [browser]=tests/browser/run.sh
    [prometheus]=tests/prometheus/run.sh
    [jwks]=tests/jwks/run.sh
    [cluster]=tests/cluster/run.sh
    [failover]=tests/failover/run.sh
)
order=(spec-lint contract clients-python clients-typescript browser prometheus jwks cluster failover)
if (($# > 0)); then
    order=("$@")
fi

mkdir -p target/e2e
summary=()
total_passed=0
total_failed=0
for suite in "${order[@]}"; do
    script=${scripts[$suite]:-}
    if [[ -z $script ]]; then
        echo "run-suites: no suite named $suite (known: ${!scripts[*]})" >&2
        exit 2
    fi
    log=target/e2e/$suite.log
    echo
    echo "=== $suite ($script) ==="
    start=$SECONDS
    bash "$script" 2>&1 | tee "$log"
    status=${PIPESTATUS[0]}
    secs=$((SECONDS - start))
    line=$(grep -E "^$suite: [0-9]+ passed, [0-9]+ failed" "$log" | tail -n 1)
    if [[ -z $line ]]; then
        # The suite stopped before it could count (a tool failed to install, say).
        line="$suite: 0 passed, 1 failed"
    elif ((status != 0)) && [[ $line =~ \ 0\ failed ]]; then
        line="$suite: ${line#*: }, but exited with status $status"
        total_failed=$((total_failed + 1))
    fi
    if [[ $line =~ ^[a-z-]+:\ ([0-9]+)\ passed,\ ([0-9]+)\ failed ]]; then
        total_passed=$((total_passed + BASH_REMATCH[1]))
        total_failed=$((total_failed + BASH_REMATCH[2]))
    fi
    summary+=("$(printf '%-68s %4ss' "$line" "$secs")")
done

echo
echo "=== suites (logs in target/e2e/) ==="
printf '%s\n' "${summary[@]}"
echo "suites: $total_passed passed, $total_failed failed"
((total_failed == 0))
