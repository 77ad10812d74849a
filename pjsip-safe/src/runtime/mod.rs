//! The pjlib thread: it creates pjsua, runs its event loop, executes commands from other threads
//! and destroys pjsua. It is the only thread of ours that calls pjlib.
//!
//! One loop iteration: run pending commands, handle the records the callbacks left (see
//! `callbacks.rs`), answer calls whose ring delay is over, do the housekeeping, then let pjsua
//! poll its sockets and timers for up to [`POLL`]. A command therefore waits at most one poll
//! interval.
//!
//! Rooms:
//! - this module: the loop (commands, records, housekeeping, shutdown);
//! - [`setup`]: bringing pjsua up from the configuration (codecs, transports, STUN, accounts);
//! - [`calls`]: the call table and its policy (accepting, answer timers, ACK/RTP timeouts,
//!   unknown calls); who may call in is `admission.rs`, asked with the table's counts;
//! - [`conference`]: a call's media port in the bridge;
//! - [`trunk`]: the trunk's addresses that admission trusts, kept fresh.
//!
//! Every pjsua call goes through the thin layer in `pjsua.rs`; the loop, `calls` and
//! `conference` hold no `unsafe` (`setup` has one: the STUN callback reads pjsua's pointer).

mod calls;
mod conference;
mod setup;
mod trunk;

use std::ffi::CString;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use pjsip_sys as sys;

use self::calls::{map_state, CallTable, UnknownCall};
use self::conference::{attach_port, audio_media_index, detach_port, media_info};
use crate::admission::{refusal_code, Admission};
use crate::callbacks::{self, Record};
use crate::command::Command;
use crate::config::{AnswerMode, EngineConfig};
use crate::error::{Error, Result};
use crate::event::{
    CallId, CallState, Direction, Event, MediaInfo, MediaStatus, Registration, RejectReason,
};
use crate::info::{CallStats, EngineInfo};
use crate::log_limit::LogLimiter;
use crate::panics::{self, fault_point};
use crate::pjstr::cstring;
use crate::pjsua::{self, Pjsua};

/// How long one `pjsua_handle_events` may block: the upper bound of command latency.
const POLL: Duration = Duration::from_millis(5);
/// How often queue high-water marks are checked (to log one warning, not one per frame).
const HOUSEKEEPING: Duration = Duration::from_millis(500);

/// Set while an engine runs: pjsua is a process-wide singleton.
pub(crate) static RUNNING: AtomicBool = AtomicBool::new(false);

struct State {
    pj: Pjsua,
    config: EngineConfig,
    events: flume::Sender<Event>,
    calls: CallTable,
    trunk_acc: Option<sys::pjsua_acc_id>,
    default_acc: sys::pjsua_acc_id,
    info: EngineInfo,
    last_housekeeping: Instant,
    /// The trunk account holds a registration (so shutdown waits for its removal).
    registered: bool,
    /// Who may start a call (source policy, per-source INVITE rate).
    admission: Admission,
    /// Resolutions of the trunk's host names running off this thread (see `housekeeping`).
    trunk_lookup: Option<crossbeam_channel::Receiver<Vec<IpAddr>>>,
    last_trunk_lookup: Instant,
    /// What the trunk's host names resolved to last.
    trunk_resolved: Vec<IpAddr>,
    /// The address the trunk's registrar last answered from (admitted in trunk mode).
    registrar_address: Option<IpAddr>,
    /// Log lines about refused INVITEs, per reason, under a budget.
    refusal_log: LogLimiter<RejectReason>,
}

/// Marks the process-wide engine slot free again when the thread ends, however it ends.
struct RunningGuard;

impl Drop for RunningGuard {
    fn drop(&mut self) {
        callbacks::reset_dtmf();
        RUNNING.store(false, Ordering::Release);
    }
}

