//! The G.711 side of the load benchmark: one UDP socket per call, symmetric RTP.
//!
//! pjmedia latches onto the source address of the RTP it receives, so a load peer that sends
//! from another port than it advertises loses the far end's audio after ten packets. Each call
//! here therefore owns one socket: its port goes into the SDP (via SIPp's injection file), the
//! peer waits for the answerer's first packet and from then on streams 20 ms packets to that
//! source from the same socket. One sender thread paces all calls on an absolute 20 ms
//! schedule; one receiver thread per call blocks in `recv` so arrival times are exact.
//!
//! Every [`CLICK_EVERY`] packets the payload carries a 5 ms 1 kHz burst at its first sample,
//! everything else is silence; the receiver finds the burst in what comes back and records
//! the round trip (`arrival + offset in packet − send time`: both packets' first samples are
//! 20 ms before their send/arrival instants, so that cancels).

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::g711::Law;
use crate::rtp::RtpPacket;

/// A click every this many packets (1 s): longer than any round trip we expect, so each
/// detected click belongs to the last one sent.
pub const CLICK_EVERY: u64 = 50;
const SAMPLES: usize = 160;
const CLICK_SAMPLES: usize = 40;
const DETECT_LEVEL: i16 = 8000;

/// What one call's receiver saw.
#[derive(Debug, Clone, Default)]
pub struct CallReport {
    /// RTP packets received.
    pub received: u64,
    /// Highest minus lowest (extended) sequence number plus one.
    pub expected: u64,
    /// Longest time between two packets after the first ten (ms).
    pub max_gap_ms: f64,
    /// Round trips of detected clicks (ms).
    pub click_rtt_ms: Vec<f64>,
    /// Packets this call sent.
    pub sent: u64,
}

impl CallReport {
    pub fn lost(&self) -> u64 {
        self.expected.saturating_sub(self.received)
    }
}

struct Shared {
    dest: OnceLock<SocketAddr>,
    /// Nanoseconds since `base` of the last click sent; 0 = none yet.
    last_click_ns: AtomicU64,
    sent: AtomicU64,
}

/// N symmetric G.711 RTP endpoints on 127.0.0.1.
pub struct G711Peer {
    sockets: Vec<UdpSocket>,
    law: Law,
}

/// A running peer; [`RunningPeer::finish`] stops it and collects the reports.
pub struct RunningPeer {
    stop: Arc<AtomicBool>,
    shared: Vec<Arc<Shared>>,
    sender: Option<JoinHandle<()>>,
    receivers: Vec<JoinHandle<CallReport>>,
}

impl G711Peer {
    /// Binds `calls` sockets on 127.0.0.1 (ports chosen by the kernel).
    pub fn bind(calls: usize, law: Law) -> Result<Self> {
        let sockets = (0..calls)
            .map(|_| UdpSocket::bind(("127.0.0.1", 0)).context("binding an RTP socket"))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { sockets, law })
    }

    pub fn ports(&self) -> Result<Vec<u16>> {
        self.sockets
            .iter()
            .map(|s| Ok(s.local_addr()?.port()))
            .collect()
    }

    /// SIPp injection file content: one port per line, used in order.
    pub fn injection_csv(&self) -> Result<String> {
        let mut csv = String::from("SEQUENTIAL\n");
        for p in self.ports()? {
            csv.push_str(&format!("{p};\n"));
        }
        Ok(csv)
    }

    /// Starts sending and receiving; everything stops by itself after `limit`.
    pub fn start(self, limit: Duration) -> Result<RunningPeer> {
        let base = Instant::now();
        let deadline = base + limit;
        let stop = Arc::new(AtomicBool::new(false));
        let law = self.law;
        let mut shared = Vec::new();
        let mut receivers = Vec::new();
        let mut send_sockets = Vec::new();
        for sock in self.sockets {
            sock.set_read_timeout(Some(Duration::from_millis(100)))?;
            let s = Arc::new(Shared {
                dest: OnceLock::new(),
                last_click_ns: AtomicU64::new(0),
                sent: AtomicU64::new(0),
            });
            send_sockets.push((sock.try_clone()?, s.clone()));
            let (s2, stop2) = (s.clone(), stop.clone());
            receivers.push(
                std::thread::Builder::new()
                    .name("g711-rx".into())
                    .stack_size(256 * 1024)
                    .spawn(move || receive(sock, s2, stop2, base, deadline, law))?,
            );
            shared.push(s);
        }
        let stop2 = stop.clone();
        let sender = std::thread::Builder::new()
            .name("g711-tx".into())
            .spawn(move || send_all(send_sockets, stop2, base, deadline, law))?;
        Ok(RunningPeer {
            stop,
            shared,
            sender: Some(sender),
            receivers,
        })
    }
}

