#!/usr/bin/env bash
# Host firewall for voiceagent: its ports answer only the networks that need them.
#
#   scripts/firewall.sh [options]            apply (as root); safe to repeat
#   scripts/firewall.sh --dry-run [options]  print the iptables commands, change nothing
#   scripts/firewall.sh --remove             undo everything this script did
#
# The container runs with host networking, so voiceagent's ports are the host's ports and Docker's
# own port publishing (and its firewall rules) never comes into play. This script keeps them closed
# to everyone but:
#   SIP (SIP_PORT, udp and tcp)             the trunk's signalling networks (TRUNK_SIGNALING_NETS)
#   RTP (RTP_PORT_RANGE ports from RTP_PORT_START, udp)   the trunk's media networks (TRUNK_MEDIA_NETS)
#   API (API_PORT, tcp)                     the operators' VPN (VPN_NETS)
# Everything else sent to these ports is dropped. Loopback traffic is left alone (the container's
# health check calls the API on 127.0.0.1). Other ports and the INPUT policy are not touched.
#
# The rules live in their own chain (VOICEAGENT, jumped to from the top of INPUT), which is flushed
# and refilled on every run, so repeating the script never duplicates a rule. ACCEPT rules in INPUT
# that opened one of these ports to every source (no -s) are removed: they would open the ports
# again the moment the jump is gone or something is inserted above it, and they make the rule set
# say the ports are public. They are remembered in STATE_DIR, and --remove puts them back where
# they were. IPv6 gets the same chain through ip6tables; networks
# are sorted by family, so without IPv6 networks the ports are simply closed over IPv6.
#
# Settings (environment variables, or the flags in brackets):
#   SIP_PORT=5060                   [--sip-port N]
#   RTP_PORT_START=4000             [--rtp-start N]
#   RTP_PORT_RANGE=100              [--rtp-range N]  the number of ports: START..START+RANGE-1
#   API_PORT=8085                   [--api-port N]
#   TRUNK_SIGNALING_NETS="a/n b/n"  [--trunk-signaling "..."]  required (spaces or commas)
#   TRUNK_MEDIA_NETS="a/n b/n"      [--trunk-media "..."]      default: TRUNK_SIGNALING_NETS
#   VPN_NETS="a/n"                  [--vpn "..."]              empty: the API answers loopback only
#   CHAIN=VOICEAGENT                [--chain NAME]
#   STATE_DIR=/var/lib/voiceagent-firewall  [--state-dir DIR]
# docs/DEPLOYMENT.md has a worked sipgate example.
set -euo pipefail

SIP_PORT=${SIP_PORT:-5060}
RTP_PORT_START=${RTP_PORT_START:-4000}
RTP_PORT_RANGE=${RTP_PORT_RANGE:-100}
API_PORT=${API_PORT:-8085}
TRUNK_SIGNALING_NETS=${TRUNK_SIGNALING_NETS:-}
TRUNK_MEDIA_NETS=${TRUNK_MEDIA_NETS:-}
VPN_NETS=${VPN_NETS:-}
CHAIN=${CHAIN:-VOICEAGENT}
STATE_DIR=${STATE_DIR:-/var/lib/voiceagent-firewall}
MODE=apply
DRY_RUN=""

say() { printf 'firewall: %s\n' "$*" >&2; }
die() { printf 'firewall: error: %s\n' "$*" >&2; exit 1; }
usage() { sed -n '2,/^set -euo/{ /^set -euo/d; s/^# \{0,1\}//; p; }' "$0"; }

while [[ $# -gt 0 ]]; do
    case $1 in
        --dry-run) DRY_RUN=1 ;;
        --remove) MODE=remove ;;
        --sip-port) SIP_PORT=${2:?--sip-port needs a value}; shift ;;
        --rtp-start) RTP_PORT_START=${2:?--rtp-start needs a value}; shift ;;
        --rtp-range) RTP_PORT_RANGE=${2:?--rtp-range needs a value}; shift ;;
        --api-port) API_PORT=${2:?--api-port needs a value}; shift ;;
        --trunk-signaling) TRUNK_SIGNALING_NETS=${2?--trunk-signaling needs a value}; shift ;;
        --trunk-media) TRUNK_MEDIA_NETS=${2?--trunk-media needs a value}; shift ;;
        --vpn) VPN_NETS=${2?--vpn needs a value}; shift ;;
        --chain) CHAIN=${2:?--chain needs a value}; shift ;;
        --state-dir) STATE_DIR=${2:?--state-dir needs a value}; shift ;;
        -h | --help) usage; exit 0 ;;
        *) die "unknown option '$1' (see --help)" ;;
    esac
    shift
done

# --- validation ----------------------------------------------------------------------------------
is_port() { [[ $1 =~ ^[0-9]+$ ]] && (( $1 >= 1 && $1 <= 65535 )); }
for var in SIP_PORT RTP_PORT_START API_PORT; do
    is_port "${!var}" || die "$var='${!var}' is not a port number (1-65535)"
