#!/usr/bin/env bash
# Builds docker/Dockerfile and proves the image works, on a machine without a Docker engine.
#
#   scripts/test-docker.sh            (as root)
#
# Debian's buildah builds the real Dockerfile (chroot isolation, vfs storage) and runs the result
# with host networking. Base images cannot be pulled here, so this script makes the two images the
# Dockerfile names from Debian 12 itself: debootstrap (from the machine's own apt mirror) gives
# `debian:bookworm-slim`, and the same root plus this machine's Rust toolchain, laid out the way the
# official image does it (RUSTUP_HOME=/usr/local/rustup, CARGO_HOME=/usr/local/cargo), gives
# `rust:<version>-bookworm`. The fake Rust image has no compiler packages at all, so the build also
# proves that the Dockerfile installs everything it needs.
#
# Checks: the image builds; the runtime stage runs as a non-root user, carries the health check,
# and every shared library of the binary resolves; when the binary has the `run` and `health`
# subcommands, it answers a call from baresip with the echo agent (greeting heard, own speech
# echoed back) and `voiceagent health` passes against the running service.
#
# Everything lives under build/cache/docker (ignored by git): the base root file system, buildah's
# image store and its cache mounts, so a second run reuses the base images and cached layers
# (about 10 GB: vfs stores every layer as a full copy). VOICEAGENT_DOCKER_CACHE moves it;
# REBUILD_BASE=1 remakes the base images. On 2 cores: about 10 minutes cold, 1-4 minutes warm
# (depending on how much of the workspace changed), of which the call itself takes 20 s.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${VOICEAGENT_DOCKER_CACHE:-$ROOT/build/cache/docker}
IMAGE=localhost/voiceagent:test
DEBIAN_IMAGE=docker.io/library/debian:bookworm-slim
STEP_CACHE=localhost/voiceagent-step-cache

say() { printf 'test-docker: %s\n' "$*" >&2; }
die() { printf 'test-docker: error: %s\n' "$*" >&2; exit 1; }
now() { date +%s; }

[[ $(id -u) -eq 0 ]] || die "run as root (buildah with chroot isolation and vfs storage needs it)"

missing=()
for tool in buildah:buildah debootstrap:debootstrap baresip:baresip-core sox:sox espeak-ng:espeak-ng; do
    command -v "${tool%%:*}" >/dev/null 2>&1 || missing+=("${tool#*:}")
done
# The audio comparison uses Debian's python3 with numpy, whatever python3 comes first on PATH.
/usr/bin/python3 -c 'import numpy' 2>/dev/null || missing+=(python3-numpy)
if [[ ${#missing[@]} -gt 0 ]]; then
    say "installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The Rust image the Dockerfile names, and this machine's toolchain that stands in for it.
RUST_VERSION=$(sed -n 's/^ARG RUST_VERSION=//p' "$ROOT/docker/Dockerfile")
[[ -n "$RUST_VERSION" ]] || die "docker/Dockerfile has no 'ARG RUST_VERSION=' line"
RUST_IMAGE=docker.io/library/rust:$RUST_VERSION-bookworm
command -v rustc >/dev/null || die "rustc not found: the Rust toolchain is needed to make the builder image"
SYSROOT=$(rustc --print sysroot)
HOST_RUST=$(rustc --version | cut -d' ' -f2)
[[ "$HOST_RUST" == "$RUST_VERSION" || "$HOST_RUST" == "$RUST_VERSION".* ]] \
    || die "the Dockerfile pins Rust $RUST_VERSION but this machine has $HOST_RUST; cannot fake $RUST_IMAGE"
TRIPLE=$(rustc -vV | sed -n 's/^host: //p')

mkdir -p "$CACHE/tmp"
# Private image store and temp dir (buildah keeps RUN --mount=type=cache directories there).
export TMPDIR=$CACHE/tmp
BUILDAH=(buildah --root "$CACHE/storage" --runroot "$CACHE/run" --storage-driver vfs)

have_image() { "${BUILDAH[@]}" inspect --type image "$1" >/dev/null 2>&1; }

# The first Debian 12 main URI in the machine's apt configuration; no mirror name is written here.
debian_mirror() {
    local f
    for f in /etc/apt/sources.list.d/*.sources; do
        [[ -f "$f" ]] || continue
        awk 'BEGIN { RS=""; FS="\n" }
             { u=""; s=""; c="";
               for (i = 1; i <= NF; i++) {
                 if ($i ~ /^URIs:/) { u=$i; sub(/^URIs:[ \t]*/, "", u); split(u, a, /[ \t]+/); u=a[1] }
                 if ($i ~ /^Suites:/) s=$i
                 if ($i ~ /^Components:/) c=$i }
               if (u != "" && s ~ /(^|[ \t])bookworm([ \t]|$)/ && c ~ /main/) { print u; exit } }' "$f"
    done | head -n 1
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [[ -f "$f" ]] || continue
        awk '$1 == "deb" { i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
             if ($(i+1) == "bookworm" && $0 ~ / main( |$)/) { print $i; exit } }' "$f"
    done | head -n 1
}