impl RunningPeer {
    /// Calls whose answerer has started sending (the peer streams to them).
    pub fn latched(&self) -> usize {
        self.shared
            .iter()
            .filter(|s| s.dest.get().is_some())
            .count()
    }

    /// Stops all threads and returns one report per call.
    pub fn finish(mut self) -> Vec<CallReport> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(s) = self.sender.take() {
            let _ = s.join();
        }
        let mut reports: Vec<CallReport> = self
            .receivers
            .drain(..)
            .map(|r| r.join().unwrap_or_default())
            .collect();
        for (r, s) in reports.iter_mut().zip(&self.shared) {
            r.sent = s.sent.load(Ordering::Relaxed);
        }
        reports
    }
}

impl Drop for RunningPeer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn packet(law: Law, seq: u64, click: bool, ssrc: u32) -> Vec<u8> {
    let mut p = Vec::with_capacity(12 + SAMPLES);
    p.push(0x80);
    p.push(law.payload_type());
    p.extend_from_slice(&(seq as u16).to_be_bytes());
    p.extend_from_slice(&((seq as u32).wrapping_mul(SAMPLES as u32)).to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    for i in 0..SAMPLES {
        let s = if click && i < CLICK_SAMPLES {
            let t = i as f64 / 8000.0;
            (0.7 * 32767.0 * (2.0 * std::f64::consts::PI * 1000.0 * t + 0.5).sin()) as i16
        } else {
            0
        };
        p.push(law.encode(s));
    }
    p
}

fn send_all(
    calls: Vec<(UdpSocket, Arc<Shared>)>,
    stop: Arc<AtomicBool>,
    base: Instant,
    deadline: Instant,
    law: Law,
) {
    // Per call: the tick its stream started at (so clicks fall on its own packet 0, 50, ...).
    let mut started: Vec<Option<u64>> = vec![None; calls.len()];
    let mut tick: u64 = 0;
    while !stop.load(Ordering::Relaxed) {
        let due = base + Duration::from_millis(20 * tick);
        if due >= deadline {
            break;
        }
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        for (i, (sock, shared)) in calls.iter().enumerate() {
            let Some(dest) = shared.dest.get() else {
                continue;
            };
            let first = *started[i].get_or_insert(tick);
            let seq = tick - first;
            let click = seq % CLICK_EVERY == CLICK_EVERY / 2;
            let p = packet(law, seq, click, 0x10ad_0000 | i as u32);
            if click {
                shared
                    .last_click_ns
                    .store(base.elapsed().as_nanos() as u64, Ordering::Relaxed);
            }
            if sock.send_to(&p, dest).is_ok() {
                shared.sent.fetch_add(1, Ordering::Relaxed);
            }
        }
        tick += 1;
    }
}

fn receive(
    sock: UdpSocket,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    base: Instant,
    deadline: Instant,
    law: Law,
) -> CallReport {
    let mut report = CallReport::default();
    let mut buf = [0u8; 2048];
    let (mut first_seq, mut ext, mut last_seq): (Option<i64>, i64, Option<u16>) = (None, 0, None);
    let mut max_ext = 0i64;
    let mut last_arrival: Option<Instant> = None;
    let mut last_detect: Option<Instant> = None;
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        let Ok((n, from)) = sock.recv_from(&mut buf) else {
            continue;
        };
        let at = Instant::now();
        let Some(p) = RtpPacket::parse(&buf[..n], from, at) else {
            continue;
        };
        if p.payload_type != law.payload_type() {
            continue;
        }
        let _ = shared.dest.set(from);
        report.received += 1;
        if let Some(l) = last_seq {
            ext += i64::from(p.seq.wrapping_sub(l) as i16);
        }
        last_seq = Some(p.seq);
        first_seq.get_or_insert(ext);
        max_ext = max_ext.max(ext);
        if let Some(prev) = last_arrival {
            if report.received > 10 {
                report.max_gap_ms = report.max_gap_ms.max((at - prev).as_secs_f64() * 1000.0);
            }
        }
        last_arrival = Some(at);
        // Click detection: the first loud sample, at most once per half click period.
        if last_detect.is_some_and(|t| at - t < Duration::from_millis(500)) {
            continue;
        }
        let loud = p
            .payload
            .iter()
            .position(|&c| law.decode(c).unsigned_abs() > DETECT_LEVEL as u16);
        if let Some(i) = loud {
            last_detect = Some(at);
            let sent_ns = shared.last_click_ns.load(Ordering::Relaxed);
            if sent_ns > 0 {
                let heard_ns = (at - base).as_nanos() as f64 + i as f64 * 125_000.0;
                report.click_rtt_ms.push((heard_ns - sent_ns as f64) / 1e6);
            }
        }
    }
    if let Some(f) = first_seq {
        report.expected = (max_ext - f + 1) as u64;
    }
    report
}