done
# The same meaning as voiceagent's RTP_PORT_RANGE: the number of ports (RTP and RTCP) from
# RTP_PORT_START on.
if ! [[ $RTP_PORT_RANGE =~ ^[0-9]+$ ]] || (( RTP_PORT_RANGE < 2 || RTP_PORT_START + RTP_PORT_RANGE - 1 > 65535 )); then
    die "RTP_PORT_RANGE='$RTP_PORT_RANGE' must be a number of ports (at least 2) with RTP_PORT_START+RTP_PORT_RANGE-1 <= 65535"
fi
RTP_PORT_END=$(( RTP_PORT_START + RTP_PORT_RANGE - 1 ))
[[ $CHAIN =~ ^[A-Za-z0-9_-]{1,28}$ ]] || die "CHAIN='$CHAIN' is not a valid chain name"

# "a, b c" -> "a b c", each checked to be an IPv4 or IPv6 address or network.
split_nets() {
    local var=$1 net out=()
    for net in ${!var//,/ }; do
        if [[ $net =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}(/([0-9]|[12][0-9]|3[0-2]))?$ ]] \
            || [[ $net =~ ^[0-9A-Fa-f:]*:[0-9A-Fa-f:.]*(/([0-9]{1,2}|1[01][0-9]|12[0-8]))?$ ]]; then
            out+=("$net")
        else
            die "$var: '$net' is not an IPv4/IPv6 address or network (e.g. 192.0.2.0/24)"
        fi
    done
    echo "${out[*]}"
}

# --- iptables wrappers ---------------------------------------------------------------------------
# run: commands that change the firewall (printed in dry-run mode); query: read-only ones.
run() {
    if [[ -n $DRY_RUN ]]; then printf '%s\n' "$*"; else "$@"; fi
}
query() { "$@" 2>/dev/null; }

# The ports a rule in INPUT opens, as "first last" pairs, or nothing if it names no port.
rule_ports() {
    local spec=$1 word next=""
    for word in $spec; do
        if [[ -n $next ]]; then
            local item
            for item in ${word//,/ }; do
                echo "${item%%:*} ${item##*:}"
            done
            next=""
        fi
        [[ $word == --dport || $word == --dports || $word == --destination-port ]] && next=1
    done
}

# Prints "ours" when every port the rule names is one of ours, "mixed" when only some are, and
# nothing when none are (or it names no port at all).
classify_ports() {
    local first last any=0 all=1
    while read -r first last; do
        [[ -z $first ]] && continue
        if (( (first <= SIP_PORT && SIP_PORT <= last) || (first <= API_PORT && API_PORT <= last)
              || (first <= RTP_PORT_END && RTP_PORT_START <= last) )); then
            any=1
        fi
        if ! (( (first == SIP_PORT && last == SIP_PORT) || (first == API_PORT && last == API_PORT)
                || (RTP_PORT_START <= first && last <= RTP_PORT_END) )); then
            all=0
        fi
    done < <(rule_ports "$1")
    if (( any && all )); then echo ours; elif (( any )); then echo mixed; fi
}

# ACCEPT rules in INPUT that open one of our ports to every source, as "index<TAB>spec", where
# index is the rule's position in INPUT (without our jump).
open_rules() {
    local ipt=$1 index=0 line
    while IFS= read -r line; do
        [[ $line == "-A INPUT "* ]] || continue
        index=$((index + 1))
        [[ $line == *" -j ACCEPT"* ]] || continue
        [[ " $line " == *" -s "* ]] && continue
        [[ " $line " == *" -i lo "* ]] && continue
        case $(classify_ports "$line") in
            ours) printf '%s\t%s\n' "$index" "${line#-A INPUT }" ;;
            # Removing it would also close its other ports (SSH, say): left in place, and harmless
            # for our ports because the VOICEAGENT chain sees every packet before it.
            mixed) say "left in place (it also opens other ports): $line" ;;
        esac
    done < <(query "$ipt" -w -S INPUT)
}

delete_jumps() {
    local ipt=$1
    while query "$ipt" -w -C INPUT -j "$CHAIN"; do
        run "$ipt" -w -D INPUT -j "$CHAIN"
        if [[ -n $DRY_RUN ]]; then break; fi
    done
}

