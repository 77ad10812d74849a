#!/usr/bin/env bash
# Builds PJSIP (pjproject) for voiceagent and installs it into build/cache/prefix.
#
# This is the only PJSIP recipe: the README's commands, CI and the Docker builder stage all call
# it. It is cheap to call again: when the install is up to date (same recipe, same config_site.h,
# same source) it prints one line and does nothing else.
#
# Where the source comes from, in this order:
#   PJPROJECT_PREFIX=/opt/pjproject   an installed prefix (lib/pkgconfig/libpjproject.pc); nothing
#                                     is built, pjsip-sys links against it directly
#   PJPROJECT_SRC=/path/to/pjproject  a pjproject source tree; it is copied into the cache and
#                                     built there, never in place
#   PJPROJECT_FLAVOR=upstream         (the default) the upstream release tarball of PJSIP 2.17,
#                                     verified by the sha256 of its decompressed tar. It is looked
#                                     up in the download cache (build/downloads, or
#                                     PJPROJECT_DOWNLOADS), which is seeded from a vendor folder
#                                     (PJPROJECT_VENDOR_DIR, default ../shared/vendor beside the
#                                     checkout) when that holds it, and downloaded from upstream's
#                                     release URL otherwise
#   PJPROJECT_FLAVOR=debian           Jami's pjproject 2.12.1 fork bundled in Debian 12's `ring`
#                                     source package, fetched with apt through a private sources
#                                     list and verified by sha256 (for machines that reach only
#                                     Debian's mirror; see the README for what it lacks)
#
# Only the libraries we link are built (in parallel), plus PJSIP's own pjsua from the same tree,
# which the benchmarks compare our engine with. No sample apps, no test programs.
#
# Other knobs: VOICEAGENT_PJ_CACHE (build tree and install, default build/cache),
# PJPROJECT_REBUILD=1 (rebuild even if up to date), JOBS (make -j, default nproc).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${VOICEAGENT_PJ_CACHE:-$ROOT/build/cache}
PREFIX=$CACHE/prefix
STAMP=$PREFIX/.voiceagent-stamp
JOBS=${JOBS:-$(nproc)}

FLAVOR=${PJPROJECT_FLAVOR:-upstream}
DOWNLOADS=${PJPROJECT_DOWNLOADS:-$ROOT/build/downloads}
VENDOR_DIR=${PJPROJECT_VENDOR_DIR:-$ROOT/../shared/vendor}

# The upstream release we build by default. The sha256 is of the decompressed tar (`git archive`
# of the tag): GitHub's gzip layer may differ byte for byte while the tar inside is the same.
UPSTREAM_VERSION=2.17
UPSTREAM_TARBALL=pjproject-$UPSTREAM_VERSION.tar.gz
UPSTREAM_TAR_SHA256=a56dd79d978ce8d796969ee3f43b6e9e586d38aec7328645504f5b4e6255ad2c
UPSTREAM_URL=https://github.com/pjsip/pjproject/archive/refs/tags/$UPSTREAM_VERSION.tar.gz

# The Debian source (PJPROJECT_FLAVOR=debian): Jami's pjproject 2.12.1 fork inside `ring`.
RING_ORIG=ring_20230206.0~ds2.orig.tar.gz
RING_ORIG_SHA256=028661c72b962a32d30a310f5f24e77540c96c479576e886bc3a0a8e9ececff0
RING_PJ_DIR=jami-20230206.0/daemon/contrib/tarballs-unpacked/pjproject-3b78ef1c48732d238ba284cdccb04dc6de79c54f.tar.gz/pjproject-3b78ef1c48732d238ba284cdccb04dc6de79c54f

CONFIGURE_FLAGS=(
    --disable-shared --enable-epoll
    --disable-sound --disable-video
    --disable-libwebrtc --disable-libyuv --disable-ffmpeg --disable-v4l2 --disable-openh264
    --disable-vpx --disable-sdl
    # Sources Debian's repack removed (GSM, Speex, iLBC, G.722.1) and codecs we do not ship.
    --disable-speex-aec --disable-gsm-codec --disable-speex-codec --disable-ilbc-codec
    --disable-g7221-codec --disable-opencore-amr --disable-silk --disable-bcg729
    --disable-pjsua2
    # SRTP from Debian's libsrtp2-dev; Opus (libopus-dev) and OpenSSL are autodetected.
    --with-external-srtp
)
# NDEBUG: a failed pj_assert must not abort a process that carries many calls. pjsip-sys passes
# the same define to bindgen and its C shim.
CFLAGS_PJ="-O2 -g -fPIC -DNDEBUG"