/// Summary over calls: packets received/expected/lost, and click round trips merged.
#[derive(Debug, Clone, Default)]
pub struct PeerSummary {
    pub calls_with_audio: usize,
    pub received: u64,
    pub expected: u64,
    pub lost: u64,
    pub sent: u64,
    pub max_gap_ms: f64,
    pub rtt_ms: Vec<f64>,
}

pub fn summarize(reports: &[CallReport]) -> PeerSummary {
    let mut s = PeerSummary::default();
    for r in reports {
        if r.received > 0 {
            s.calls_with_audio += 1;
        }
        s.received += r.received;
        s.expected += r.expected;
        s.lost += r.lost();
        s.sent += r.sent;
        s.max_gap_ms = s.max_gap_ms.max(r.max_gap_ms);
        s.rtt_ms.extend(&r.click_rtt_ms);
    }
    s.rtt_ms.sort_by(f64::total_cmp);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_loopback_echo_returns_every_packet_and_its_clicks() {
        // An echo that reflects every packet at once: nothing lost, round trips tiny.
        let peer = G711Peer::bind(1, Law::A).unwrap();
        let port = peer.ports().unwrap()[0];
        let echo = UdpSocket::bind("127.0.0.1:0").unwrap();
        echo.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let kick = echo.try_clone().unwrap();
        let reflector = std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while !stop2.load(Ordering::Relaxed) {
                if let Ok((n, from)) = echo.recv_from(&mut buf) {
                    let _ = echo.send_to(&buf[..n], from);
                }
            }
        });
        let running = peer.start(Duration::from_millis(2500)).unwrap();
        // The answerer speaks first (the peer latches onto it).
        kick.send_to(&packet(Law::A, 0, false, 1), ("127.0.0.1", port))
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline && running.latched() == 0 {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(running.latched(), 1);
        std::thread::sleep(Duration::from_millis(2200));
        let reports = running.finish();
        stop.store(true, Ordering::Relaxed);
        reflector.join().unwrap();
        let s = summarize(&reports);
        assert!(s.sent >= 90, "sent {}", s.sent);
        assert!(s.received + 2 >= s.sent, "{s:?}");
        assert!(!s.rtt_ms.is_empty(), "no click came back: {s:?}");
        assert!(s.rtt_ms.iter().all(|&r| (0.0..10.0).contains(&r)), "{s:?}");
    }
}
