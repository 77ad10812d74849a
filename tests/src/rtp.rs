//! A UDP socket that captures RTP, for peers that cannot record (SIPp).
//!
//! The harness puts this socket's port in the SDP it makes SIPp send, so the
//! far end streams its audio here. A background thread stores every packet
//! until [`RtpListener::finish`]; decoding to PCM is done afterwards, ordered
//! by sequence number, so the receive thread does nothing but `recv`.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

use crate::audio::Audio;
use crate::g711::Law;

/// One received RTP packet (header fields we use, plus payload).
#[derive(Clone, Debug)]
pub struct RtpPacket {
    pub payload_type: u8,
    pub marker: bool,
    pub seq: u16,
    pub timestamp: u32,
    pub ssrc: u32,
    pub payload: Vec<u8>,
    pub from: SocketAddr,
    pub at: Instant,
}

impl RtpPacket {
    /// Parses an RTP packet (RFC 3550); `None` for anything that is not RTP v2
    /// (RTCP on the same port is skipped by payload type 72..=76 after masking).
    pub fn parse(buf: &[u8], from: SocketAddr, at: Instant) -> Option<Self> {
        if buf.len() < 12 || buf[0] >> 6 != 2 {
            return None;
        }
        let pt = buf[1] & 0x7f;
        if (72..=76).contains(&pt) {
            return None;
        }
        let cc = usize::from(buf[0] & 0x0f);
        let mut off = 12 + 4 * cc;
        if buf[0] & 0x10 != 0 {
            let ext = buf.get(off + 2..off + 4)?;
            off += 4 + 4 * usize::from(u16::from_be_bytes([ext[0], ext[1]]));
        }
        let mut end = buf.len();
        if buf[0] & 0x20 != 0 {
            end = end.checked_sub(usize::from(*buf.last()?))?;
        }
        if off > end {
            return None;
        }
        Some(Self {
            payload_type: pt,
            marker: buf[1] & 0x80 != 0,
            seq: u16::from_be_bytes([buf[2], buf[3]]),
            timestamp: u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]),
            ssrc: u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]),
            payload: buf[off..end].to_vec(),
            from,
            at,
        })
    }
}

/// Captures RTP on an even port of 127.0.0.1 until finished.
pub struct RtpListener {
    port: u16,
    /// A clone of the capturing socket, for sending from the advertised port.
    sender: UdpSocket,
    stop: Arc<AtomicBool>,
    count: Arc<AtomicUsize>,
    thread: Option<JoinHandle<Vec<RtpPacket>>>,
}

