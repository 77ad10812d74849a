//! The call table: which pjsua calls are ours, whether we still accept calls, when ringing calls
//! are answered, which calls hold resources for nothing (no ACK, no RTP), and what to do with
//! calls PJSIP holds that the engine never admitted. Who may call in is decided by
//! `admission.rs` from the counts this table gives it.
//!
//! Policy lives here without pjsua: every decision is a plain function of the table, the
//! configuration and the time (what pjsua knows, such as RTP counts, is passed in), so it is
//! unit-tested below. The loop (`mod.rs`) carries the decisions out (hangs up, emits events).

use std::collections::{HashMap, HashSet};
use std::num::NonZeroUsize;
use std::time::{Duration, Instant};

use pjsip_sys as sys;

use crate::callbacks;
use crate::config::EngineConfig;
use crate::error::{Error, Result};
use crate::event::{CallId, CallMedia, CallState, Direction};
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
    /// When we sent 200 to an incoming call; the ACK must follow within `confirm_timeout`.
    pub(super) answered_at: Option<Instant>,
    /// The INVITE transaction is complete (ACK received or sent).
    pub(super) confirmed: bool,
    /// RTP packets received at the last check, and when that count last grew.
    pub(super) rx_packets: u32,
    pub(super) rx_seen_at: Instant,
}

/// Why a call is hung up by the table's timeouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Expiry {
    /// Answered, but the ACK never came (a flood of INVITEs that never complete): 408.
    NoAck,
    /// Confirmed with active media, but no RTP for `rtp_timeout` (the peer vanished): BYE.
    NoRtp,
}

impl Expiry {
    pub(super) fn why(self) -> &'static str {
        match self {
            Expiry::NoAck => "no ACK for the answer",
            Expiry::NoRtp => "no RTP received",
        }
    }

    /// The hang-up code (0: pjsua picks, a BYE for a confirmed call).
    pub(super) fn code(self) -> u16 {
        match self {
            Expiry::NoAck => 408,
            Expiry::NoRtp => 0,
        }
    }
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

    pub(super) fn accepting(&self) -> bool {
        self.accepting
    }

    /// Our calls, as admission counts them.
    pub(super) fn active(&self) -> u32 {
        self.records.len() as u32
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
                answered_at: None,
                confirmed: false,
                rx_packets: 0,
                rx_seen_at: Instant::now(),
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

    /// Calls that hold resources for nothing at `now`: answered but not confirmed within
    /// `confirm_timeout`, or confirmed with media connected but no new RTP (as
    /// `rx_packets(idx)` counts it) for `rtp_timeout` (zero: never). Each is reported once:
    /// its timers are cleared while the hang-up takes its moment.
    pub(super) fn expired(
        &mut self,
        now: Instant,
        confirm_timeout: Duration,
        rtp_timeout: Duration,
        mut rx_packets: impl FnMut(sys::pjsua_call_id) -> Option<u32>,
    ) -> Vec<(sys::pjsua_call_id, CallId, Expiry)> {
        let mut expired = Vec::new();
        for (&idx, record) in self.records.iter_mut() {
            if !record.confirmed {
                if record
                    .answered_at
                    .is_some_and(|t| now.duration_since(t) >= confirm_timeout)
                {
                    expired.push((idx, record.id, Expiry::NoAck));
                }
                continue;
            }
            if rtp_timeout.is_zero() || record.connected_to.is_none() {
                // On hold or without media the peer may rightly send nothing.
                record.rx_seen_at = now;
                continue;
            }
            let packets = rx_packets(idx).unwrap_or(record.rx_packets);
            if packets != record.rx_packets {
                record.rx_packets = packets;
                record.rx_seen_at = now;
            } else if now.duration_since(record.rx_seen_at) >= rtp_timeout {
                expired.push((idx, record.id, Expiry::NoRtp));
            }
        }
        for (idx, _, _) in &expired {
            if let Some(r) = self.records.get_mut(idx) {
                // Once: the BYE or 408 takes a moment.
                r.answered_at = None;
                r.confirmed = false;
            }
        }
        expired
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

    fn config(max_calls: u32) -> EngineConfig {
        EngineConfig {
            max_calls,
            queue_frames: 4,
            ..EngineConfig::default()
        }
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
        let c = config(2);
        let mut table = CallTable::new();
        let a = table.insert(200, Direction::Incoming, &c);
        assert_eq!(table.active(), 1);
        let b = table.insert(201, Direction::Outgoing, &c);
        assert_ne!(a, b);
        assert_eq!(table.active(), 2);
        assert!(matches!(
            table.admit_outgoing(c.max_calls),
            Err(Error::TooManyCalls(2))
        ));
        assert_eq!(table.index_of(b).unwrap(), 201);
        assert!(table.remove(200).is_some());
        assert!(matches!(table.index_of(a), Err(Error::NoSuchCall(_))));
        assert!(table.admit_outgoing(c.max_calls).is_ok());
        assert!(table.accepting());
        table.stop_accepting();
        assert!(!table.accepting());
        assert!(matches!(
            table.admit_outgoing(c.max_calls),
            Err(Error::Stopped)
        ));
        assert_eq!(table.drain().len(), 1);
        assert!(table.is_empty());
    }

    #[test]
    fn unacknowledged_answers_and_silent_calls_expire_once() {
        let c = config(4);
        let mut table = CallTable::new();
        let t0 = Instant::now();
        let confirm = Duration::from_secs(8);
        let rtp = Duration::from_secs(60);
        let no_ack = table.insert(220, Direction::Incoming, &c);
        table.get_mut(220).unwrap().answered_at = Some(t0);
        let silent = table.insert(221, Direction::Incoming, &c);
        let talking = table.insert(222, Direction::Incoming, &c);
        let on_hold = table.insert(223, Direction::Incoming, &c);
        for idx in [221, 222, 223] {
            let r = table.get_mut(idx).unwrap();
            r.confirmed = true;
            r.rx_seen_at = t0;
            r.connected_to = (idx != 223).then_some(1);
        }
        let mut packets = 10;
        let mut rx = |idx| match idx {
            222 => {
                packets += 50;
                Some(packets)
            }
            _ => Some(0),
        };
        assert!(table
            .expired(t0 + Duration::from_secs(7), confirm, rtp, &mut rx)
            .is_empty());
        let mut got = table.expired(t0 + Duration::from_secs(61), confirm, rtp, &mut rx);
        got.sort_by_key(|(idx, _, _)| *idx);
        assert_eq!(
            got,
            vec![(220, no_ack, Expiry::NoAck), (221, silent, Expiry::NoRtp)]
        );
        assert_eq!(Expiry::NoAck.code(), 408);
        // Reported once; the talking call and the call on hold stay.
        assert!(table
            .expired(t0 + Duration::from_secs(200), confirm, rtp, &mut rx)
            .is_empty());
        let _ = (talking, on_hold);
        // A zero RTP timeout never expires a confirmed call.
        table.get_mut(221).unwrap().confirmed = true;
        assert!(table
            .expired(
                t0 + Duration::from_secs(999),
                confirm,
                Duration::ZERO,
                |_| Some(0)
            )
            .is_empty());
        table.drain();
    }

    #[test]
    fn ringing_calls_are_due_once_their_delay_is_over() {
        let c = config(4);
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
