#!/usr/bin/env bash
# The README's run command: sets everything up on a fresh Debian 12 machine (packages, PJSIP,
# release build) and runs the main job, `voiceagent run`. Arguments go to `voiceagent run`.
# A second run does no PJSIP work and only rebuilds what changed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/install-deps.sh
build/pjproject.sh
cargo build --release --locked -p agent --bin voiceagent
exec target/release/voiceagent run "$@"
