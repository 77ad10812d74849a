//! Who may start a call: the decision on every new INVITE, before any application work.
//!
//! Each admitted INVITE costs the operator (a Realtime session opens while it rings), so the
//! engine decides at the SIP edge, in this order: shutting down (503), source not allowed (403),
//! the source's INVITE rate exceeded (503), the call cap reached (486). The source rules:
//!
//! - `allowed_sources` (configured networks) are always allowed;
//! - in trunk mode with `trunk_sources_only` (the default), otherwise only the trunk's own
//!   addresses (its registrar and proxy host names, resolved at start and refreshed), so an
//!   INVITE sent straight to our public address by anyone else is refused;
//! - in IP mode with no allowlist, everyone (the service warns about that at start-up).
//!
//! The per-source token bucket limits new INVITEs from any one address; trunk addresses are
//! exempt (they legitimately carry every call). The table of buckets is bounded, so a spoofed
//! flood from many addresses cannot grow memory.
//!
//! Pure: it takes the time and the counts, holds no socket and no clock.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use ipnet::IpNet;

use crate::event::RejectReason;

/// New INVITEs one source address may send: `burst` at once, then `per_second` on average.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InviteRate {
    pub per_second: f64,
    pub burst: u32,
}

/// The admission policy (part of [`crate::EngineConfig`]).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AdmissionConfig {
    /// Networks always allowed to send INVITEs; with an empty list, IP mode admits everyone.
    pub allowed_sources: Vec<IpNet>,
    /// In trunk mode, refuse INVITEs from addresses that are neither the trunk's nor in
    /// `allowed_sources`.
    pub trunk_sources_only: bool,
    /// Per-source INVITE rate; `None` = unlimited.
    pub invite_rate: Option<InviteRate>,
}

/// How many source buckets are kept at most.
const MAX_BUCKETS: usize = 4096;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// The decision state: policy, the trunk's current addresses and the rate buckets.
#[derive(Debug)]
pub(crate) struct Admission {
    config: AdmissionConfig,
    trunk_mode: bool,
    trunk_addresses: Vec<IpAddr>,
    buckets: HashMap<IpAddr, Bucket>,
}

/// Normalises IPv4-mapped IPv6 addresses, so `::ffff:192.0.2.1` matches `192.0.2.0/24`.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

impl Admission {
    pub(crate) fn new(config: AdmissionConfig, trunk_mode: bool) -> Self {
        Self {
            config,
            trunk_mode,
            trunk_addresses: Vec::new(),
            buckets: HashMap::new(),
        }
    }

    /// The trunk's addresses as last resolved (replaces the previous set).
    pub(crate) fn set_trunk_addresses(&mut self, mut addresses: Vec<IpAddr>) {
        addresses.iter_mut().for_each(|a| *a = canonical(*a));
        addresses.sort();
        addresses.dedup();
        self.trunk_addresses = addresses;
    }

    pub(crate) fn trunk_addresses(&self) -> &[IpAddr] {
        &self.trunk_addresses
    }

    /// Whether `ip` is one of the trunk's addresses (trunk mode only).
    pub(crate) fn is_trunk(&self, ip: IpAddr) -> bool {
        self.trunk_mode && self.trunk_addresses.contains(&canonical(ip))
    }

    fn source_allowed(&self, ip: Option<IpAddr>) -> bool {
        let listed = |ip: IpAddr| self.config.allowed_sources.iter().any(|n| n.contains(&ip));
        match ip {
            Some(ip) if listed(ip) || self.is_trunk(ip) => true,
            _ if self.trunk_mode && self.config.trunk_sources_only => false,
            _ => self.config.allowed_sources.is_empty(),
        }
    }

