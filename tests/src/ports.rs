//! Free ports on 127.0.0.1, never fixed numbers.
//!
//! Peers such as baresip and SIPp want a port number on their command line, so
//! "bind port 0" cannot be used directly: we ask the kernel for a free port,
//! release it, and hand the number over. Two things keep this from racing with
//! the other tests of the same binary: every number handed out is remembered
//! and never handed out twice, and RTP ranges are checked port by port.
//! (Another process can still grab a port in between; peers then fail to bind
//! loudly, which is a visible, rare failure rather than a silent one.)

use std::collections::BTreeSet;
use std::net::{TcpListener, UdpSocket};
use std::sync::Mutex;

use anyhow::{bail, Result};

static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

fn reserve(ports: &[u16]) -> bool {
    let mut set = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    if ports.iter().any(|p| set.contains(p)) {
        return false;
    }
    set.extend(ports.iter().copied());
    true
}

fn udp_free(port: u16) -> bool {
    UdpSocket::bind(("127.0.0.1", port)).is_ok()
}

fn tcp_free(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
}

fn kernel_port() -> Result<u16> {
    Ok(UdpSocket::bind(("127.0.0.1", 0))?.local_addr()?.port())
}

/// A port free for both UDP and TCP (SIP listens on both).
pub fn sip_port() -> Result<u16> {
    for _ in 0..200 {
        let p = kernel_port()?;
        if tcp_free(p) && udp_free(p) && reserve(&[p]) {
            return Ok(p);
        }
    }
    bail!("no free UDP+TCP port found on 127.0.0.1")
}

/// A free TCP port (control sockets).
pub fn tcp_port() -> Result<u16> {
    for _ in 0..200 {
        let p = TcpListener::bind(("127.0.0.1", 0))?.local_addr()?.port();
        if reserve(&[p]) {
            return Ok(p);
        }
    }
    bail!("no free TCP port found on 127.0.0.1")
}

/// A free UDP port.
pub fn udp_port() -> Result<u16> {
    for _ in 0..200 {
        let p = kernel_port()?;
        if reserve(&[p]) {
            return Ok(p);
        }
    }
    bail!("no free UDP port found on 127.0.0.1")
}

/// The even first port of `len` consecutive free UDP ports (RTP wants an even
/// RTP port with RTCP on the next one). `len` is rounded up to even.
pub fn rtp_range(len: u16) -> Result<u16> {
    let len = len.max(2).next_multiple_of(2);
    for _ in 0..500 {
        let base = kernel_port()? & !1;
        if base < 1024 || base.checked_add(len).is_none() {
            continue;
        }
        let ports: Vec<u16> = (base..base + len).collect();
        if ports.iter().all(|&p| udp_free(p)) && reserve(&ports) {
            return Ok(base);
        }
    }
    bail!("no free range of {len} UDP ports found on 127.0.0.1")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_distinct_and_ranges_even() {
        let a = sip_port().unwrap();
        let b = sip_port().unwrap();
        assert_ne!(a, b);
        let r = rtp_range(6).unwrap();
        assert_eq!(r % 2, 0);
        let r2 = rtp_range(6).unwrap();
        assert!(r2 >= r + 6 || r2 + 6 <= r, "ranges overlap: {r} {r2}");
        assert!(UdpSocket::bind(("127.0.0.1", r)).is_ok());
    }
}