impl RtpListener {
    /// Binds an even port (RTP convention) chosen by the kernel.
    pub fn bind() -> Result<Self> {
        for _ in 0..100 {
            let sock = UdpSocket::bind(("127.0.0.1", 0))?;
            let port = sock.local_addr()?.port();
            if port % 2 != 0 {
                continue;
            }
            sock.set_read_timeout(Some(Duration::from_millis(50)))?;
            let sender = sock.try_clone()?;
            let stop = Arc::new(AtomicBool::new(false));
            let stop2 = stop.clone();
            let count = Arc::new(AtomicUsize::new(0));
            let count2 = count.clone();
            let thread = std::thread::Builder::new()
                .name(format!("rtp-listen-{port}"))
                .spawn(move || {
                    let mut packets = Vec::new();
                    let mut buf = [0u8; 2048];
                    while !stop2.load(Ordering::Relaxed) {
                        if let Ok((n, from)) = sock.recv_from(&mut buf) {
                            if let Some(p) = RtpPacket::parse(&buf[..n], from, Instant::now()) {
                                packets.push(p);
                                count2.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                    packets
                })
                .context("spawning the RTP listener thread")?;
            return Ok(Self {
                port,
                sender,
                stop,
                count,
                thread: Some(thread),
            });
        }
        bail!("could not bind an even UDP port on 127.0.0.1")
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Sends `payload` (raw G.711 bytes, 8 kHz) to `dest` as 20 ms RTP packets paced in real
    /// time, from this listener's own socket: the peer sees RTP come from the port the SDP
    /// advertised, as from a real phone, so symmetric-RTP latching keeps sending here.
    pub fn stream_g711(
        &self,
        dest: SocketAddr,
        payload: Vec<u8>,
        pt: u8,
    ) -> Result<JoinHandle<()>> {
        self.stream_g711_with_dtmf(dest, payload, pt, Vec::new())
    }

    /// Like [`RtpListener::stream_g711`], but digits are sent as RFC 4733 telephone events
    /// (payload type `event_pt` of each [`DtmfDigit`]) in place of the audio packets they
    /// overlap, within the same RTP stream (SSRC, sequence numbers), as phones do.
    pub fn stream_g711_with_dtmf(
        &self,
        dest: SocketAddr,
        payload: Vec<u8>,
        pt: u8,
        digits: Vec<DtmfDigit>,
    ) -> Result<JoinHandle<()>> {
        for d in &digits {
            if dtmf_event_code(d.digit).is_none() {
                bail!("{:?} is not a DTMF digit (0-9, *, #, A-D)", d.digit);
            }
        }
        let sock = self.sender.try_clone()?;
        let handle = std::thread::Builder::new()
            .name(format!("rtp-send-{}", self.port))
            .spawn(move || {
                let start = Instant::now();
                let ssrc = 0x5eed_0000 | u32::from(dest.port());
                let mut seq: u16 = 0;
                let mut send = |marker: bool, pt: u8, ts: u32, body: &[u8]| {
                    let mut packet = Vec::with_capacity(12 + body.len());
                    packet.push(0x80);
                    packet.push(if marker { 0x80 | pt } else { pt });
                    packet.extend_from_slice(&seq.to_be_bytes());
                    packet.extend_from_slice(&ts.to_be_bytes());
                    packet.extend_from_slice(&ssrc.to_be_bytes());
                    packet.extend_from_slice(body);
                    let _ = sock.send_to(&packet, dest);
                    seq = seq.wrapping_add(1);
                };
                for (i, chunk) in payload.chunks(160).enumerate() {
                    let due = start + Duration::from_millis(20 * i as u64);
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                    let slot = i as u64;
                    let event = digits.iter().find_map(|d| {
                        let first = d.at.as_millis() as u64 / 20;
                        let last = first + (d.length.as_millis() as u64 / 20).max(1) - 1;
                        (first..=last)
                            .contains(&slot)
                            .then_some((d, first, slot == last))
                    });
                    match event {
                        Some((d, first, is_last)) => {
                            let code = dtmf_event_code(d.digit).unwrap_or(0);
                            let ts = (first * 160) as u32;
                            let duration = ((slot - first + 1) * 160) as u16;
                            // Volume 10 (-10 dBm0); the end bit on the final packet, sent
                            // three times as RFC 4733 recommends.
                            let body = |end: bool| {
                                let flags = if end { 0x80 | 10 } else { 10 };
                                let [hi, lo] = duration.to_be_bytes();
                                [code, flags, hi, lo]
                            };
                            send(slot == first, d.event_pt, ts, &body(false));
                            if is_last {
                                for _ in 0..3 {
                                    send(false, d.event_pt, ts, &body(true));
                                }
                            }
                        }
                        None => send(i == 0, pt, (i * 160) as u32, chunk),
                    }
                }
            })
            .context("spawning the RTP sender thread")?;
        Ok(handle)
    }

    /// Like [`RtpListener::stream_g711`], but the thread returns the time each packet was
    /// handed to the socket (index `i` carries `payload[160 * i..160 * (i + 1)]`), for
    /// benchmarks that time what happens after a given packet left.
    pub fn stream_g711_timed(
        &self,
        dest: SocketAddr,
        payload: Vec<u8>,
        pt: u8,
    ) -> Result<JoinHandle<Vec<Instant>>> {
        let sock = self.sender.try_clone()?;
        let handle = std::thread::Builder::new()
            .name(format!("rtp-send-{}", self.port))
            .spawn(move || {
                let start = Instant::now();
                let ssrc = 0x5eed_0000 | u32::from(dest.port());
                let mut sent = Vec::with_capacity(payload.len().div_ceil(160));
                let mut packet = Vec::with_capacity(12 + 160);
                for (i, chunk) in payload.chunks(160).enumerate() {
                    let due = start + Duration::from_millis(20 * i as u64);
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                    packet.clear();
                    packet.push(0x80);
                    packet.push(if i == 0 { 0x80 | pt } else { pt });
                    packet.extend_from_slice(&(i as u16).to_be_bytes());
                    packet.extend_from_slice(&((i * 160) as u32).to_be_bytes());
                    packet.extend_from_slice(&ssrc.to_be_bytes());
                    packet.extend_from_slice(chunk);
                    sent.push(Instant::now());
                    let _ = sock.send_to(&packet, dest);
                }
                sent
            })
            .context("spawning the RTP sender thread")?;
        Ok(handle)
    }

    /// RTP packets captured so far.
    pub fn packets_received(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    /// Waits until at least `n` packets arrived; fails after `timeout`.
    pub fn wait_for_packets(&self, n: usize, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        while self.packets_received() < n {
            if Instant::now() >= deadline {
                bail!(
                    "only {} of {n} RTP packets arrived on port {} within {timeout:?}",
                    self.packets_received(),
                    self.port
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }

    /// Stops capturing and returns the packets in arrival order.
    pub fn finish(mut self) -> Result<Vec<RtpPacket>> {
        self.stop_thread()
    }

    fn stop_thread(&mut self) -> Result<Vec<RtpPacket>> {
        self.stop.store(true, Ordering::Relaxed);
        match self.thread.take() {
            Some(t) => t
                .join()
                .map_err(|_| anyhow!("the RTP listener thread panicked")),
            None => Ok(Vec::new()),
        }
    }
}

impl Drop for RtpListener {
    fn drop(&mut self) {
        let _ = self.stop_thread();
    }
}

/// A DTMF digit to send as RFC 4733 telephone events.
#[derive(Clone, Debug)]
pub struct DtmfDigit {
    /// `0`-`9`, `*`, `#` or `A`-`D`.
    pub digit: char,
    /// When the key goes down, from the start of the stream (rounded down to 20 ms).
    pub at: Duration,
    /// How long it is held (rounded down to 20 ms, at least one packet).
    pub length: Duration,
    /// The telephone-event payload type the SDP negotiated (often 101).
    pub event_pt: u8,
}

/// The RFC 4733 event code of a DTMF digit.
pub fn dtmf_event_code(digit: char) -> Option<u8> {
    match digit {
        '0'..='9' => Some(digit as u8 - b'0'),
        '*' => Some(10),
        '#' => Some(11),
        'A'..='D' => Some(digit as u8 - b'A' + 12),
        _ => None,
    }
}

/// Decodes the G.711 packets of the first SSRC with payload type
/// `law.payload_type()`, ordered by (unwrapped) sequence number; a lost packet
/// becomes 20 ms of silence so timing is kept.
pub fn decode_g711(packets: &[RtpPacket], law: Law) -> Audio {
    let pt = law.payload_type();
    let Some(ssrc) = packets
        .iter()
        .find(|p| p.payload_type == pt)
        .map(|p| p.ssrc)
    else {
        return Audio::new(8000, Vec::new());
    };
    let mut seqs: Vec<(i64, &RtpPacket)> = Vec::new();
    let mut ext: i64 = 0;
    let mut last: Option<u16> = None;
    for p in packets
        .iter()
        .filter(|p| p.payload_type == pt && p.ssrc == ssrc)
    {
        if let Some(l) = last {
            ext += i64::from(p.seq.wrapping_sub(l) as i16);
        }
        last = Some(p.seq);
        seqs.push((ext, p));
    }
    seqs.sort_by_key(|(s, _)| *s);
    seqs.dedup_by_key(|(s, _)| *s);
    let mut pcm = Vec::new();
    let mut prev: Option<i64> = None;
    for (s, p) in seqs {
        if let Some(prev) = prev {
            for _ in 1..(s - prev).min(50) {
                pcm.extend(std::iter::repeat_n(0i16, p.payload.len()));
            }
        }
        prev = Some(s);
        pcm.extend(law.decode_all(&p.payload));
    }
    Audio::from_i16(8000, &pcm)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(seq: u16, pt: u8, payload: &[u8]) -> Vec<u8> {
        let mut b = vec![0x80, pt, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7];
        b[2..4].copy_from_slice(&seq.to_be_bytes());
        b.extend_from_slice(payload);
        b
    }

    #[test]
    fn listener_captures_and_decodes_in_sequence_order() {
        let l = RtpListener::bind().unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = ("127.0.0.1", l.port());
        let a = [Law::A.encode(1000); 160];
        let b = [Law::A.encode(-1000); 160];
        tx.send_to(&packet(65535, 8, &a), to).unwrap();
        tx.send_to(&packet(1, 8, &b), to).unwrap(); // seq 0 lost, arrives out of order
        tx.send_to(&packet(0xffff, 0, &a), to).unwrap(); // other payload type: ignored
        tx.send_to(b"garbage", to).unwrap();
        l.wait_for_packets(3, Duration::from_secs(2)).unwrap();
        let pkts = l.finish().unwrap();
        assert_eq!(pkts.len(), 3, "garbage must be dropped");
        let audio = decode_g711(&pkts, Law::A);
        assert_eq!(audio.samples.len(), 480, "two packets plus one lost");
        assert!(audio.samples[0] > 0.0 && audio.samples[200] == 0.0 && audio.samples[400] < 0.0);
    }

    #[test]
    fn timed_stream_reports_one_send_time_per_packet() {
        let rx = RtpListener::bind().unwrap();
        let tx = RtpListener::bind().unwrap();
        let dest = SocketAddr::from(([127, 0, 0, 1], rx.port()));
        let times = tx
            .stream_g711_timed(dest, vec![Law::A.encode(0); 160 * 3 + 80], 8)
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(times.len(), 4, "three full packets and a short last one");
        let span = times[3].duration_since(times[0]);
        assert!(
            span >= Duration::from_millis(60),
            "paced at 20 ms: {span:?}"
        );
        rx.wait_for_packets(4, Duration::from_secs(2)).unwrap();
        let pkts = rx.finish().unwrap();
        assert_eq!(pkts.iter().map(|p| p.seq).collect::<Vec<_>>(), [0, 1, 2, 3]);
        assert!(pkts.iter().zip(&times).all(|(p, t)| p.at >= *t));
        assert_eq!(pkts[3].payload.len(), 80);
    }

    #[test]
    fn parse_rejects_short_and_non_rtp() {
        let from: SocketAddr = "127.0.0.1:1".parse().unwrap();
        assert!(RtpPacket::parse(&[0x80, 8, 0], from, Instant::now()).is_none());
        assert!(RtpPacket::parse(&[0u8; 20], from, Instant::now()).is_none());
        let mut padded = packet(1, 8, &[1, 2, 3, 4]);
        padded[0] |= 0x20;
        padded.push(0);
        padded.push(2);
        assert_eq!(
            RtpPacket::parse(&padded, from, Instant::now())
                .unwrap()
                .payload,
            vec![1, 2, 3, 4]
        );
    }
}
