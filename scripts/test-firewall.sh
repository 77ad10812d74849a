#!/usr/bin/env bash
# Tests scripts/firewall.sh for real, with packets, inside network namespaces (run as root).
#
#   scripts/test-firewall.sh
#
# Four namespaces joined by veth pairs, addressed from the documentation ranges (TEST-NET-1..3),
# with no routes to anywhere else, so no packet leaves them:
#   va-fw-server  the voiceagent host: 192.0.2.1, 198.51.100.1, 203.0.113.1; listens on SIP
#                 (udp+tcp), one RTP port, the API and an unfiltered control port
#   va-fw-trunk   the SIP trunk: 192.0.2.2 (signalling) and 192.0.2.3 (media)
#   va-fw-vpn     an operator on the VPN: 203.0.113.2
#   va-fw-other   anyone else on the internet: 198.51.100.2
# The server namespace starts with rules a real host might have: one that opens SIP to everyone
# and one that opens the RTP range to everyone (both must go), SSH and a source-restricted API rule
# (both must stay), and a rule opening SSH and SIP together (must stay: removing it would close
# SSH). Each probe sends one token; a UDP probe is followed by a token on the unfiltered control
# port, which the listener answers only after it has drained the probed socket, so "not received"
# is decided without sleeps or guessed waits. TCP probes time out (2 s) when their SYN is dropped.
#
# Checks: every probe gets through before the firewall (the test can see acceptance); with the
# firewall each port answers exactly the networks configured; loopback still reaches the API; a
# second run changes nothing; --remove restores iptables-save and ip6tables-save exactly.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SERVER=va-fw-server TRUNK=va-fw-trunk VPN=va-fw-vpn OTHER=va-fw-other
SIP_PORT=5060 RTP_PORT_START=4000 RTP_PORT_RANGE=100 API_PORT=8085
RTP_PROBE_PORT=4050 CONTROL_PORT=9999

say() { printf 'test-firewall: %s\n' "$*" >&2; }
die() { printf 'test-firewall: error: %s\n' "$*" >&2; exit 1; }

[[ $(id -u) -eq 0 ]] || die "run as root (it creates network namespaces)"
for tool in ip:iproute2 iptables:iptables python3:python3; do
    command -v "${tool%%:*}" >/dev/null || die "${tool%%:*} not found: apt-get install ${tool#*:}"
done
start=$(date +%s)

work=$(mktemp -d)
LISTENER=""
# shellcheck disable=SC2317 # called through the trap
cleanup() {
    if [[ -n $LISTENER ]]; then
        kill "$LISTENER" 2>/dev/null || true
        wait "$LISTENER" 2>/dev/null || true
    fi
    for ns in $SERVER $TRUNK $VPN $OTHER; do ip netns del "$ns" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

for ns in $SERVER $TRUNK $VPN $OTHER; do
    ip netns del "$ns" 2>/dev/null || true
    ip netns add "$ns"
    ip -n "$ns" link set lo up
done
link() { # link PEER-NS SERVER-ADDR PEER-ADDR...
    local peer=$1 server_addr=$2 addr
    shift 2
    ip link add va-fw-s-"${peer#va-fw-}" netns "$SERVER" type veth peer name eth0 netns "$peer"
    ip -n "$SERVER" addr add "$server_addr/24" dev va-fw-s-"${peer#va-fw-}"
    ip -n "$SERVER" link set va-fw-s-"${peer#va-fw-}" up
    for addr in "$@"; do ip -n "$peer" addr add "$addr/24" dev eth0; done
    ip -n "$peer" link set eth0 up
}
link "$TRUNK" 192.0.2.1 192.0.2.2 192.0.2.3
link "$VPN" 203.0.113.1 203.0.113.2
link "$OTHER" 198.51.100.1 198.51.100.2

# One small program: the listener in the server namespace and the probes in the others.
cat >"$work/net.py" <<'PY'
import select, socket, sys

def listen(udp_ports, tcp_ports, control, ready):
    udp = {}
    for port in udp_ports:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("0.0.0.0", port)); s.setblocking(False); udp[s] = port
    tcp = {}
    for port in tcp_ports:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("0.0.0.0", port)); s.listen(16); tcp[s] = port
    ctl = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    ctl.bind(("0.0.0.0", control))
    seen = set()
    def drain():
        for s in udp:
            while True:
                try:
                    data, _ = s.recvfrom(2048)
                except BlockingIOError:
                    break
                seen.add(data)
    open(ready, "w").close()
    while True:
        readable, _, _ = select.select([ctl, *tcp], [], [])
        for s in readable:
            if s is ctl:
                token, addr = ctl.recvfrom(2048)
                drain()
                ctl.sendto(b"got" if token in seen else b"missing", addr)
            else:
                conn, _ = s.accept()
                conn.settimeout(2)
                try:
                    conn.recv(2048); conn.sendall(b"got")
                except OSError:
                    pass
                conn.close()

