//! `voiceagent check` against a real STUN server (coturn, STUN only): it reports the address
//! STUN mapped the SIP transport to, or says clearly that no server answered, within a bounded
//! time. The last case puts voiceagent behind a NAT router in network namespaces (root only),
//! where the mapped address differs from the local one: the case that matters to users.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{repo_root, Voiceagent};
use integration_tests::ports;
use integration_tests::process::{scratch_dir, ChildGuard};

/// PJSIP's STUN client gives up on a silent server after 7 transmissions (about 8 s); `check`
/// must end well within this.
const CHECK_TIMEOUT: Duration = Duration::from_secs(30);

/// A STUN-only coturn (`turnserver`), killed and reaped on drop.
struct Coturn {
    process: ChildGuard,
    log: PathBuf,
}

impl Coturn {
    /// Starts coturn on `ip:port` (inside network namespace `netns` if given) and waits until it
    /// logs that its UDP listener is open.
    fn start(netns: Option<&str>, ip: &str, port: u16, dir: &Path) -> Coturn {
        let log = dir.join(format!("turnserver-{port}.log"));
        let mut cmd = match netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, "turnserver"]);
                c
            }
            None => Command::new("turnserver"),
        };
        cmd.args([
            "-c",
            "/dev/null",
            "--stun-only",
            "--verbose",
            "--no-cli",
            "-n",
        ])
        .args(["--no-tcp", "--no-tls", "--no-dtls", "--simple-log"])
        .args(["--listening-ip", ip, "--listening-port", &port.to_string()])
        .arg("--pidfile")
        .arg(dir.join(format!("turnserver-{port}.pid")))
        .arg("--db")
        .arg(dir.join(format!("turndb-{port}")))
        .args(["--log-file", "stdout"])
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(Stdio::null());
        let child = cmd.spawn().unwrap_or_else(|e| {
            panic!("cannot start turnserver ({e}): install coturn (scripts/install-deps.sh --test)")
        });
        let mut coturn = Coturn {
            process: ChildGuard::new("turnserver", child),
            log,
        };
        let ready = format!("UDP listener opened on: {ip}:{port}");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !coturn.log_text().contains(&ready) {
            if let Ok(Some(status)) = coturn.process.try_wait() {
                panic!("turnserver exited ({status}):\n{}", coturn.log_text());
            }
            assert!(
                Instant::now() < deadline,
                "turnserver did not log {ready:?}:\n{}",
                coturn.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        coturn
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Runs `voiceagent check` with `env` on top of the harness's IP-mode settings; returns its
/// output and how long it took. It must succeed: an unanswered STUN server is a warning.
fn check(env: &[(&str, String)]) -> (String, Duration) {
    let started = Instant::now();
    let mut va = Voiceagent::spawn_with(&["check"], env);
    let status = va.wait_exit(CHECK_TIMEOUT);
    let elapsed = started.elapsed();
    let output = va.log_text();
    let status =
        status.unwrap_or_else(|| panic!("check ran longer than {CHECK_TIMEOUT:?}:\n{output}"));
    assert!(status.success(), "check failed ({status}):\n{output}");
    (output, elapsed)
}

fn stun_line(output: &str) -> &str {
    output
        .lines()
        .find(|l| l.starts_with("STUN: "))
        .unwrap_or_else(|| panic!("no STUN line in check's output:\n{output}"))
}

/// `STUN: SERVER mapped the SIP transport to ADDRESS` → ADDRESS.
fn mapped_address<'a>(line: &'a str, server: &str) -> &'a str {
    line.strip_prefix(&format!("STUN: {server} mapped the SIP transport to "))
        .unwrap_or_else(|| panic!("not a mapping by {server}: {line}"))
}

