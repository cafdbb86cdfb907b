#!/usr/bin/env bash
# Two bcrypt setups interleaved on one core against one after the other (BENCHMARKS.md D8).
# Usage, from the repository root: scripts/bench/investigations/bcrypt-x2/run.sh [COST] [ROUNDS]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../../.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r "$root/vendor/blowfish" "$work/blowfish"
patch -s -d "$work/blowfish" -p1 < "$here/x2.patch"
mkdir -p "$work/x2"
cat > "$work/x2/Cargo.toml" <<TOML
[package]
name = "x2"
version = "0.0.0"
edition = "2024"
publish = false

[[bin]]
name = "x2"
path = "$here/src/main.rs"

[dependencies]
blowfish = { version = "0.10", features = ["bcrypt"] }
libc = "0.2"

[patch.crates-io]
blowfish = { path = "$work/blowfish" }

[profile.release]
lto = "thin"
codegen-units = 4

[workspace]
TOML
cargo build --release --quiet --manifest-path "$work/x2/Cargo.toml" \
    --target-dir "$root/target/bench-tools"
"$root/target/bench-tools/release/x2" "${1:-10}" "${2:-4}"
