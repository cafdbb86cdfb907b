#!/usr/bin/env bash
# make jwks: a third-party library (PyJWT's PyJWKClient, pinned in requirements.txt, installed into
# target/venv/jwks) verifies the server's EdDSA access tokens against /.well-known/jwks.json,
# across a key rotation. scripts/with-test-server.sh makes the database, the mail server, an admin
# and an HS256 server; suite.py starts EdDSA servers of its own on that database, with keys made by
# `openssl genpkey`. See README.md beside this file.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
# shellcheck source=tests/lib/venv.sh
source tests/lib/venv.sh
ensure_venv target/venv/jwks tests/jwks/requirements.txt
command -v openssl >/dev/null || {
    echo "jwks: openssl is required (it makes the suite's keys, as the README's rotation does)" >&2
    exit 1
}

exec scripts/with-test-server.sh target/venv/jwks/bin/python tests/jwks/suite.py