#[test]
fn check_reports_the_address_stun_mapped_the_sip_transport_to() {
    let dir = scratch_dir("check-stun").unwrap();
    let stun_port = ports::udp_port().unwrap();
    let _coturn = Coturn::start(None, "127.0.0.1", stun_port, dir.path());
    let server = format!("127.0.0.1:{stun_port}");
    // A silent server first: PJSIP moves on to the next, and `check` names the one that answered.
    let silent = format!("127.0.0.1:{}", ports::udp_port().unwrap());
    let sip_port = ports::sip_port().unwrap();
    // Bound to all interfaces, PJSIP would advertise the host's own address (pj_gethostip,
    // not loopback on a machine with a network) if it did not use STUN; the server on
    // loopback sees 127.0.0.1 and the SIP port.
    let (output, _) = check(&[
        ("STUN_SERVERS", format!("{silent},{server}")),
        ("SIP_BIND", "0.0.0.0".into()),
        ("SIP_PORT", sip_port.to_string()),
    ]);
    let line = stun_line(&output);
    assert_eq!(
        mapped_address(line, &server),
        format!("127.0.0.1:{sip_port}"),
        "{output}"
    );
    assert!(
        output.contains(&format!("listening on UDP 127.0.0.1:{sip_port}")),
        "the transport advertises the mapped address:\n{output}"
    );

    // A configured public address wins over STUN, and `check` says so.
    let (output, _) = check(&[
        ("STUN_SERVERS", server.clone()),
        ("SIP_PUBLIC_IP", "203.0.113.10".into()),
    ]);
    assert!(
        stun_line(&output)
            .starts_with("STUN: not used for SIP: SIP_PUBLIC_IP=203.0.113.10 is advertised"),
        "{output}"
    );
}

#[test]
fn check_says_clearly_when_no_stun_server_answers_and_ends_in_bounded_time() {
    let silent = format!("127.0.0.1:{}", ports::udp_port().unwrap());
    let (output, elapsed) = check(&[("STUN_SERVERS", silent.clone())]);
    let line = stun_line(&output);
    assert!(
        line.starts_with(&format!("STUN: no server answered (tried {silent});")),
        "{line}"
    );
    assert!(
        line.contains("advertises its local address 127.0.0.1:")
            && line.contains("set SIP_PUBLIC_IP or check the STUN servers"),
        "{line}"
    );
    eprintln!("check with a silent STUN server took {elapsed:.1?}");
    assert!(
        elapsed < Duration::from_secs(15),
        "PJSIP waited {elapsed:?} for a silent STUN server"
    );
}

extern "C" {
    fn geteuid() -> u32;
}

/// Network namespaces removed on drop: `LAN` (voiceagent, 10.77.0.2) behind `RTR` (masquerades
/// to 203.0.113.1) in front of `WAN` (the STUN server, 203.0.113.2). Documentation and private
/// ranges with no route elsewhere: no packet leaves the namespaces.
struct NatNet {
    prefix: String,
}

impl NatNet {
    const LAN_IP: &'static str = "10.77.0.2";
    const PUBLIC_IP: &'static str = "203.0.113.1";
    const STUN_IP: &'static str = "203.0.113.2";

    fn ns(&self, role: &str) -> String {
        format!("{}-{role}", self.prefix)
    }

    /// Builds the namespaces, or says why it cannot (e.g. no CAP_SYS_ADMIN in a container).
    fn create() -> Result<NatNet, String> {
        let net = NatNet {
            prefix: format!("va-stun-{}", std::process::id()),
        };
        let (lan, rtr, wan) = (net.ns("lan"), net.ns("rtr"), net.ns("wan"));
        let id = std::process::id() % 100_000;
        let (to_lan, to_wan) = (format!("vs{id}l"), format!("vs{id}w"));
        let (lan_ip, public_ip, stun_ip) = (Self::LAN_IP, Self::PUBLIC_IP, Self::STUN_IP);
        let steps = [
            format!("ip netns add {lan}"),
            format!("ip netns add {rtr}"),
            format!("ip netns add {wan}"),
            format!("ip -n {lan} link set lo up"),
            format!("ip -n {rtr} link set lo up"),
            format!("ip -n {wan} link set lo up"),
            format!("ip link add {to_lan} netns {rtr} type veth peer name eth0 netns {lan}"),
            format!("ip link add {to_wan} netns {rtr} type veth peer name eth0 netns {wan}"),
            format!("ip -n {lan} addr add {lan_ip}/24 dev eth0"),
            format!("ip -n {rtr} addr add 10.77.0.1/24 dev {to_lan}"),
            format!("ip -n {rtr} addr add {public_ip}/24 dev {to_wan}"),
            format!("ip -n {wan} addr add {stun_ip}/24 dev eth0"),
            format!("ip -n {lan} link set eth0 up"),
            format!("ip -n {rtr} link set {to_lan} up"),
            format!("ip -n {rtr} link set {to_wan} up"),
            format!("ip -n {wan} link set eth0 up"),
            format!("ip -n {lan} route add default via 10.77.0.1"),
            format!("ip netns exec {rtr} sysctl -q -w net.ipv4.ip_forward=1"),
            format!("ip netns exec {rtr} iptables -t nat -A POSTROUTING -o {to_wan} -j MASQUERADE"),
        ];
        for step in &steps {
            let words: Vec<&str> = step.split_whitespace().collect();
            let out = Command::new(words[0])
                .args(&words[1..])
                .output()
                .map_err(|e| format!("{step}: {e}"))?;
            if !out.status.success() {
                let stderr = String::from_utf8_lossy(&out.stderr);
                return Err(format!("{step}: {}", stderr.trim()));
            }
        }
        Ok(net)
    }
}