say() { printf 'pjproject: %s\n' "$*" >&2; }
die() { printf 'pjproject: error: %s\n' "$*" >&2; exit 1; }

if [[ -n "${PJPROJECT_PREFIX:-}" ]]; then
    [[ -f "$PJPROJECT_PREFIX/lib/pkgconfig/libpjproject.pc" ]] \
        || die "PJPROJECT_PREFIX=$PJPROJECT_PREFIX has no lib/pkgconfig/libpjproject.pc; point it at a pjproject install prefix (make install), or unset it to build from source"
    say "using the installed prefix $PJPROJECT_PREFIX (nothing to build)"
    exit 0
fi

need() {
    local missing=()
    for tool in "$@"; do command -v "$tool" >/dev/null 2>&1 || missing+=("$tool"); done
    [[ ${#missing[@]} -eq 0 ]] \
        || die "missing tools: ${missing[*]}; run scripts/install-deps.sh (as root) first"
}
need make gcc pkg-config tar gzip sha256sum
pkg-config --exists opus || die "libopus-dev is not installed (Opus would be silently left out); run scripts/install-deps.sh"
pkg-config --exists libsrtp2 || die "libsrtp2-dev is not installed; run scripts/install-deps.sh"

# What the install is made of; any change here means a rebuild.
if [[ -n "${PJPROJECT_SRC:-}" ]]; then
    [[ -f "$PJPROJECT_SRC/version.mak" && -x "$PJPROJECT_SRC/configure" ]] \
        || die "PJPROJECT_SRC=$PJPROJECT_SRC is not a pjproject source tree (no version.mak/configure)"
    SRC_ID="src:$(cd "$PJPROJECT_SRC" && pwd):$(sha256sum "$PJPROJECT_SRC/version.mak" | cut -d' ' -f1)"
else
    case "$FLAVOR" in
        upstream) SRC_ID="upstream:$UPSTREAM_VERSION:$UPSTREAM_TAR_SHA256" ;;
        debian) SRC_ID="ring:$RING_ORIG_SHA256:$RING_PJ_DIR" ;;
        *) die "PJPROJECT_FLAVOR=$FLAVOR is not known; use upstream (PJSIP $UPSTREAM_VERSION, the default) or debian (Debian 12's 2.12.1)" ;;
    esac
fi
FINGERPRINT=$(
    {
        echo "$SRC_ID"
        # libpjproject.pc records absolute paths: a moved checkout needs a fresh install.
        echo "$PREFIX"
        echo "${CONFIGURE_FLAGS[*]} $CFLAGS_PJ"
        cat "$ROOT/build/config_site.h" "$ROOT/build/pjproject.sh"
    } | sha256sum | cut -d' ' -f1
)

# The release tarball into the download cache from the vendor folder, when it has it and the cache
# does not. Done even when the install is up to date: the Docker builder takes the tarball from
# the download cache (build/downloads is part of its build context, build/cache is not).
seed_downloads() {
    local file=$DOWNLOADS/$UPSTREAM_TARBALL
    if [[ ! -f "$file" && -f "$VENDOR_DIR/$UPSTREAM_TARBALL" ]]; then
        say "seeding the download cache from $VENDOR_DIR"
        mkdir -p "$DOWNLOADS"
        cp "$VENDOR_DIR/$UPSTREAM_TARBALL" "$file.part" && mv "$file.part" "$file"
    fi
}
[[ -z "${PJPROJECT_SRC:-}" && "$FLAVOR" == upstream ]] && seed_downloads

mkdir -p "$CACHE"
# One build at a time (cargo build and cargo test may start together).
exec 9>"$CACHE/.lock"
flock 9

