#!/usr/bin/env bash
# The README's test command: sets everything up on a fresh Debian 12 machine (packages including
# the SIP peers, PJSIP) and runs the whole test suite. Arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/install-deps.sh --test
build/pjproject.sh
shellcheck scripts/*.sh build/*.sh .ci/run

log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
# Release: the audio paths run in real time and are measured; debug builds are too slow for that.
cargo test --workspace --release --locked "$@" 2>&1 | tee "$log" || status=$?
# One summary line for the whole suite (cargo prints one per test binary).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i; if ($(i+1) ~ /^ignored/) s += $i } }
     END { printf "tests: %d passed, %d failed, %d skipped\n", p, f, s }' "$log" | tee target/test-summary.txt
exit "$status"