impl Drop for NatNet {
    fn drop(&mut self) {
        // Deleting a namespace deletes its veth ends (and their peers).
        for role in ["lan", "rtr", "wan"] {
            let _ = Command::new("ip")
                .args(["netns", "del", &self.ns(role)])
                .stderr(Stdio::null())
                .status();
        }
    }
}

#[test]
fn behind_nat_check_reports_the_public_address_stun_saw() {
    // SAFETY: geteuid(2) has no preconditions and cannot fail.
    if unsafe { geteuid() } != 0 {
        eprintln!("skipped: the NAT case needs root (it creates network namespaces)");
        return;
    }
    let net = match NatNet::create() {
        Ok(net) => net,
        Err(reason) => {
            eprintln!("skipped: cannot build the NAT namespaces: {reason}");
            return;
        }
    };
    let dir = scratch_dir("check-stun-nat").unwrap();
    let stun_port = ports::udp_port().unwrap();
    let _coturn = Coturn::start(Some(&net.ns("wan")), NatNet::STUN_IP, stun_port, dir.path());
    let server = format!("{}:{stun_port}", NatNet::STUN_IP);
    let sip_port = ports::sip_port().unwrap();

    let log = dir.path().join("check.log");
    let started = Instant::now();
    let child = Command::new("ip")
        .args(["netns", "exec", &net.ns("lan")])
        .arg(env!("CARGO_BIN_EXE_voiceagent"))
        .arg("check")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("SIP_BIND", "0.0.0.0")
        .env("SIP_PORT", sip_port.to_string())
        .env("SIP_TRANSPORT", "udp")
        .env("RTP_PORT_START", ports::rtp_range(40).unwrap().to_string())
        .env("RTP_PORT_RANGE", "40")
        .env("DATA_DIR", dir.path().join("data"))
        .env("CATALOG_DIR", repo_root().join("data/catalog"))
        .env("LOG_LEVEL", "warn")
        .env("STUN_SERVERS", &server)
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::fs::File::create(dir.path().join("check.err")).unwrap())
        .spawn()
        .expect("spawning voiceagent check in the LAN namespace");
    let status = ChildGuard::new("voiceagent check", child)
        .wait_timeout(CHECK_TIMEOUT)
        .unwrap();
    let output = std::fs::read_to_string(&log).unwrap();
    assert!(status.success(), "check failed ({status}):\n{output}");
    eprintln!("check behind NAT took {:.1?}", started.elapsed());

    // The router masquerades 10.77.0.2:SIP_PORT to 203.0.113.1, keeping the port (Linux changes
    // it only on a clash, and nothing else is in these namespaces).
    let line = stun_line(&output);
    assert_eq!(
        mapped_address(line, &server),
        format!("{}:{sip_port}", NatNet::PUBLIC_IP),
        "{output}"
    );
    assert!(!line.contains(NatNet::LAN_IP), "{line}");
    assert!(
        output.contains(&format!(
            "listening on UDP {}:{sip_port}",
            NatNet::PUBLIC_IP
        )),
        "the transport advertises the public address:\n{output}"
    );
}