if [[ -z "${PJPROJECT_REBUILD:-}" && -f "$STAMP" && "$(cat "$STAMP")" == "$FINGERPRINT" \
      && -f "$PREFIX/lib/pkgconfig/libpjproject.pc" ]]; then
    say "up to date in $PREFIX"
    exit 0
fi

# The first deb-src URI for Debian 12 main, taken from the machine's own apt configuration so that
# no mirror host name is written into our files.
debian_mirror() {
    local f uri
    for f in /etc/apt/sources.list.d/*.sources; do
        [[ -f "$f" ]] || continue
        # deb822 stanzas: take URIs of a stanza whose Suites include bookworm and Components main.
        uri=$(awk '
            BEGIN { RS=""; FS="\n" }
            {
                u=""; s=""; c="";
                for (i = 1; i <= NF; i++) {
                    if ($i ~ /^URIs:/) { u=$i; sub(/^URIs:[ \t]*/, "", u); split(u, a, /[ \t]+/); u=a[1] }
                    if ($i ~ /^Suites:/) s=$i
                    if ($i ~ /^Components:/) c=$i
                }
                if (u != "" && s ~ /(^|[ \t])bookworm([ \t]|$)/ && c ~ /main/) { print u; exit }
            }' "$f")
        [[ -n "$uri" ]] && { echo "$uri"; return; }
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [[ -f "$f" ]] || continue
        uri=$(awk '$1 ~ /^deb(-src)?$/ {
                  i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
                  if ($(i+1) == "bookworm" && $0 ~ / main( |$)/) { print $i; exit } }' "$f")
        [[ -n "$uri" ]] && { echo "$uri"; return; }
    done
}

fetch_ring_pjproject() {
    local dest=$1 dl=$CACHE/download apt_dir=$CACHE/apt
    mkdir -p "$dl" "$apt_dir/lists/partial" "$apt_dir/archives/partial"
    if [[ ! -f "$dl/$RING_ORIG" ]] \
        || [[ "$(sha256sum "$dl/$RING_ORIG" | cut -d' ' -f1)" != "$RING_ORIG_SHA256" ]]; then
        need apt-get
        local mirror keyring=""
        mirror=$(debian_mirror)
        [[ -n "$mirror" ]] \
            || die "found no Debian 12 (bookworm) main source in /etc/apt; set PJPROJECT_SRC to a pjproject tree instead"
        [[ -f /usr/share/keyrings/debian-archive-keyring.gpg ]] \
            && keyring="[signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] "
        printf 'deb-src %s%s bookworm main\n' "$keyring" "$mirror" >"$apt_dir/sources.list"
        # A private sources list and state: the machine's apt configuration is never touched.
        local apt_opts=(
            -o "Dir::Etc::SourceList=$apt_dir/sources.list"
            -o "Dir::Etc::SourceParts=/dev/null"
            -o "Dir::State::Lists=$apt_dir/lists"
            -o "Dir::Cache=$apt_dir"
            -o "Debug::NoLocking=1"
            -o "APT::Sandbox::User=$(id -un)"
        )
        say "fetching the ring source package (pjproject inside) with apt"
        apt-get "${apt_opts[@]}" -qq update
        rm -f "$dl"/ring_*
        (cd "$dl" && apt-get "${apt_opts[@]}" -qq source --download-only ring)
        [[ -f "$dl/$RING_ORIG" ]] \
            || die "apt did not deliver $RING_ORIG (got: $(ls "$dl")); the Debian ring package changed upstream version: set PJPROJECT_SRC to a pjproject tree"
        local got
        got=$(sha256sum "$dl/$RING_ORIG" | cut -d' ' -f1)
        [[ "$got" == "$RING_ORIG_SHA256" ]] \
            || die "$RING_ORIG has sha256 $got, expected $RING_ORIG_SHA256; refusing to build from it"
    fi
    say "extracting pjproject from $RING_ORIG"
    mkdir -p "$dest"
    tar -xzf "$dl/$RING_ORIG" -C "$dest" --strip-components=6 "$RING_PJ_DIR"
}

# sha256 of the tar inside a gzip file.
tar_sha256() { gzip -dc "$1" | sha256sum | cut -d' ' -f1; }

