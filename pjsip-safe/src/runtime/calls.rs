//! The call table: which pjsua calls are ours, who may call in, when ringing calls are answered,
//! and what to do with calls PJSIP holds that the engine never admitted.
//!
//! Policy lives here without pjsua: every decision is a plain function of the table, the
//! configuration and the time, so it is unit-tested below. The loop (`mod.rs`) carries the
//! decisions out (sends the 403/486/503, hangs up, emits events).

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroUsize;
use std::time::Instant;

use pjsip_sys as sys;

use crate::callbacks;
use crate::config::EngineConfig;
use crate::error::{Error, Result};
use crate::event::{CallId, CallMedia, CallState, Direction, RejectReason};
use crate::media::{downlink_channel, tap_channel, uplink_channel, DownlinkRt, TapRt, UplinkRt};
use crate::port::PortHandle;

/// The real-time halves of a call's queues, until its media port exists.
pub(super) type RtHalves = (UplinkRt, DownlinkRt, Option<TapRt>);

pub(super) struct CallRecord {
    pub(super) id: CallId,
    pub(super) direction: Direction,
    /// The RT halves wait here until media is active and the port is created.
    pub(super) pending_rt: Option<RtHalves>,
    /// The application's halves, handed over with the first `MediaActive`.
    pub(super) pending_api: Option<CallMedia>,
    pub(super) port: Option<PortHandle>,
    /// The call's stream slot our port is connected to.
    pub(super) connected_to: Option<sys::pjsua_conf_port_id>,
    /// When a ringing call is to be answered (`AnswerMode::AfterRing`).
    pub(super) answer_at: Option<Instant>,
    pub(super) warned_high_water: bool,
}

/// What to do with a state change of a pjsua call the table does not hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum UnknownCall {
    /// Nothing: a call we refused, or one whose `on_incoming_call` record is still queued.
    Ignore,
    /// A call PJSIP created on its own (e.g. by following a REFER or a Replaces the edge filter
    /// should have stopped): it could spend the trunk's money unseen, so hang it up at once and
    /// log a security event.
    HangUp,
}

/// The engine's calls, keyed by pjsua call index, and the admission state.
pub(super) struct CallTable {
    records: HashMap<sys::pjsua_call_id, CallRecord>,
    next_id: u64,
    /// Cleared at shutdown: new INVITEs get 503, `make_call` fails.
    accepting: bool,
    /// pjsua calls we refused or hung up as unknown, until they are disconnected.
    refused: HashSet<sys::pjsua_call_id>,
    /// Calls PJSIP created that the engine never started or accepted.
    unknown_calls_hung_up: u64,
}