make_base_images() {
    local rootfs=$CACHE/rootfs mirror ctr mnt
    if [[ ! -f "$rootfs/.complete" ]]; then
        mirror=$(debian_mirror | head -n 1)
        [[ -n "$mirror" ]] || die "found no Debian 12 (bookworm) main source in /etc/apt"
        say "debootstrap: a minimal Debian 12 root from the machine's mirror"
        rm -rf "$rootfs"
        debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$CACHE/debootstrap.log" 2>&1 \
            || die "debootstrap failed; see $CACHE/debootstrap.log"
        # Like the official image: deb822 sources (the machine's own, so the same mirror and
        # security suite), no package lists, no apt caches.
        rm -f "$rootfs/etc/apt/sources.list"
        if [[ -f /etc/apt/sources.list.d/debian.sources ]]; then
            cp /etc/apt/sources.list.d/debian.sources "$rootfs/etc/apt/sources.list.d/"
        else
            printf 'deb %s bookworm main\n' "$mirror" >"$rootfs/etc/apt/sources.list"
        fi
        rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*
        touch "$rootfs/.complete"
    fi

    if [[ -n "${REBUILD_BASE:-}" ]] || ! have_image "$DEBIAN_IMAGE"; then
        say "importing the root as $DEBIAN_IMAGE"
        ctr=$("${BUILDAH[@]}" from --pull=never scratch)
        mnt=$("${BUILDAH[@]}" mount "$ctr")
        tar -C "$rootfs" --exclude=./.complete -cf - . | tar -C "$mnt" -xf -
        # This machine reaches the package registries through a TLS proxy with its own CA. Like
        # the mirror, it is the machine's business: its local CAs go where Debian's
        # update-ca-certificates looks (the Dockerfile installs ca-certificates), and nowhere else.
        if compgen -G '/usr/local/share/ca-certificates/*.crt' >/dev/null; then
            mkdir -p "$mnt/usr/local/share/ca-certificates"
            cp /usr/local/share/ca-certificates/*.crt "$mnt/usr/local/share/ca-certificates/"
        fi
        "${BUILDAH[@]}" umount "$ctr" >/dev/null
        "${BUILDAH[@]}" config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
            --cmd bash "$ctr"
        "${BUILDAH[@]}" commit --quiet --rm "$ctr" "$DEBIAN_IMAGE" >/dev/null
    fi

    if [[ -n "${REBUILD_BASE:-}" ]] || ! have_image "$RUST_IMAGE"; then
        say "laying Rust $HOST_RUST into $RUST_IMAGE"
        local rustup toolchain=$HOST_RUST-$TRIPLE
        rustup=$(command -v rustup) || die "rustup not found (the official image's cargo and rustc are rustup proxies)"
        ctr=$("${BUILDAH[@]}" from --pull=never "$DEBIAN_IMAGE")
        mnt=$("${BUILDAH[@]}" mount "$ctr")
        mkdir -p "$mnt/usr/local/rustup/toolchains/$toolchain" "$mnt/usr/local/cargo/bin"
        # The toolchain without its HTML documentation (most of its size).
        tar -C "$SYSROOT" --exclude=./share/doc -cf - . | tar -C "$mnt/usr/local/rustup/toolchains/$toolchain" -xf -
        printf 'version = "12"\ndefault_toolchain = "%s"\nprofile = "minimal"\n' "$toolchain" \
            >"$mnt/usr/local/rustup/settings.toml"
        install -m 0755 "$rustup" "$mnt/usr/local/cargo/bin/rustup"
        for proxy in cargo rustc rustdoc cargo-clippy clippy-driver rustfmt cargo-fmt; do
            ln -s rustup "$mnt/usr/local/cargo/bin/$proxy"
        done
        "${BUILDAH[@]}" umount "$ctr" >/dev/null
        "${BUILDAH[@]}" config \
            --env RUSTUP_HOME=/usr/local/rustup --env CARGO_HOME=/usr/local/cargo \
            --env PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
            --env RUST_VERSION="$HOST_RUST" "$ctr"
        "${BUILDAH[@]}" commit --quiet --rm "$ctr" "$RUST_IMAGE" >/dev/null
    fi
}

t0=$(now)
make_base_images
t_base=$(( $(now) - t0 ))

# vfs storage keeps a full copy of the file system for every step, so the store is pruned after
# each build to what the next build can reuse: the base images, every step before the
# repository's source comes in (the builder through the PJSIP build, the runtime through its
# packages and user), and the tagged result. About 10 GB stay.
prune_store() {
    local keep id name
    keep=$(awk '
        /^\[[0-9]+\/[0-9]+\] STEP 1\// { taking = 1 }
        / STEP [0-9]+\/[0-9]+: (COPY \. \.|COPY --from=)/ { taking = 0 }
        taking && /^--> [0-9a-f]+$/ { print $2 }' "$CACHE/build.log")
    # Named, so that removing an unnamed child does not take its unnamed parents with it.
    for id in $keep; do
        "${BUILDAH[@]}" tag "$id" "$STEP_CACHE:$id" >/dev/null 2>&1 || true
    done
    for _ in 1 2; do
        while read -r id name; do
            case $name in
                "$STEP_CACHE":*) grep -qx "${name##*:}" <<<"$keep" || "${BUILDAH[@]}" rmi "$name" ;;
                "<none>:<none>" | "<none>") "${BUILDAH[@]}" rmi "$id" ;;
            esac </dev/null >/dev/null 2>&1 || true
        done < <("${BUILDAH[@]}" images -a --noheading --format '{{.ID}} {{.Name}}:{{.Tag}}')
    done
}
# Working containers left by an interrupted build (this store is ours alone).
"${BUILDAH[@]}" rm --all >/dev/null 2>&1 || true

say "building docker/Dockerfile (log: $CACHE/build.log)"
t1=$(now)
# Docker format: the OCI image format has no HEALTHCHECK. --layers: reuse unchanged steps.
"${BUILDAH[@]}" bud --isolation chroot --network host --pull=never --layers --format docker \
    -f "$ROOT/docker/Dockerfile" -t "$IMAGE" "$ROOT" >"$CACHE/build.log" 2>&1 \
    || die "the image build failed; the last lines of $CACHE/build.log:
$(tail -n 30 "$CACHE/build.log")"
t_build=$(( $(now) - t1 ))
prune_store
say "built $IMAGE in ${t_build}s (base images ${t_base}s)"

# --- checks on the image's configuration -------------------------------------------------------
failures=0
check() { # check NAME CONDITION-OUTPUT...: report and count
    local name=$1; shift
    if "$@"; then say "ok: $name"; else say "FAIL: $name"; failures=$((failures + 1)); fi
}
config=$("${BUILDAH[@]}" inspect --type image "$IMAGE" | python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)["Docker"]["config"]))')
user=$(printf '%s' "$config" | python3 -c 'import json,sys; print(json.load(sys.stdin).get("User") or "")')
mapfile -t health < <(printf '%s' "$config" | python3 -c 'import json,sys; print("\n".join((json.load(sys.stdin).get("Healthcheck") or {}).get("Test") or []))')
check "image user is not root ($user)" test -n "$user" -a "${user%%:*}" != root -a "${user%%:*}" != 0
check "health check configured (${health[*]})" test "${health[0]:-}" = CMD -a -n "$(grep -o 'voiceagent health' <<<"${health[*]}")"

# --- checks inside the runtime image -----------------------------------------------------------
CTRS=()
PIDS=()
descendants() { # every process below PID, deepest first
    local child
    for child in $(ps -o pid= --ppid "$1"); do descendants "$child"; echo "$child"; done
}
# shellcheck disable=SC2317 # called through the trap
cleanup() {
    local p c
    # The container's processes first (buildah run need not forward signals), then buildah.
    for p in "${PIDS[@]}"; do
        for c in $(descendants "$p"); do kill "$c" 2>/dev/null || true; done
        kill "$p" 2>/dev/null || true
    done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    for c in "${CTRS[@]}"; do "${BUILDAH[@]}" rm "$c" >/dev/null 2>&1 || true; done
}
trap cleanup EXIT
ctr=$("${BUILDAH[@]}" from --pull=never "$IMAGE")
CTRS+=("$ctr")
RUN=("${BUILDAH[@]}" run --isolation chroot --network host)

uid=$("${RUN[@]}" "$ctr" -- id -u)
check "runtime user id is not 0 (uid $uid)" test "$uid" != 0
# buildah run starts the command as the image's USER; writing to /data proves the volume's owner.
check "data directory writable by that user" "${RUN[@]}" "$ctr" -- sh -c 'touch /data/.probe && rm /data/.probe'
check "default catalog in the data directory" "${RUN[@]}" "$ctr" -- sh -c 'ls /data/catalog/*.csv >/dev/null'
unresolved=$("${RUN[@]}" "$ctr" -- sh -c 'ldd /usr/local/bin/voiceagent | grep "not found" || true')
check "every shared library resolves${unresolved:+ (missing: $unresolved)}" test -z "$unresolved"
say "the binary links: $("${RUN[@]}" "$ctr" -- sh -c "ldd /usr/local/bin/voiceagent | awk '{print \$1}' | tr '\n' ' '")"

help=$("${RUN[@]}" "$ctr" -- voiceagent --help 2>&1 || true)
if ! grep -qw run <<<"$help" || ! grep -qw health <<<"$help"; then
    say "SKIP: the call and health checks: this voiceagent has no 'run'/'health' subcommand yet"
    say "summary: build ${t_build}s, base ${t_base}s, $failures failed (call test skipped)"
    exit $(( failures > 0 ))
fi

# --- a real call through the running container -------------------------------------------------
# Free ports on this machine (other tests may be running): SIP, API, an RTP range for each side.
free_ports() { # free_ports udp|tcp COUNT: the first port of COUNT consecutive free ones
    python3 - "$1" "$2" <<'PY'
import random, socket, sys
kind = socket.SOCK_DGRAM if sys.argv[1] == "udp" else socket.SOCK_STREAM
count = int(sys.argv[2])
for _ in range(200):
    base = random.randrange(20000, 30000, 2)
    held = []
    try:
        for port in range(base, base + count):
            s = socket.socket(socket.AF_INET, kind)
            held.append(s)
            s.bind(("0.0.0.0", port))
        print(base)
        break
    except OSError:
        pass
    finally:
        for s in held:
            s.close()
PY
}
work=$(mktemp -d "$CACHE/tmp/call.XXXXXX")
sip_port=$(free_ports udp 1)
api_port=$(free_ports tcp 1)
rtp_start=$(free_ports udp 20)
say "starting voiceagent run (echo agent) in the container: SIP $sip_port, API $api_port, RTP $rtp_start+20"
"${RUN[@]}" --env SIP_BIND=127.0.0.1 --env SIP_PORT="$sip_port" --env API_ADDR="127.0.0.1:$api_port" \
    --env RTP_PORT_START="$rtp_start" --env RTP_PORT_RANGE=20 --env OPENAI_API_KEY= \
    "$ctr" -- voiceagent run >"$work/voiceagent.log" 2>&1 &
AGENT=$!
PIDS+=("$AGENT")
stop_agent() { # the container's processes first (buildah may not forward signals), then buildah
    local p
    for p in $(descendants "$AGENT"); do kill "$p" 2>/dev/null || true; done
    kill "$AGENT" 2>/dev/null || true
    wait "$AGENT" 2>/dev/null || true
}

# The image's own health check command, run the way Docker runs it (same image, same environment).
health_ctr=$("${BUILDAH[@]}" from --pull=never "$IMAGE")
CTRS+=("$health_ctr")
healthy=""
t_up=$(now)
while (( $(now) - t_up < 30 )); do # readiness: poll until it answers or the service died
    if "${RUN[@]}" --env API_ADDR="127.0.0.1:$api_port" "$health_ctr" -- "${health[@]:1}" >/dev/null 2>&1; then
        healthy=yes
        break
    fi
    kill -0 "$AGENT" 2>/dev/null || break
    sleep 0.3
done
check "the image's health check passes against the running container" test -n "$healthy"
if [[ -z $healthy ]]; then
    say "voiceagent's log:"
    tail -n 30 "$work/voiceagent.log" >&2
    stop_agent
    exit 1
fi

# The caller: 6 s of silence (the greeting is 4.6 s), a German sentence, 5 s of silence (the echo
# agent replies when the turn ends). baresip records what it hears (sndfile: dump-*-dec.wav).
espeak-ng -v de -s 150 -w "$work/speech-raw.wav" "Guten Tag, ich möchte zehn Pressfittings bestellen."
sox "$work/speech-raw.wav" -r 48000 -c 1 -b 16 "$work/speech.wav"
sox -n -r 48000 -c 1 -b 16 "$work/lead.wav" trim 0 6
sox -n -r 48000 -c 1 -b 16 "$work/tail.wav" trim 0 5
sox "$work/lead.wav" "$work/speech.wav" "$work/tail.wav" "$work/caller.wav"
mkdir -p "$work/baresip" "$work/rec"
bport=$(free_ports udp 1)
brtp=$(free_ports udp 8)
{
    printf 'sip_listen\t\t127.0.0.1:%s\n' "$bport"
    printf 'net_interface\t\t127.0.0.1\n'
    printf 'audio_source\t\taufile,%s\n' "$work/caller.wav"
    printf 'ausrc_srate\t\t48000\nausrc_channels\t\t1\n'
    printf 'audio_player\t\taufile,%s\n' "$work/rec/played.wav"
    printf 'audio_alert\t\taufile,/dev/null\n'
    printf 'rtp_ports\t\t%s-%s\n' "$brtp" "$((brtp + 7))"
    printf 'module_path\t\t/usr/lib/baresip/modules\n'
    printf 'module\t\t\t%s\n' opus.so g711.so aufile.so sndfile.so
    printf 'module_tmp\t\taccount.so\nmodule_app\t\tmenu.so\n'
    printf 'snd_path\t\t%s\n' "$work/rec"
} >"$work/baresip/config"
echo "<sip:caller@127.0.0.1:$bport>;regint=0;audio_codecs=opus,PCMA" >"$work/baresip/accounts"
: >"$work/baresip/contacts"
say "calling sip:agent@127.0.0.1:$sip_port from baresip (20 s)"
t_call=$(now)
baresip -f "$work/baresip" -e "/dial sip:agent@127.0.0.1:$sip_port" -t 20 </dev/null >"$work/baresip.log" 2>&1 || true
say "call took $(( $(now) - t_call ))s"
stop_agent

heard=$(find "$work/rec" -name 'dump-*-dec.wav' | head -n 1)
check "baresip recorded the call" test -n "$heard"
if [[ -z $heard ]]; then
    say "baresip's log:"
    tail -n 30 "$work/baresip.log" >&2
    say "voiceagent's log:"
    tail -n 30 "$work/voiceagent.log" >&2
    exit 1
fi
# What was heard against what should have been: the greeting (agent/assets/greeting.wav) near the
# start, and the caller's own sentence after it was spoken. Normalised cross-correlation of the
# waveforms at 16 kHz: speech through the codecs and resamplers stays well above 0.5, unrelated
# audio and silence far below.
for f in heard:"$heard" greeting:"$ROOT/agent/assets/greeting.wav" speech:"$work/speech.wav"; do
    sox "${f#*:}" -r 16000 -c 1 -b 16 -e signed-integer -t raw "$work/${f%%:*}.s16"
done
/usr/bin/python3 - "$work" 6 >"$work/compare.txt" <<'PY'
import sys
import numpy as np
work, speech_at = sys.argv[1], float(sys.argv[2])
rate = 16000
def load(name):
    return np.fromfile(f"{work}/{name}.s16", dtype="<i2").astype(np.float64)
heard, greeting, speech = load("heard"), load("greeting"), load("speech")

def best(signal, template):
    """Peak normalised cross-correlation of template within signal, and its offset in s."""
    if len(signal) < len(template):
        return 0.0, 0.0
    n = len(signal) + len(template)
    size = 1 << (n - 1).bit_length()
    corr = np.fft.irfft(np.fft.rfft(signal, size) * np.conj(np.fft.rfft(template, size)), size)
    corr = corr[: len(signal) - len(template) + 1]
    energy = np.convolve(signal ** 2, np.ones(len(template)), "valid")
    ncc = corr / (np.sqrt(np.maximum(energy, 0) * np.sum(template ** 2)) + 1e-9)
    i = int(np.argmax(ncc))
    return float(ncc[i]), i / rate

rms = float(np.sqrt(np.mean(heard ** 2))) if len(heard) else 0.0
g, g_at = best(heard, greeting)
e, e_at = best(heard, speech)
print(f"heard {len(heard) / rate:.1f} s, rms {rms:.0f}")
print(f"greeting: correlation {g:.2f} at {g_at:.2f} s")
print(f"echo of the caller's sentence: correlation {e:.2f} at {e_at:.2f} s (spoken at {speech_at:.1f} s)")
ok = rms > 100 and g > 0.5 and g_at < 3 and e > 0.5 and e_at > speech_at + len(speech) / rate
print("PASS" if ok else "FAIL")
PY
sed 's/^/test-docker:   /' "$work/compare.txt" >&2
check "the caller heard the greeting and then its own sentence" grep -qx PASS "$work/compare.txt"
rm -rf "$work"

say "summary: build ${t_build}s (base images ${t_base}s), $failures failed"
exit $(( failures > 0 ))