/// Body of the pjlib thread.
pub(crate) fn run(
    config: EngineConfig,
    commands: Receiver<Command>,
    events: flume::Sender<Event>,
    ready: flume::Sender<Result<EngineInfo>>,
) {
    let _guard = RunningGuard;
    callbacks::clear_records();
    // Allocates the DTMF queue here, never on the media thread.
    callbacks::reset_dtmf();
    // pjsua_create logs before pjsua_init installs our callback; without this, those lines
    // would go to stdout past `tracing`.
    pjsua::set_log_func(callbacks::on_log, config.log_level as i32);
    let pj = match Pjsua::create() {
        Ok(pj) => pj,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let setup = match setup::init(pj, &config) {
        Ok(setup) => setup,
        Err(e) => {
            // Undoes a partial init; the start-up error is the one worth reporting.
            let _ = pj.destroy();
            let _ = ready.send(Err(e));
            return;
        }
    };
    let mut state = State {
        pj,
        config,
        events,
        calls: CallTable::new(),
        trunk_acc: setup.trunk_acc,
        default_acc: setup.default_acc,
        info: setup.info,
        last_housekeeping: Instant::now(),
        registered: false,
        admission: setup.admission,
        trunk_lookup: None,
        last_trunk_lookup: Instant::now(),
        trunk_resolved: setup.trunk_resolved,
        registrar_address: None,
        refusal_log: LogLimiter::new(5, Duration::from_secs(60)),
    };
    let _ = ready.send(Ok(state.info.clone()));

    let mut shutdown_reply = None;
    loop {
        loop {
            match commands.try_recv() {
                Ok(Command::Shutdown { reply }) => {
                    shutdown_reply = Some(reply);
                    break;
                }
                // Each command answers its caller even if it panics (see `State::command`);
                // this outer guard only keeps a panic in the dispatch itself off the C stack
                // frames below us (the caller then sees `Error::Stopped`).
                Ok(cmd) => panics::guard("the command dispatch", (), || state.command(cmd)),
                Err(crossbeam_channel::TryRecvError::Empty) => break,
                // Every handle is gone: nobody can use the engine any more.
                Err(crossbeam_channel::TryRecvError::Disconnected) => {
                    shutdown_reply = Some(flume::bounded(1).0);
                    break;
                }
            }
        }
        if shutdown_reply.is_some() {
            break;
        }
        state.handle_records();
        state.answer_due_calls();
        state.housekeeping();
        state.pj.handle_events(POLL.as_millis() as u32);
        state.handle_records();
    }
    let result = state.shutdown();
    if let Some(reply) = shutdown_reply {
        let _ = reply.send(result);
    }
}

/// Ends a call we are giving up on: `code` is the final response of an unanswered incoming
/// call (0: pjsua picks). A call that is already gone is no error here, so it is only logged.
fn hangup(pj: Pjsua, idx: sys::pjsua_call_id, code: u16) {
    if let Err(e) = pj.call_hangup(idx, code) {
        tracing::debug!(pjsua_call = idx, "hang-up: {e}");
    }
}

/// RTP packets received on the call's audio stream so far.
fn rx_packets(pj: Pjsua, idx: sys::pjsua_call_id) -> Option<u32> {
    let info = pj.call_get_info(idx).ok()?;
    let med = audio_media_index(&info)?;
    let stat = pj.call_get_stream_stat(idx, med).ok()?;
    Some(stat.rtcp.rx.pkt)
}

/// A REGISTER outcome as the application sees it.
fn registration(code: u16, reason: String, expires: u32, unregistering: bool) -> Registration {
    if (200..300).contains(&code) {
        if unregistering || expires == 0 {
            Registration::Unregistered
        } else {
            Registration::Registered { expires }
        }
    } else {
        Registration::Failed { code, reason }
    }
}

impl State {
    fn emit(&self, event: Event) {
        let _ = self.events.send(event);
    }

    // ---- commands ----

    /// Runs one command's work; a panic in it is logged and counted, and the caller gets
    /// [`Error::Internal`] instead of a result. The engine goes on serving other calls.
    fn run_guarded<T>(
        &mut self,
        name: &'static str,
        work: impl FnOnce(&mut Self) -> Result<T>,
    ) -> Result<T> {
        panics::guard(name, None, || Some(work(self))).unwrap_or_else(|| {
            Err(Error::Internal(format!(
                "a panic in the engine thread while running {name}"
            )))
        })
    }

    fn command(&mut self, cmd: Command) {
        match cmd {
            Command::Answer { call, reply } => {
                let _ = reply.send(self.run_guarded("the answer command", |s| {
                    fault_point!(Command);
                    s.answer(call)
                }));
            }
            Command::Hangup { call, code, reply } => {
                let _ = reply.send(self.run_guarded("the hangup command", |s| {
                    fault_point!(Command);
                    let idx = s.calls.index_of(call)?;
                    s.pj.call_hangup(idx, code)
                }));
            }
            Command::MakeCall { uri, reply } => {
                let _ = reply.send(self.run_guarded("the make_call command", |s| {
                    fault_point!(Command);
                    s.make_call(&uri)
                }));
            }
            Command::Transfer {
                call,
                target,
                reply,
            } => {
                let _ = reply.send(self.run_guarded("the transfer command", |s| {
                    fault_point!(Command);
                    let idx = s.calls.index_of(call)?;
                    let target = cstring("transfer target", &target)?;
                    s.pj.call_xfer(idx, &target)
                }));
            }
            Command::Stats { call, reply } => {
                let _ = reply.send(self.run_guarded("the stats command", |s| {
                    fault_point!(Command);
                    let idx = s.calls.index_of(call)?;
                    s.stats(idx)
                }));
            }
            Command::Info { reply } => {
                let _ = reply.send(self.run_guarded("the info command", |s| {
                    fault_point!(Command);
                    Ok(s.info.clone())
                }));
            }
            Command::Shutdown { .. } => unreachable!("handled by the loop"),
        }
    }

    fn answer(&mut self, call: CallId) -> Result<()> {
        let idx = self.calls.index_of(call)?;
        if let Some(r) = self.calls.get_mut(idx) {
            r.answer_at = None;
            r.answered_at.get_or_insert_with(Instant::now);
        }
        let opt = self.pj.call_setting_audio_only();
        self.pj.call_answer(idx, &opt, 200)
    }

    fn make_call(&mut self, uri: &str) -> Result<CallId> {
        self.calls.admit_outgoing(self.config.max_calls)?;
        let c_uri: CString = cstring("uri", uri)?;
        if self.pj.verify_sip_url(&c_uri).is_err() {
            return Err(Error::Config {
                key: "uri",
                problem: format!("`{uri}` is not a valid SIP URI (e.g. sip:100@192.0.2.10:5060)"),
            });
        }
        let opt = self.pj.call_setting_audio_only();
        let idx = self.pj.call_make_call(self.default_acc, &c_uri, &opt)?;
        Ok(self.calls.insert(idx, Direction::Outgoing, &self.config))
    }

    fn stats(&self, idx: sys::pjsua_call_id) -> Result<CallStats> {
        let record = self.calls.get(idx).ok_or(Error::Internal(
            "stats for a call index without a record".into(),
        ))?;
        let info = self.pj.call_get_info(idx)?;
        let med = audio_media_index(&info).ok_or(Error::InvalidCallState {
            call: record.id,
            problem: "no audio stream",
        })?;
        let media = media_info(self.pj, idx, med);
        let stat = self.pj.call_get_stream_stat(idx, med)?;
        Ok(CallStats {
            media,
            rx_packets: stat.rtcp.rx.pkt,
            rx_lost: stat.rtcp.rx.loss,
            rx_jitter_ms: stat.rtcp.rx.jitter.mean as f64 / 1000.0,
            tx_packets: stat.rtcp.tx.pkt,
            rtt_ms: (stat.rtcp.rtt.n > 0).then(|| stat.rtcp.rtt.mean as f64 / 1000.0),
            jitter_buffer_ms: stat.jbuf.avg_delay,
            queues: record.port.as_ref().map(|p| p.stats()),
            callback_timing: record.port.as_ref().map(|p| p.timing()),
        })
    }

    // ---- records left by the callbacks ----

    fn handle_records(&mut self) {
        // Digits first: they were keyed before whatever the records below report (e.g. the
        // call's end).
        while let Some(dtmf) = callbacks::next_dtmf() {
            self.emit(dtmf);
        }
        while let Some(record) = callbacks::next_record() {
            let call = match &record {
                Record::Incoming { call, .. }
                | Record::State { call, .. }
                | Record::Media { call }
                | Record::Transfer { call, .. }
                | Record::Failed { call, .. } => Some(*call),
                Record::Registration { .. } => None,
            };
            let place = "handling a callback's record";
            let handled = panics::guard(place, false, || {
                self.handle(record);
                true
            });
            if !handled {
                match call {
                    Some(idx) => self.fail_call(idx, place),
                    None => self.emit(Event::InternalError {
                        call: None,
                        message: format!("a panic in the engine ({place})"),
                    }),
                }
            }
        }
    }

    /// A panic (logged and counted already) cost us what we know about a call: hang it up with
    /// 500 and tell the application. A call that is gone already is ended here, because its
    /// final state change may be what was lost.
    fn fail_call(&mut self, idx: sys::pjsua_call_id, place: &'static str) {
        let message = format!("a panic in the engine ({place})");
        let Some(id) = self.calls.get(idx).map(|r| r.id) else {
            // Not (yet) ours, e.g. an INVITE whose on_incoming_call panicked: refuse it.
            self.calls.refuse(idx);
            hangup(self.pj, idx, 500);
            self.emit(Event::InternalError {
                call: None,
                message,
            });
            return;
        };
        self.emit(Event::InternalError {
            call: Some(id),
            message,
        });
        let gone = self.pj.call_get_info(idx).map_or(true, |i| {
            i.state == sys::PJSIP_INV_STATE_DISCONNECTED || i.state == sys::PJSIP_INV_STATE_NULL
        });
        if !gone {
            // pjsua reports the hang-up through on_call_state, which ends the record.
            hangup(self.pj, idx, 500);
            return;
        }
        if let Some(mut record) = self.calls.remove(idx) {
            detach_port(self.pj, &mut record);
            self.emit(Event::CallEnded {
                call: id,
                direction: record.direction,
                code: 500,
                reason: "internal error".into(),
            });
        }
    }

    fn handle(&mut self, record: Record) {
        match record {
            Record::Incoming {
                call,
                from,
                to,
                source,
                caller_from,
                caller_asserted,
            } => {
                let from_trunk = source.is_some_and(|s| self.admission.is_trunk(s.ip()));
                let caller = match caller_asserted {
                    Some(asserted) if from_trunk => asserted,
                    _ => caller_from,
                };
                self.incoming(call, from, to, source, caller)
            }
            Record::State {
                call,
                state,
                code,
                reason,
            } => self.call_state(call, state, code, reason),
            Record::Media { call } => self.media_state(call),
            Record::Failed { call, place } => self.fail_call(call, place),
            Record::Registration {
                code,
                reason,
                expires,
                unregistering,
                source,
            } => {
                if let Some(ip) = source.filter(|_| (200..300).contains(&code)) {
                    if self.registrar_address != Some(ip) {
                        self.registrar_address = Some(ip);
                        self.refresh_trunk_addresses(Vec::new());
                    }
                }
                let reg = registration(code, reason, expires, unregistering);
                self.registered = matches!(reg, Registration::Registered { .. });
                tracing::info!("registration: {reg:?}");
                self.emit(Event::Registration(reg));
            }
            Record::Transfer {
                call,
                code,
                reason,
                last,
            } => {
                if let Some(r) = self.calls.get(call) {
                    self.emit(Event::TransferStatus {
                        call: r.id,
                        code,
                        reason,
                        last,
                    });
                }
            }
        }
    }

    fn incoming(
        &mut self,
        idx: sys::pjsua_call_id,
        from: String,
        to: String,
        source: Option<std::net::SocketAddr>,
        caller: String,
    ) {
        let verdict = self.admission.decide(
            source.map(|s| s.ip()),
            self.calls.active(),
            self.config.max_calls,
            self.calls.accepting(),
            Instant::now(),
        );
        if let Err(reason) = verdict {
            self.refuse(idx, from, source, reason);
            return;
        }
        let id = self.calls.insert(idx, Direction::Incoming, &self.config);
        let opt = self.pj.call_setting_audio_only();
        if let Err(e) = self.pj.call_answer(idx, &opt, 180) {
            // The INVITE may already be cancelled; its state change will end the record.
            tracing::warn!(call = %id, "sending 180 Ringing failed: {e}");
        }
        self.emit(Event::IncomingCall {
            call: id,
            from,
            to,
            source,
            caller,
        });
        match self.config.answer {
            AnswerMode::Manual => {}
            AnswerMode::Immediate => {
                if let Err(e) = self.answer(id) {
                    tracing::warn!(call = %id, "answering failed: {e}");
                }
            }
            AnswerMode::AfterRing(delay) => {
                if let Some(r) = self.calls.get_mut(idx) {
                    r.answer_at = Some(Instant::now() + delay);
                }
            }
        }
    }

    fn refuse(
        &mut self,
        idx: sys::pjsua_call_id,
        from: String,
        source: Option<std::net::SocketAddr>,
        reason: RejectReason,
    ) {
        let code = refusal_code(reason);
        if self.refusal_log.admit(reason, Instant::now()) {
            tracing::info!(%from, ?source, ?reason, "refusing INVITE with {code}");
        }
        self.calls.refuse(idx);
        hangup(self.pj, idx, code);
        self.emit(Event::IncomingRejected {
            from,
            source,
            reason,
            code,
        });
    }

    fn answer_due_calls(&mut self) {
        for id in self.calls.due_answers(Instant::now()) {
            if let Err(e) = self.answer(id) {
                tracing::warn!(call = %id, "answering after the ring delay failed: {e}");
            }
        }
    }

    fn call_state(
        &mut self,
        idx: sys::pjsua_call_id,
        state: sys::pjsip_inv_state,
        code: u16,
        reason: String,
    ) {
        let Some(record) = self.calls.get(idx) else {
            self.unknown_call_state(idx, state, code);
            return;
        };
        let id = record.id;
        let state = map_state(state);
        if state == CallState::Confirmed {
            if let Some(r) = self.calls.get_mut(idx) {
                r.confirmed = true;
                r.rx_seen_at = Instant::now();
            }
        }
        self.emit(Event::CallState {
            call: id,
            state,
            code,
            reason: reason.clone(),
        });
        if state == CallState::Disconnected {
            let mut record = self.calls.remove(idx).expect("looked up above");
            detach_port(self.pj, &mut record);
            self.emit(Event::CallEnded {
                call: id,
                direction: record.direction,
                code,
                reason,
            });
        }
    }

    /// A state change of a call our table does not hold; the rule is
    /// [`CallTable::unknown_call_state`]. A call PJSIP created on its own is hung up and
    /// logged as a security event.
    fn unknown_call_state(
        &mut self,
        idx: sys::pjsua_call_id,
        state: sys::pjsip_inv_state,
        code: u16,
    ) {
        if self.calls.unknown_call_state(idx, state) == UnknownCall::HangUp {
            tracing::error!(
                pjsua_call = idx,
                state = ?map_state(state),
                code,
                "security: PJSIP has a call the engine did not start or accept; hanging it up"
            );
            hangup(self.pj, idx, 0);
        }
    }

    fn media_state(&mut self, idx: sys::pjsua_call_id) {
        let pj = self.pj;
        let Some(record) = self.calls.get_mut(idx) else {
            return;
        };
        let id = record.id;
        let Ok(info) = pj.call_get_info(idx) else {
            return;
        };
        let status = match info.media_status {
            sys::PJSUA_CALL_MEDIA_ACTIVE => MediaStatus::Active,
            sys::PJSUA_CALL_MEDIA_LOCAL_HOLD => MediaStatus::LocalHold,
            sys::PJSUA_CALL_MEDIA_REMOTE_HOLD => MediaStatus::RemoteHold,
            sys::PJSUA_CALL_MEDIA_ERROR => MediaStatus::Error,
            _ => MediaStatus::None,
        };
        let slot = info.conf_slot;
        if status != MediaStatus::Active || slot == sys::PJSUA_INVALID_ID {
            // The old stream (and its slot) is gone or paused; reconnect when it is back.
            record.connected_to = None;
            let _ = self.events.send(Event::MediaChanged { call: id, status });
            return;
        }
        if let Err(e) = attach_port(pj, record, slot) {
            tracing::error!(call = %id, "cannot connect the call's audio: {e}");
            hangup(pj, idx, 500);
            return;
        }
        let media = audio_media_index(&info)
            .map(|m| media_info(pj, idx, m))
            .unwrap_or_else(|| MediaInfo {
                codec: String::new(),
                clock_rate: 0,
                channels: 0,
                remote_rtp: String::new(),
            });
        tracing::info!(call = %id, codec = %media.codec, clock_rate = media.clock_rate, remote = %media.remote_rtp, "media active");
        let handed_over = record.pending_api.take();
        self.emit(Event::MediaActive {
            call: id,
            info: media,
            media: handed_over,
        });
    }

    // ---- housekeeping and shutdown ----

    fn housekeeping(&mut self) {
        if self.last_housekeeping.elapsed() < HOUSEKEEPING {
            return;
        }
        self.last_housekeeping = Instant::now();
        self.expire_calls();
        self.poll_trunk_lookup();
        for (kind, suppressed) in self.refusal_log.summaries(Instant::now()) {
            tracing::info!(reason = ?kind, suppressed, "refused more INVITEs than were logged");
        }
        panics::report_rt();
        let dropped = callbacks::dtmf_dropped();
        if dropped > 0 {
            tracing::warn!(dropped, "DTMF digits dropped: the digit queue was full");
        }
        for record in self.calls.records_mut() {
            let Some(port) = &record.port else { continue };
            let stats = port.stats();
            let high = stats.uplink.high_water_tripped || stats.downlink.high_water_tripped;
            if high && !record.warned_high_water {
                tracing::warn!(
                    call = %record.id,
                    uplink = stats.uplink.depth,
                    downlink = stats.downlink.depth,
                    capacity = stats.uplink.capacity,
                    "a media queue passed 50% of its capacity: the application is not keeping up"
                );
            }
            record.warned_high_water = high;
        }
    }

    /// Hangs up calls that hold resources for nothing (the rule: [`CallTable::expired`]).
    fn expire_calls(&mut self) {
        let pj = self.pj;
        let expired = self.calls.expired(
            Instant::now(),
            self.config.confirm_timeout,
            self.config.rtp_timeout,
            |idx| rx_packets(pj, idx),
        );
        for (idx, id, expiry) in expired {
            tracing::warn!(call = %id, "hanging up: {}", expiry.why());
            hangup(pj, idx, expiry.code());
        }
    }

    fn shutdown(&mut self) -> Result<()> {
        self.calls.stop_accepting();
        let deadline = Instant::now() + self.config.shutdown_timeout;
        let unregistering = match self.trunk_acc {
            // Unregister first so the registrar stops sending new INVITEs.
            Some(acc) if self.registered => self.pj.acc_set_registration(acc, false).is_ok(),
            _ => false,
        };
        self.pj.call_hangup_all();
        // Wait for the BYEs' and the unregistration's answers here rather than inside
        // pjsua_destroy, so their events (CallEnded, Registration::Unregistered) still reach
        // the application.
        while (!self.calls.is_empty() || (unregistering && self.registered))
            && Instant::now() < deadline
        {
            self.pj.handle_events(10);
            self.handle_records();
        }
        for mut record in self.calls.drain() {
            detach_port(self.pj, &mut record);
        }
        // Nothing of ours refers to pjsua state after this (ports are destroyed, records
        // drained).
        let result = self.pj.destroy();
        callbacks::clear_records();
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn register_outcomes_map_to_registration_events() {
        assert_eq!(
            registration(200, "OK".into(), 60, false),
            Registration::Registered { expires: 60 }
        );
        // A 2xx for an unregistration, or one granting no time, means unregistered.
        assert_eq!(
            registration(200, "OK".into(), 60, true),
            Registration::Unregistered
        );
        assert_eq!(
            registration(200, "OK".into(), 0, false),
            Registration::Unregistered
        );
        assert_eq!(
            registration(403, "Forbidden".into(), 0, false),
            Registration::Failed {
                code: 403,
                reason: "Forbidden".into()
            }
        );
    }
}
