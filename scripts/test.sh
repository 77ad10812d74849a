#!/usr/bin/env bash
# The README's test command: sets everything up on a fresh Debian 12 machine (packages including
# the SIP peers, PJSIP) and runs the whole test suite. Arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/install-deps.sh --test
build/pjproject.sh
scripts/lint.sh
# The dashboard test drives Debian's chromium with playwright-core (no browser download).
npm ci --prefix tests/dashboard --no-audit --no-fund --loglevel=error

log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
# Release: the audio paths run in real time and are measured; debug builds are too slow for that.
cargo test --workspace --release --locked "$@" 2>&1 | tee "$log" || status=$?
# The firewall script, applied for real inside network namespaces (needs root).
if [[ $(id -u) -eq 0 ]]; then
    if scripts/test-firewall.sh 2>&1 | tee -a "$log"; then
        echo "test result: ok. 1 passed; 0 failed; 0 ignored (firewall in network namespaces)" >>"$log"
    else
        status=1
        echo "test result: FAILED. 0 passed; 1 failed; 0 ignored (firewall in network namespaces)" >>"$log"
    fi
else
    echo "test result: ok. 0 passed; 0 failed; 1 ignored (firewall test needs root)" >>"$log"
fi
# The container build (buildah, the real docker/Dockerfile) and a call through the running
# container: about 10 min cold, 5 min warm; needs root. VOICEAGENT_SKIP_DOCKER=1 skips it.
if [[ -z "${VOICEAGENT_SKIP_DOCKER:-}" && $(id -u) -eq 0 ]]; then
    if scripts/test-docker.sh 2>&1 | tee -a "$log"; then
        echo "test result: ok. 1 passed; 0 failed; 0 ignored (docker image and a call through it)" >>"$log"
    else
        status=1
        echo "test result: FAILED. 0 passed; 1 failed; 0 ignored (docker image and a call through it)" >>"$log"
    fi
else
    echo "test result: ok. 0 passed; 0 failed; 1 ignored (docker test skipped: not root, or VOICEAGENT_SKIP_DOCKER is set)" >>"$log"
fi
# One summary line for the whole suite (cargo prints one per test binary).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i; if ($(i+1) ~ /^ignored/) s += $i } }
     END { printf "tests: %d passed, %d failed, %d skipped\n", p, f, s }' "$log" | tee target/test-summary.txt
exit "$status"
