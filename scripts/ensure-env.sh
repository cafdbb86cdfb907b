#!/usr/bin/env bash
# Create .env with working development defaults and a fresh random JWT_SECRET,
# unless it already exists (an existing .env is never touched).
# See .env.example for every variable the server understands.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [[ -e .env ]]; then
    exit 0
fi

if command -v openssl >/dev/null 2>&1; then
    secret=$(openssl rand -hex 32)
else
    secret=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')
fi
if [[ ! $secret =~ ^[0-9a-f]{64}$ ]]; then
    echo "env: error: could not generate a random JWT_SECRET" >&2
    exit 1
fi

umask 077 # the file holds a secret
tmp=$(mktemp .env.XXXXXX)
trap 'rm -f "$tmp"' EXIT
cat >"$tmp" <<EOT
# Written by scripts/ensure-env.sh; see .env.example for all settings.
DATABASE_URL=postgres://postgres@127.0.0.1:5432/newsapi
JWT_SECRET=$secret
LISTEN_ADDR=127.0.0.1:3000
RUST_LOG=info
EOT
mv "$tmp" .env
trap - EXIT

echo "env: wrote .env (DATABASE_URL=postgres://postgres@127.0.0.1:5432/newsapi, LISTEN_ADDR=127.0.0.1:3000, new random JWT_SECRET)"