    /// Takes one token from `ip`'s bucket; `false` when it is empty.
    fn take_token(&mut self, ip: IpAddr, rate: InviteRate, now: Instant) -> bool {
        if !self.buckets.contains_key(&ip) && self.buckets.len() >= MAX_BUCKETS {
            // Forget the sources that have refilled completely: they are indistinguishable from
            // new ones. If every bucket is still in use, the newcomer is refused this time.
            let full = f64::from(rate.burst);
            self.buckets.retain(|_, b| {
                let refill = now.saturating_duration_since(b.at).as_secs_f64() * rate.per_second;
                b.tokens + refill < full
            });
            if self.buckets.len() >= MAX_BUCKETS {
                return false;
            }
        }
        let burst = f64::from(rate.burst.max(1));
        let bucket = self.buckets.entry(ip).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate.per_second).min(burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// The verdict on a new INVITE from `source`, with `active` calls already in the table.
    pub(crate) fn decide(
        &mut self,
        source: Option<IpAddr>,
        active: u32,
        max_calls: u32,
        accepting: bool,
        now: Instant,
    ) -> Result<(), RejectReason> {
        let ip = source.map(canonical);
        if !accepting {
            return Err(RejectReason::ShuttingDown);
        }
        if !self.source_allowed(ip) {
            return Err(RejectReason::NotAllowed);
        }
        if let (Some(ip), Some(rate)) = (ip, self.config.invite_rate) {
            if !self.is_trunk(ip) && !self.take_token(ip, rate, now) {
                return Err(RejectReason::RateLimited);
            }
        }
        if active >= max_calls {
            return Err(RejectReason::Busy);
        }
        Ok(())
    }

    /// How many sources are tracked (bounded by [`MAX_BUCKETS`]).
    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.buckets.len()
    }
}

/// The SIP final response for a refusal.
pub(crate) fn refusal_code(reason: RejectReason) -> u16 {
    match reason {
        RejectReason::NotAllowed => 403,
        RejectReason::Busy => 486,
        RejectReason::ShuttingDown | RejectReason::RateLimited => 503,
    }
}

