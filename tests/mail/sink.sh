#!/usr/bin/env bash
# sink.sh DIR [PORT]: the tests' SMTP server (smtp_sink.py) in its pinned venv, target/venv/mail,
# made on first use. Several test processes may start it at once: the venv is made under a lock.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
# shellcheck source=tests/lib/venv.sh
source tests/lib/venv.sh
mkdir -p target/venv
exec 9>target/venv/.mail.lock
flock 9
ensure_venv target/venv/mail tests/mail/requirements.txt >&2
flock -u 9
exec target/venv/mail/bin/python tests/mail/smtp_sink.py "$@"