fetch_upstream_pjproject() {
    local dest=$1 file=$DOWNLOADS/$UPSTREAM_TARBALL got
    mkdir -p "$DOWNLOADS"
    if [[ -f "$file" && "$(tar_sha256 "$file")" != "$UPSTREAM_TAR_SHA256" ]]; then
        say "$file does not match the release's sha256; fetching it again"
        rm -f "$file"
    fi
    seed_downloads
    if [[ ! -f "$file" ]]; then
        need curl
        say "downloading PJSIP $UPSTREAM_VERSION from $UPSTREAM_URL"
        curl -fsSL --retry 3 -o "$file.part" "$UPSTREAM_URL" \
            || die "could not download $UPSTREAM_URL; put $UPSTREAM_TARBALL into $DOWNLOADS, or build Debian's 2.12.1 with PJPROJECT_FLAVOR=debian"
        mv "$file.part" "$file"
    fi
    got=$(tar_sha256 "$file")
    [[ "$got" == "$UPSTREAM_TAR_SHA256" ]] \
        || die "$file holds a tar with sha256 $got, expected $UPSTREAM_TAR_SHA256; refusing to build from it (delete it to download again)"
    say "extracting $UPSTREAM_TARBALL"
    mkdir -p "$dest"
    tar -xzf "$file" -C "$dest" --strip-components=1
}

SRC=$CACHE/src
rm -rf "$SRC" "$PREFIX"
if [[ -n "${PJPROJECT_SRC:-}" ]]; then
    say "copying $PJPROJECT_SRC into the cache (the tree itself is not modified)"
    mkdir -p "$SRC"
    tar -C "$PJPROJECT_SRC" --exclude=.git -cf - . | tar -C "$SRC" -xf -
elif [[ "$FLAVOR" == debian ]]; then
    fetch_ring_pjproject "$SRC"
else
    fetch_upstream_pjproject "$SRC"
fi

# Our knobs. A tree that ships its own config_site.h (the savoirfairelinux fork's master does)
# keeps it, and ours is appended after it.
site=$SRC/pjlib/include/pj/config_site.h
if [[ -s "$site" ]]; then
    { cat "$site"; echo; cat "$ROOT/build/config_site.h"; } >"$site.new" && mv "$site.new" "$site"
else
    cp "$ROOT/build/config_site.h" "$site"
fi

say "configuring (audio only, null sound, Opus, G.722, G.711, SRTP, TLS, epoll)"
log=$CACHE/build.log
: >"$log"
(
    cd "$SRC"
    chmod +x configure aconfigure 2>/dev/null || true
    ./configure --prefix="$PREFIX" "${CONFIGURE_FLAGS[@]}" CFLAGS="$CFLAGS_PJ" >>"$log" 2>&1
) || die "configure failed; the last lines of $log:
$(tail -n 25 "$log")"
grep -q 'OPUS library found' "$log" \
    || die "configure did not find Opus (libopus-dev); see $log"

say "building the libraries and pjsua with make -j$JOBS (a few minutes on 2 cores)"
# `make lib` builds only the libraries (upstream's `make all` also builds the test programs, whose
# makefiles race under -j); pjsua, from the same tree, is the benchmarks' anchor.
(
    cd "$SRC"
    {
        make dep && make -j"$JOBS" lib && make -j"$JOBS" -C pjsip-apps/build pjsua && make install
    } >>"$log" 2>&1
) || die "make failed; the last lines of $log:
$(tail -n 25 "$log")"

# PJSIP's own pjsua, from the same tree: the benchmarks compare our engine against it.
mkdir -p "$PREFIX/bin"
for app in "$SRC"/pjsip-apps/bin/pjsua-*; do
    [[ -x "$app" ]] && cp "$app" "$PREFIX/bin/pjsua"
done

# What the engine reports as its build flavour (`voiceagent check`, the start-up log).
if [[ -n "${PJPROJECT_SRC:-}" ]]; then echo "source tree" >"$PREFIX/.voiceagent-flavor"
else echo "$FLAVOR" >"$PREFIX/.voiceagent-flavor"; fi
echo "$FINGERPRINT" >"$STAMP"
say "installed into $PREFIX ($(grep -E '^Version:' "$PREFIX/lib/pkgconfig/libpjproject.pc"))"