/// How often the trunk's host names are resolved again.
pub(crate) const TRUNK_REFRESH: Duration = Duration::from_secs(300);

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    fn policy(allowed: &[&str], trunk_only: bool, rate: Option<InviteRate>) -> AdmissionConfig {
        AdmissionConfig {
            allowed_sources: allowed.iter().map(|n| n.parse().unwrap()).collect(),
            trunk_sources_only: trunk_only,
            invite_rate: rate,
        }
    }

    #[test]
    fn ip_mode_without_allowlist_admits_everyone_and_respects_the_cap() {
        let mut a = Admission::new(policy(&[], true, None), false);
        let now = Instant::now();
        assert_eq!(a.decide(ip("198.51.100.7"), 0, 2, true, now), Ok(()));
        assert_eq!(a.decide(None, 1, 2, true, now), Ok(()));
        assert_eq!(
            a.decide(ip("198.51.100.7"), 2, 2, true, now),
            Err(RejectReason::Busy)
        );
        assert_eq!(
            a.decide(ip("198.51.100.7"), 0, 2, false, now),
            Err(RejectReason::ShuttingDown)
        );
    }

    #[test]
    fn an_allowlist_admits_members_only_including_mapped_ipv6() {
        let mut a = Admission::new(policy(&["10.0.0.0/8"], true, None), false);
        let now = Instant::now();
        assert_eq!(a.decide(ip("10.1.2.3"), 0, 9, true, now), Ok(()));
        assert_eq!(a.decide(ip("::ffff:10.1.2.3"), 0, 9, true, now), Ok(()));
        assert_eq!(
            a.decide(ip("192.0.2.1"), 0, 9, true, now),
            Err(RejectReason::NotAllowed)
        );
        assert_eq!(
            a.decide(None, 0, 9, true, now),
            Err(RejectReason::NotAllowed),
            "an unknown source is not a member"
        );
    }

    #[test]
    fn trunk_mode_admits_the_trunk_and_the_allowlist_only() {
        let mut a = Admission::new(policy(&["203.0.113.0/24"], true, None), true);
        let now = Instant::now();
        assert_eq!(
            a.decide(ip("217.10.79.9"), 0, 9, true, now),
            Err(RejectReason::NotAllowed),
            "nothing is admitted before the trunk is resolved, but the allowlist"
        );
        assert_eq!(a.decide(ip("203.0.113.5"), 0, 9, true, now), Ok(()));
        a.set_trunk_addresses(vec!["217.10.79.9".parse().unwrap()]);
        assert_eq!(a.decide(ip("217.10.79.9"), 0, 9, true, now), Ok(()));
        assert_eq!(
            a.decide(ip("198.51.100.1"), 0, 9, true, now),
            Err(RejectReason::NotAllowed)
        );
        // The trunk moved: its old address is a stranger now.
        a.set_trunk_addresses(vec!["217.10.79.10".parse().unwrap()]);
        assert_eq!(
            a.decide(ip("217.10.79.9"), 0, 9, true, now),
            Err(RejectReason::NotAllowed)
        );
    }

    #[test]
    fn trunk_mode_can_be_opened_up() {
        let mut a = Admission::new(policy(&[], false, None), true);
        assert_eq!(
            a.decide(ip("198.51.100.1"), 0, 9, true, Instant::now()),
            Ok(())
        );
    }

    #[test]
    fn the_rate_limit_takes_a_burst_then_refills_per_source() {
        let rate = InviteRate {
            per_second: 2.0,
            burst: 3,
        };
        let mut a = Admission::new(policy(&[], true, Some(rate)), false);
        let t0 = Instant::now();
        let flood = ip("198.51.100.66");
        let admitted = (0..500)
            .filter(|_| a.decide(flood, 0, 500, true, t0).is_ok())
            .count();
        assert_eq!(admitted, 3);
        assert_eq!(
            a.decide(flood, 0, 500, true, t0),
            Err(RejectReason::RateLimited)
        );
        assert_eq!(
            a.decide(ip("192.0.2.10"), 0, 500, true, t0),
            Ok(()),
            "another source has its own bucket"
        );
        assert_eq!(
            a.decide(flood, 0, 500, true, t0 + Duration::from_millis(500)),
            Ok(()),
            "one token back after half a second"
        );
        assert_eq!(
            a.decide(flood, 0, 500, true, t0 + Duration::from_millis(500)),
            Err(RejectReason::RateLimited)
        );
    }

    #[test]
    fn the_trunk_is_exempt_from_the_rate_limit() {
        let rate = InviteRate {
            per_second: 1.0,
            burst: 1,
        };
        let mut a = Admission::new(policy(&[], true, Some(rate)), true);
        a.set_trunk_addresses(vec!["217.10.79.9".parse().unwrap()]);
        let now = Instant::now();
        for _ in 0..100 {
            assert_eq!(a.decide(ip("217.10.79.9"), 0, 500, true, now), Ok(()));
        }
    }

    #[test]
    fn the_bucket_table_stays_bounded_under_a_spoofed_flood() {
        let rate = InviteRate {
            per_second: 0.1,
            burst: 2,
        };
        let mut a = Admission::new(policy(&[], true, Some(rate)), false);
        let now = Instant::now();
        for i in 0..(MAX_BUCKETS as u32 * 3) {
            let ip = IpAddr::from((0x0a00_0000u32 + i).to_be_bytes());
            let _ = a.decide(Some(ip), 0, 500, true, now);
        }
        assert!(a.tracked() <= MAX_BUCKETS, "{} buckets", a.tracked());
    }

    #[test]
    fn refusal_codes() {
        assert_eq!(refusal_code(RejectReason::NotAllowed), 403);
        assert_eq!(refusal_code(RejectReason::Busy), 486);
        assert_eq!(refusal_code(RejectReason::RateLimited), 503);
        assert_eq!(refusal_code(RejectReason::ShuttingDown), 503);
    }
}
