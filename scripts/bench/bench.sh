#!/usr/bin/env bash
# `make bench`: builds the release binary, starts it on a fresh, seeded benchmark database, runs
# every scenario once with wrk (plus `pgbench -S`, the ceiling for S1), prints one table and
# writes target/bench/results.json (and results.md). See BENCHMARKS.md; settings in lib.sh and
# driver/run.py. Quick try-out: SEED_NEWS=10000 SEED_USERS=1000 DUR=2 WARM=1 QUIET_MAX=0 make bench
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
prepare_newsapi
run_driver results.json
echo
echo "results: target/bench/results.json (table: target/bench/results.md)"