impl CallTable {
    pub(super) fn new() -> Self {
        Self {
            records: HashMap::new(),
            next_id: 1,
            accepting: true,
            refused: HashSet::new(),
            unknown_calls_hung_up: 0,
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    pub(super) fn stop_accepting(&mut self) {
        self.accepting = false;
    }

    pub(super) fn get(&self, idx: sys::pjsua_call_id) -> Option<&CallRecord> {
        self.records.get(&idx)
    }

    pub(super) fn get_mut(&mut self, idx: sys::pjsua_call_id) -> Option<&mut CallRecord> {
        self.records.get_mut(&idx)
    }

    pub(super) fn records_mut(&mut self) -> impl Iterator<Item = &mut CallRecord> {
        self.records.values_mut()
    }

    /// The pjsua index of one of our calls.
    pub(super) fn index_of(&self, call: CallId) -> Result<sys::pjsua_call_id> {
        self.records
            .iter()
            .find(|(_, r)| r.id == call)
            .map(|(&idx, _)| idx)
            .ok_or(Error::NoSuchCall(call))
    }

    /// Whether an incoming INVITE from `source` is admitted, with `active` calls of ours
    /// (not counting this one); `Some(reason)` refuses it.
    pub(super) fn admission(
        &self,
        config: &EngineConfig,
        source: Option<SocketAddr>,
    ) -> Option<RejectReason> {
        admission(self.accepting, config, source, self.records.len() as u32)
    }

    /// Whether we may place a call now.
    pub(super) fn admit_outgoing(&self, max_calls: u32) -> Result<()> {
        if !self.accepting {
            return Err(Error::Stopped);
        }
        // Our calls only: INVITEs being refused also hold a pjsua call slot for a moment.
        if self.records.len() as u32 >= max_calls {
            return Err(Error::TooManyCalls(max_calls));
        }
        Ok(())
    }

    /// Remembers a refused call until pjsua reports it disconnected.
    pub(super) fn refuse(&mut self, idx: sys::pjsua_call_id) {
        self.refused.insert(idx);
    }

    /// Adds a call with fresh media queues; the application's halves wait in the record until
    /// media is active.
    pub(super) fn insert(
        &mut self,
        idx: sys::pjsua_call_id,
        direction: Direction,
        config: &EngineConfig,
    ) -> CallId {
        let id = CallId(self.next_id);
        self.next_id += 1;
        let frames = NonZeroUsize::new(config.queue_frames).unwrap_or(NonZeroUsize::MIN);
        let (up_rt, up_api) = uplink_channel(frames);
        let (down_rt, down_api) = downlink_channel(frames);
        let (tap_rt, tap) = match config.record_calls {
            true => {
                let (rt, tap) = tap_channel();
                (Some(rt), Some(tap))
            }
            false => (None, None),
        };
        callbacks::set_call_id(idx, Some(id));
        self.records.insert(
            idx,
            CallRecord {
                id,
                direction,
                pending_rt: Some((up_rt, down_rt, tap_rt)),
                pending_api: Some(CallMedia {
                    uplink: up_api,
                    downlink: down_api,
                    recording: tap,
                }),
                port: None,
                connected_to: None,
                answer_at: None,
                warned_high_water: false,
            },
        );
        id
    }

    /// Removes a call (disconnected, or at shutdown); DTMF for its index stops here.
    pub(super) fn remove(&mut self, idx: sys::pjsua_call_id) -> Option<CallRecord> {
        callbacks::set_call_id(idx, None);
        self.records.remove(&idx)
    }

    /// Removes every call.
    pub(super) fn drain(&mut self) -> Vec<CallRecord> {
        let indices: Vec<_> = self.records.keys().copied().collect();
        indices.into_iter().filter_map(|i| self.remove(i)).collect()
    }

    /// Calls whose ring delay is over at `now`.
    pub(super) fn due_answers(&self, now: Instant) -> Vec<CallId> {
        self.records
            .values()
            .filter(|r| r.answer_at.is_some_and(|t| t <= now))
            .map(|r| r.id)
            .collect()
    }

    /// The rule for a state change of a call the table does not hold: forget a refused call
    /// once disconnected; ignore a refused one and one whose incoming record is still queued;
    /// hang up anything else, once (it is remembered as refused) and count it.
    pub(super) fn unknown_call_state(
        &mut self,
        idx: sys::pjsua_call_id,
        state: sys::pjsip_inv_state,
    ) -> UnknownCall {
        if state == sys::PJSIP_INV_STATE_DISCONNECTED {
            self.refused.remove(&idx);
            return UnknownCall::Ignore;
        }
        if state == sys::PJSIP_INV_STATE_INCOMING || self.refused.contains(&idx) {
            return UnknownCall::Ignore;
        }
        self.unknown_calls_hung_up += 1;
        self.refused.insert(idx);
        UnknownCall::HangUp
    }

    /// Calls PJSIP created that the engine never started or accepted, hung up so far.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(super) fn unknown_calls_hung_up(&self) -> u64 {
        self.unknown_calls_hung_up
    }
}

/// The admission policy for an incoming INVITE: shutting down (503) wins over the source
/// allowlist (403), which wins over the call cap (486). `active` counts our calls, not this one.
pub(super) fn admission(
    accepting: bool,
    config: &EngineConfig,
    source: Option<SocketAddr>,
    active: u32,
) -> Option<RejectReason> {
    let allowed = config.allowed_sources.is_empty()
        || source.is_some_and(|s| {
            let ip = match s.ip() {
                IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
                v4 => v4,
            };
            config.allowed_sources.iter().any(|net| net.contains(&ip))
        });
    if !accepting {
        Some(RejectReason::ShuttingDown)
    } else if !allowed {
        Some(RejectReason::NotAllowed)
    } else if active >= config.max_calls {
        Some(RejectReason::Busy)
    } else {
        None
    }
}

/// The SIP final response for a refusal.
pub(super) fn reject_code(reason: RejectReason) -> u16 {
    match reason {
        RejectReason::NotAllowed => 403,
        RejectReason::Busy => 486,
        RejectReason::ShuttingDown => 503,
    }
}

/// PJSIP's invite session state as ours.
pub(super) fn map_state(state: sys::pjsip_inv_state) -> CallState {
    match state {
        sys::PJSIP_INV_STATE_CALLING => CallState::Calling,
        sys::PJSIP_INV_STATE_INCOMING => CallState::Incoming,
        sys::PJSIP_INV_STATE_EARLY => CallState::Early,
        sys::PJSIP_INV_STATE_CONNECTING => CallState::Connecting,
        sys::PJSIP_INV_STATE_CONFIRMED => CallState::Confirmed,
        _ => CallState::Disconnected,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn config(max_calls: u32, allowed: &[&str]) -> EngineConfig {
        EngineConfig {
            max_calls,
            allowed_sources: allowed.iter().map(|n| n.parse().unwrap()).collect(),
            queue_frames: 4,
            ..EngineConfig::default()
        }
    }

    fn from(addr: &str) -> Option<SocketAddr> {
        Some(addr.parse().unwrap())
    }

    #[test]
    fn admission_admits_anyone_below_the_cap_without_an_allowlist() {
        let c = config(2, &[]);
        assert_eq!(admission(true, &c, from("203.0.113.9:5060"), 0), None);
        assert_eq!(admission(true, &c, from("203.0.113.9:5060"), 1), None);
        assert_eq!(admission(true, &c, None, 1), None);
    }

    #[test]
    fn admission_refuses_at_the_cap_with_busy() {
        let c = config(2, &[]);
        assert_eq!(
            admission(true, &c, from("127.0.0.1:5060"), 2),
            Some(RejectReason::Busy)
        );
        assert_eq!(
            admission(true, &c, from("127.0.0.1:5060"), 7),
            Some(RejectReason::Busy)
        );
    }

    #[test]
    fn admission_checks_the_allowlist_including_v4_mapped_v6_and_unknown_sources() {
        let c = config(5, &["192.0.2.0/24", "2001:db8::/32"]);
        assert_eq!(admission(true, &c, from("192.0.2.7:5060"), 0), None);
        assert_eq!(
            admission(true, &c, from("[::ffff:192.0.2.7]:5060"), 0),
            None
        );
        assert_eq!(admission(true, &c, from("[2001:db8::1]:5060"), 0), None);
        assert_eq!(
            admission(true, &c, from("198.51.100.1:5060"), 0),
            Some(RejectReason::NotAllowed)
        );
        // No source address at all cannot prove membership.
        assert_eq!(admission(true, &c, None, 0), Some(RejectReason::NotAllowed));
    }

    #[test]
    fn admission_order_is_shutdown_then_allowlist_then_cap() {
        let c = config(1, &["192.0.2.0/24"]);
        let outsider = from("198.51.100.1:5060");
        assert_eq!(
            admission(false, &c, outsider, 9),
            Some(RejectReason::ShuttingDown)
        );
        assert_eq!(
            admission(true, &c, outsider, 9),
            Some(RejectReason::NotAllowed)
        );
        assert_eq!(
            admission(true, &c, from("192.0.2.1:5060"), 1),
            Some(RejectReason::Busy)
        );
    }

    #[test]
    fn refusals_map_to_their_sip_codes() {
        assert_eq!(reject_code(RejectReason::NotAllowed), 403);
        assert_eq!(reject_code(RejectReason::Busy), 486);
        assert_eq!(reject_code(RejectReason::ShuttingDown), 503);
    }

    #[test]
    fn invite_states_map_one_to_one_and_anything_else_is_disconnected() {
        assert_eq!(map_state(sys::PJSIP_INV_STATE_CALLING), CallState::Calling);
        assert_eq!(
            map_state(sys::PJSIP_INV_STATE_INCOMING),
            CallState::Incoming
        );
        assert_eq!(map_state(sys::PJSIP_INV_STATE_EARLY), CallState::Early);
        assert_eq!(
            map_state(sys::PJSIP_INV_STATE_CONNECTING),
            CallState::Connecting
        );
        assert_eq!(
            map_state(sys::PJSIP_INV_STATE_CONFIRMED),
            CallState::Confirmed
        );
        assert_eq!(
            map_state(sys::PJSIP_INV_STATE_DISCONNECTED),
            CallState::Disconnected
        );
        assert_eq!(
            map_state(sys::PJSIP_INV_STATE_NULL),
            CallState::Disconnected
        );
    }

    #[test]
    fn an_unknown_call_is_hung_up_once_and_forgotten_when_disconnected() {
        let mut table = CallTable::new();
        assert_eq!(
            table.unknown_call_state(3, sys::PJSIP_INV_STATE_CALLING),
            UnknownCall::HangUp
        );
        assert_eq!(table.unknown_calls_hung_up(), 1);
        // Its next state changes (the hang-up in progress) do not count again.
        assert_eq!(
            table.unknown_call_state(3, sys::PJSIP_INV_STATE_EARLY),
            UnknownCall::Ignore
        );
        assert_eq!(
            table.unknown_call_state(3, sys::PJSIP_INV_STATE_DISCONNECTED),
            UnknownCall::Ignore
        );
        assert_eq!(table.unknown_calls_hung_up(), 1);
        // The index is free again: a new unknown call there is hung up too.
        assert_eq!(
            table.unknown_call_state(3, sys::PJSIP_INV_STATE_CONFIRMED),
            UnknownCall::HangUp
        );
        assert_eq!(table.unknown_calls_hung_up(), 2);
    }

    #[test]
    fn refused_and_still_queued_incoming_calls_are_not_unknown() {
        let mut table = CallTable::new();
        table.refuse(5);
        for state in [
            sys::PJSIP_INV_STATE_EARLY,
            sys::PJSIP_INV_STATE_CONNECTING,
            sys::PJSIP_INV_STATE_CONFIRMED,
        ] {
            assert_eq!(table.unknown_call_state(5, state), UnknownCall::Ignore);
        }
        // An INVITE whose on_incoming_call record the loop has not handled yet.
        assert_eq!(
            table.unknown_call_state(6, sys::PJSIP_INV_STATE_INCOMING),
            UnknownCall::Ignore
        );
        assert_eq!(table.unknown_calls_hung_up(), 0);
        // Once the refused call is gone, its index is no longer trusted.
        table.unknown_call_state(5, sys::PJSIP_INV_STATE_DISCONNECTED);
        assert_eq!(
            table.unknown_call_state(5, sys::PJSIP_INV_STATE_CONFIRMED),
            UnknownCall::HangUp
        );
    }

    #[test]
    fn the_table_counts_its_calls_for_admission_and_finds_them_by_id() {
        // Indices far above any a running engine in this test binary could use (CALL_IDS is
        // process-wide); the table clears them again on remove.
        let c = config(2, &[]);
        let mut table = CallTable::new();
        let a = table.insert(200, Direction::Incoming, &c);
        assert_eq!(table.admission(&c, from("127.0.0.1:5060")), None);
        let b = table.insert(201, Direction::Outgoing, &c);
        assert_ne!(a, b);
        assert_eq!(
            table.admission(&c, from("127.0.0.1:5060")),
            Some(RejectReason::Busy)
        );
        assert!(matches!(
            table.admit_outgoing(c.max_calls),
            Err(Error::TooManyCalls(2))
        ));
        assert_eq!(table.index_of(b).unwrap(), 201);
        assert!(table.remove(200).is_some());
        assert!(matches!(table.index_of(a), Err(Error::NoSuchCall(_))));
        assert!(table.admit_outgoing(c.max_calls).is_ok());
        table.stop_accepting();
        assert!(matches!(
            table.admit_outgoing(c.max_calls),
            Err(Error::Stopped)
        ));
        assert_eq!(
            table.admission(&c, from("127.0.0.1:5060")),
            Some(RejectReason::ShuttingDown)
        );
        assert_eq!(table.drain().len(), 1);
        assert!(table.is_empty());
    }

    #[test]
    fn ringing_calls_are_due_once_their_delay_is_over() {
        let c = config(4, &[]);
        let mut table = CallTable::new();
        let now = Instant::now();
        let soon = table.insert(210, Direction::Incoming, &c);
        let later = table.insert(211, Direction::Incoming, &c);
        let _manual = table.insert(212, Direction::Incoming, &c);
        table.get_mut(210).unwrap().answer_at = Some(now + Duration::from_millis(100));
        table.get_mut(211).unwrap().answer_at = Some(now + Duration::from_secs(2));
        assert!(table.due_answers(now).is_empty());
        assert_eq!(
            table.due_answers(now + Duration::from_millis(100)),
            vec![soon]
        );
        let mut both = table.due_answers(now + Duration::from_secs(3));
        both.sort_by_key(|c| c.0);
        assert_eq!(both, vec![soon, later]);
        table.drain();
    }
}