apply_family() {
    local ipt=$1 family=$2 sig=$3 media=$4 vpn=$5
    local state=$STATE_DIR/removed-rules.$family
    local net index spec
    delete_jumps "$ipt"

    # Open rules for our ports: removed and remembered (lowest index first in the state file).
    local removed
    removed=$(open_rules "$ipt")
    if [[ -n $removed ]]; then
        run mkdir -p "$STATE_DIR"
        if [[ -z $DRY_RUN ]]; then printf '%s\n' "$removed" >>"$state"; fi
        while IFS=$'\t' read -r index spec; do
            say "removing a rule that opened a voiceagent port to everyone: -A INPUT $spec"
            # The spec came from iptables -S; word splitting gives back its arguments.
            # shellcheck disable=SC2086
            run "$ipt" -w -D INPUT $spec
        done < <(sort -t$'\t' -k1,1nr <<<"$removed")
    fi

    if query "$ipt" -w -S "$CHAIN" >/dev/null; then
        run "$ipt" -w -F "$CHAIN"
    else
        run "$ipt" -w -N "$CHAIN"
    fi
    local c=(-m comment --comment voiceagent)
    run "$ipt" -w -A "$CHAIN" -i lo -j RETURN "${c[@]}"
    for net in $sig; do
        run "$ipt" -w -A "$CHAIN" -p udp -s "$net" --dport "$SIP_PORT" -j ACCEPT "${c[@]}"
        run "$ipt" -w -A "$CHAIN" -p tcp -s "$net" --dport "$SIP_PORT" -j ACCEPT "${c[@]}"
    done
    for net in $media; do
        run "$ipt" -w -A "$CHAIN" -p udp -s "$net" --dport "$RTP_PORT_START:$RTP_PORT_END" -j ACCEPT "${c[@]}"
    done
    for net in $vpn; do
        run "$ipt" -w -A "$CHAIN" -p tcp -s "$net" --dport "$API_PORT" -j ACCEPT "${c[@]}"
    done
    run "$ipt" -w -A "$CHAIN" -p udp --dport "$SIP_PORT" -j DROP "${c[@]}"
    run "$ipt" -w -A "$CHAIN" -p tcp --dport "$SIP_PORT" -j DROP "${c[@]}"
    run "$ipt" -w -A "$CHAIN" -p udp --dport "$RTP_PORT_START:$RTP_PORT_END" -j DROP "${c[@]}"
    run "$ipt" -w -A "$CHAIN" -p tcp --dport "$API_PORT" -j DROP "${c[@]}"
    run "$ipt" -w -I INPUT 1 -j "$CHAIN"
}

remove_family() {
    local ipt=$1 family=$2 index spec count
    local state=$STATE_DIR/removed-rules.$family
    delete_jumps "$ipt"
    if query "$ipt" -w -S "$CHAIN" >/dev/null; then
        run "$ipt" -w -F "$CHAIN"
        run "$ipt" -w -X "$CHAIN"
    fi
    [[ -f $state ]] || return 0
    # Back to their old positions: ascending order, so every earlier rule is already in place.
    while IFS=$'\t' read -r index spec; do
        [[ -n $index ]] || continue
        count=$(query "$ipt" -w -S INPUT | grep -c '^-A INPUT ' || true)
        if (( index > count + 1 )); then index=$((count + 1)); fi
        say "restoring: -A INPUT $spec (position $index)"
        # shellcheck disable=SC2086
        run "$ipt" -w -I INPUT "$index" $spec
    done < <(sort -t$'\t' -k1,1n -u "$state")
    run rm -f "$state"
}

families=()
command -v iptables >/dev/null || die "iptables not found: apt-get install iptables"
families+=(iptables:4)
command -v ip6tables >/dev/null && families+=(ip6tables:6)
if [[ -z $DRY_RUN && $(id -u) -ne 0 ]]; then
    die "run as root (or with --dry-run to see the commands)"
fi

if [[ $MODE == remove ]]; then
    for f in "${families[@]}"; do remove_family "${f%%:*}" "${f##*:}"; done
    [[ -n $DRY_RUN ]] || rmdir "$STATE_DIR" 2>/dev/null || true
    say "removed the $CHAIN chain"
    exit 0
fi

sig=$(split_nets TRUNK_SIGNALING_NETS)
[[ -n $sig ]] || die "TRUNK_SIGNALING_NETS is empty: set the trunk's SIP signalling networks (see docs/DEPLOYMENT.md), e.g. TRUNK_SIGNALING_NETS=192.0.2.0/24"
media=$(split_nets TRUNK_MEDIA_NETS)
[[ -n $media ]] || media=$sig
vpn=$(split_nets VPN_NETS)
[[ -n $vpn ]] || say "VPN_NETS is empty: the API port answers loopback only"

# Networks of one family: IPv6 ones contain a colon.
of_family() {
    local family=$1 net out=()
    shift
    for net in "$@"; do
        if [[ $family == 6 ]]; then [[ $net == *:* ]] && out+=("$net")
        else [[ $net != *:* ]] && out+=("$net"); fi
    done
    echo "${out[*]}"
}
for f in "${families[@]}"; do
    ipt=${f%%:*} family=${f##*:}
    # shellcheck disable=SC2086
    apply_family "$ipt" "$family" "$(of_family "$family" $sig)" "$(of_family "$family" $media)" \
        "$(of_family "$family" $vpn)"
done
say "SIP $SIP_PORT udp/tcp from: $sig"
say "RTP $RTP_PORT_START-$RTP_PORT_END udp from: $media"
say "API $API_PORT tcp from: ${vpn:-loopback only}"
[[ -n $DRY_RUN ]] && say "dry run: nothing was changed"
exit 0