def probe(proto, src, dst, port, token, control):
    token = token.encode()
    if proto == "udp":
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((src, 0))
        s.sendto(token, (dst, port))
        # Same source, same path, sent after the probe: its answer tells whether the probe arrived.
        c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        c.bind((src, 0)); c.settimeout(5)
        c.sendto(token, (dst, control))
        return c.recv(64) == b"got"
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((src, 0)); s.settimeout(2)
    try:
        s.connect((dst, port)); s.sendall(token)
        return s.recv(64) == b"got"
    except OSError:
        return False

if sys.argv[1] == "listen":
    ints = lambda v: [int(x) for x in v.split(",")]
    listen(ints(sys.argv[2]), ints(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
else:
    ok = probe(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), sys.argv[6], int(sys.argv[7]))
    print("accepted" if ok else "dropped")
PY

ready=$work/ready
ip netns exec "$SERVER" python3 "$work/net.py" listen "$SIP_PORT,$RTP_PROBE_PORT" \
    "$SIP_PORT,$API_PORT" "$CONTROL_PORT" "$ready" &
LISTENER=$!
for _ in $(seq 1 100); do [[ -f $ready ]] && break; sleep 0.05; done
[[ -f $ready ]] || die "the listener did not start"

failures=0 probes=0 token=0
expect() { # expect accepted|dropped NS PROTO SRC DST PORT
    local want=$1 ns=$2 proto=$3 src=$4 dst=$5 port=$6 got
    token=$((token + 1)); probes=$((probes + 1))
    got=$(ip netns exec "$ns" python3 "$work/net.py" probe "$proto" "$src" "$dst" "$port" \
        "probe-$token" "$CONTROL_PORT")
    if [[ $got == "$want" ]]; then
        say "ok: $proto $src -> $dst:$port $got"
    else
        say "FAIL: $proto $src -> $dst:$port $got, expected $want"
        failures=$((failures + 1))
    fi
}
# The whole matrix: who may reach what.
matrix() { # matrix ACCEPTED-UNLESS-FIREWALLED...: "fw" to expect the firewall's verdicts, "open" for all accepted
    local fw=$1 a=accepted d=dropped
    [[ $fw == open ]] && d=accepted
    expect $a "$TRUNK" udp 192.0.2.2 192.0.2.1 $SIP_PORT
    expect $a "$TRUNK" tcp 192.0.2.2 192.0.2.1 $SIP_PORT
    expect $d "$TRUNK" udp 192.0.2.2 192.0.2.1 $RTP_PROBE_PORT
    expect $d "$TRUNK" tcp 192.0.2.2 192.0.2.1 $API_PORT
    expect $a "$TRUNK" udp 192.0.2.3 192.0.2.1 $RTP_PROBE_PORT
    expect $d "$TRUNK" udp 192.0.2.3 192.0.2.1 $SIP_PORT
    expect $a "$VPN" tcp 203.0.113.2 203.0.113.1 $API_PORT
    expect $d "$VPN" udp 203.0.113.2 203.0.113.1 $SIP_PORT
    expect $d "$VPN" udp 203.0.113.2 203.0.113.1 $RTP_PROBE_PORT
    expect $d "$OTHER" udp 198.51.100.2 198.51.100.1 $SIP_PORT
    expect $d "$OTHER" tcp 198.51.100.2 198.51.100.1 $SIP_PORT
    expect $d "$OTHER" udp 198.51.100.2 198.51.100.1 $RTP_PROBE_PORT
    expect $d "$OTHER" tcp 198.51.100.2 198.51.100.1 $API_PORT
    # The container's health check: loopback is never filtered.
    expect accepted "$SERVER" tcp 127.0.0.1 127.0.0.1 $API_PORT
}

# A host's rules before voiceagent came.
S() { ip netns exec "$SERVER" "$@"; }
S iptables -w -A INPUT -p tcp --dport 22 -j ACCEPT
S iptables -w -A INPUT -p udp --dport "$SIP_PORT" -j ACCEPT
S iptables -w -A INPUT -s 10.0.0.0/8 -p tcp --dport "$API_PORT" -j ACCEPT
S iptables -w -A INPUT -p udp -m multiport --dports 22,"$SIP_PORT" -j ACCEPT
S iptables -w -A INPUT -p udp --dport 4000:4099 -j ACCEPT
S ip6tables -w -A INPUT -p tcp --dport "$API_PORT" -j ACCEPT
saved() { # the rule set without counters and comments
    { S iptables-save; S ip6tables-save; } | grep -v '^#' | sed 's/ \[[0-9]*:[0-9]*\]$//'
}
before=$(saved)

say "without the firewall: everything gets through"
matrix open

fw_env=("SIP_PORT=$SIP_PORT" "RTP_PORT_START=$RTP_PORT_START" "RTP_PORT_RANGE=$RTP_PORT_RANGE"
    "API_PORT=$API_PORT" TRUNK_SIGNALING_NETS=192.0.2.2/32 TRUNK_MEDIA_NETS=192.0.2.3/32
    VPN_NETS=203.0.113.2/32 "STATE_DIR=$work/state")
firewall() { S env "${fw_env[@]}" "$ROOT/scripts/firewall.sh" "$@"; }

say "dry run changes nothing"
firewall --dry-run >"$work/dry-run.txt"
[[ $(saved) == "$before" ]] || { say "FAIL: --dry-run changed the rules"; failures=$((failures + 1)); }
grep -q -- "-I INPUT 1 -j VOICEAGENT" "$work/dry-run.txt" \
    || { say "FAIL: --dry-run did not print the jump into VOICEAGENT"; failures=$((failures + 1)); }

say "with the firewall"
firewall
first=$(saved)
matrix fw
rules=$(S iptables -w -S INPUT)
for gone in "-p udp -m udp --dport $SIP_PORT -j ACCEPT" "-p udp -m udp --dport 4000:4099 -j ACCEPT"; do
    if grep -qx -- "-A INPUT $gone" <<<"$rules"; then
        say "FAIL: the open rule '$gone' is still there"; failures=$((failures + 1))
    fi
done
for kept in "-p tcp -m tcp --dport 22 -j ACCEPT" "-s 10.0.0.0/8 -p tcp -m tcp --dport $API_PORT -j ACCEPT" \
    "-p udp -m multiport --dports 22,$SIP_PORT -j ACCEPT"; do
    grep -qx -- "-A INPUT $kept" <<<"$rules" \
        || { say "FAIL: the rule '$kept' should have stayed"; failures=$((failures + 1)); }
done
if S ip6tables -w -S INPUT | grep -qx -- "-A INPUT -p tcp -m tcp --dport $API_PORT -j ACCEPT"; then
    say "FAIL: the open IPv6 API rule is still there"; failures=$((failures + 1))
fi

say "a second run changes nothing"
firewall
[[ $(saved) == "$first" ]] || { say "FAIL: the second run changed the rules:"; diff <(echo "$first") <(saved) >&2 || true; failures=$((failures + 1)); }

say "--remove restores the previous rules"
firewall --remove
after=$(saved)
if [[ $after == "$before" ]]; then
    say "ok: iptables-save and ip6tables-save are identical to before"
else
    say "FAIL: the rules differ from before:"; diff <(echo "$before") <(echo "$after") >&2 || true
    failures=$((failures + 1))
fi
expect accepted "$OTHER" udp 198.51.100.2 198.51.100.1 $SIP_PORT

say "$probes probes, $failures failures, $(( $(date +%s) - start )) s"
exit $(( failures > 0 ))
