#!/usr/bin/env bash
# The Schemathesis runs, against the server at BASE_URL (run through
# tests/contract/run.sh, which starts it). Three runs cover every operation of
# openapi.yaml, each with all checks and every phase that applies, as its own
# user:
#
#   api       every operation but the three below, as an ordinary user;
#   admin     PATCH /news (bulk update, admins only), as the server's admin;
#   sessions  POST /signout and POST /signout/all, which end the session in
#             use, as a user of their own (Schemathesis signs in again after
#             each 401; see schemathesis.toml).
#
# JUnit XML reports go to target/contract/<run>.xml. Prints
# `contract: N passed, M failed` last; fails when any run fails.
set -euo pipefail

: "${BASE_URL:?run me through tests/contract/run.sh}"
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
ROOT=$PWD
OUT=$ROOT/target/contract
ST=$ROOT/target/venv/contract/bin/st
SEED=${CONTRACT_SEED:-1}
# More examples for a deeper run than CI's (schemathesis.toml sets the default).
extra=()
if [[ -n ${CONTRACT_MAX_EXAMPLES:-} ]]; then
    extra+=(--max-examples "$CONTRACT_MAX_EXAMPLES")
fi
mkdir -p "$OUT"
rm -f "$OUT"/*.xml

signup() {
    local email=$1 password=$2 status
    status=$(curl -sS -o /dev/null -w '%{http_code}' -X POST "$BASE_URL/signup" \
        -H 'content-type: application/json' \
        -d "{\"email\":\"$email\",\"password\":\"$password\"}")
    if [[ $status != 201 ]]; then
        echo "contract: signing up $email failed with HTTP $status" >&2
        return 1
    fi
}

suffix=$(od -An -tx1 -N4 /dev/urandom | tr -d ' \n')
user_email="contract-$suffix@example.com"
user_password="contract user password $suffix"
sessions_email="contract-sessions-$suffix@example.com"
sessions_password="contract sessions password $suffix"
signup "$user_email" "$user_password"
signup "$sessions_email" "$sessions_password"

failed_runs=()

# st_run NAME EMAIL PASSWORD [st run options...]
st_run() {
    local name=$1 email=$2 password=$3
    shift 3
    echo
    echo "=== contract run '$name' (signed in as $email) ==="
    if ! CONTRACT_EMAIL=$email CONTRACT_PASSWORD=$password \
        "$ST" --config-file tests/contract/schemathesis.toml --no-color run openapi.yaml \
        --url "$BASE_URL" --checks all --seed "$SEED" \
        --report junit --report-junit-path "$OUT/$name.xml" ${extra[@]+"${extra[@]}"} "$@"; then
        failed_runs+=("$name")
    fi
}

st_run api "$user_email" "$user_password" \
    --exclude-operation-id bulkUpdateNews \
    --exclude-operation-id signout --exclude-operation-id signoutAll
# No link leads to or from these operations, so the stateful phase has nothing to follow.
st_run admin "$ADMIN_EMAIL" "$ADMIN_PASSWORD" --include-operation-id bulkUpdateNews \
    --phases examples,coverage,fuzzing
st_run sessions "$sessions_email" "$sessions_password" \
    --include-operation-id signout --include-operation-id signoutAll \
    --phases examples,coverage,fuzzing

# One line for all runs, from the JUnit reports (one test case per operation and phase).
read -r passed failed < <(python3 - "$OUT"/*.xml <<'EOF'
import sys
import xml.etree.ElementTree as ET

passed = failed = 0
for path in sys.argv[1:]:
    for case in ET.parse(path).getroot().iter("testcase"):
        if case.find("failure") is not None or case.find("error") is not None:
            failed += 1
        elif case.find("skipped") is None:
            passed += 1
print(passed, failed)
EOF
)
echo
if ((${#failed_runs[@]} > 0)); then
    echo "contract: runs that failed: ${failed_runs[*]} (reports in target/contract/)"
    ((failed > 0)) || failed=${#failed_runs[@]}
fi
echo "contract: $passed passed, $failed failed"
((${#failed_runs[@]} == 0))
