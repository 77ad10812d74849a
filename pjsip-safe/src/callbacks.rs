//! The `extern "C"` callbacks pjsua calls, and why they do almost nothing.
//!
//! pjsua calls callbacks re-entrantly from inside its own API functions (`pjsua_call_hangup`
//! calls `on_call_state` before it returns, `pjsua_call_make_call` calls it too). If callbacks
//! acted on the engine state directly, every pjsua call made while that state is borrowed would
//! be a re-entrancy bug. So each callback copies what is only valid during the callback
//! (addresses, status codes, texts) into a [`Record`] on a thread-local queue and returns; the
//! pjlib thread's loop (`runtime.rs`) then handles the records with full access to its state and
//! may call pjsua freely.
//!
//! Every callback body runs inside `catch_unwind` (`panics.rs`): a panic never unwinds into C,
//! and it is logged and counted. A panic in a call's callback also leaves a
//! [`Record::Failed`], so the loop hangs that call up rather than leave it half-seen.
//!
//! Exception: RFC 2833 DTMF arrives on PJSIP's media thread, not ours, where nothing may lock,
//! allocate or log. The callback reads the call's id from an atomic table ([`CALL_IDS`]) and
//! pushes `(call, digit)` into a preallocated lock-free queue ([`DTMF_QUEUE`]); the pjlib
//! thread drains it in order at the start of each round of records ([`next_dtmf`]) and emits
//! the events. A full queue drops the digit and counts it ([`dtmf_dropped`]).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::LazyLock;

use crossbeam_queue::ArrayQueue;

use pjsip_sys as sys;

use crate::error::{check, Error};
use crate::event::{CallId, Event};
use crate::panics::{self, fault_point, RtPlace};
use crate::pjstr;
use crate::pjsua::Pjsua;

/// What a callback saw, for the loop to act on.
#[derive(Debug)]
pub(crate) enum Record {
    Incoming {
        call: sys::pjsua_call_id,
        from: String,
        to: String,
        source: Option<SocketAddr>,
        /// The user part of the parsed `From` URI.
        caller_from: String,
        /// The user part of the parsed `P-Asserted-Identity` URI, if there is one.
        caller_asserted: Option<String>,
    },
    State {
        call: sys::pjsua_call_id,
        state: sys::pjsip_inv_state,
        code: u16,
        reason: String,
    },
    Media {
        call: sys::pjsua_call_id,
    },
    Registration {
        code: u16,
        reason: String,
        expires: u32,
        unregistering: bool,
        /// Where the registrar's response came from.
        source: Option<IpAddr>,
    },
    Transfer {
        call: sys::pjsua_call_id,
        code: u16,
        reason: String,
        last: bool,
    },
    /// A callback about this call panicked (already logged and counted): what it should have
    /// recorded is lost, so the loop hangs the call up.
    Failed {
        call: sys::pjsua_call_id,
        place: &'static str,
    },
}

thread_local! {
    static RECORDS: RefCell<VecDeque<Record>> = const { RefCell::new(VecDeque::new()) };
}

/// Takes the oldest record (called by the loop on the pjlib thread).
pub(crate) fn next_record() -> Option<Record> {
    RECORDS.with(|r| r.borrow_mut().pop_front())
}

pub(crate) fn clear_records() {
    RECORDS.with(|r| r.borrow_mut().clear());
}

fn push(record: Record) {
    RECORDS.with(|r| r.borrow_mut().push_back(record));
}

/// Runs the body of a SIP callback (pjlib thread). A panic is logged and counted; if the
/// callback was about a call, a [`Record::Failed`] tells the loop to hang it up.
fn sip_callback(place: &'static str, call: Option<sys::pjsua_call_id>, body: impl FnOnce()) {
    let completed = panics::guard(place, false, || {
        body();
        true
    });
    if let (false, Some(call)) = (completed, call) {
        panics::guard(place, (), || push(Record::Failed { call, place }));
    }
}

/// pjsua call index → our [`CallId`] (0 = none), readable from the media thread for DTMF.
pub(crate) static CALL_IDS: [AtomicU64; sys::PJSUA_MAX_CALLS as usize] =
    [const { AtomicU64::new(0) }; sys::PJSUA_MAX_CALLS as usize];

/// Digits waiting for the pjlib thread: far more than anyone can key between two polls (5 ms).
const DTMF_QUEUE_CAPACITY: usize = 256;

/// DTMF digits from the callback, in arrival order, as `(CallId, digit)`. Allocated once, by
/// the pjlib thread at start-up ([`reset_dtmf`]), never on the media thread.
static DTMF_QUEUE: LazyLock<ArrayQueue<(CallId, char)>> =
    LazyLock::new(|| ArrayQueue::new(DTMF_QUEUE_CAPACITY));

/// Digits dropped because the queue was full (not yet reported).
static DTMF_DROPPED: AtomicU64 = AtomicU64::new(0);

/// Allocates the queue if needed and forgets digits of an earlier engine (pjlib thread, at
/// start-up and shutdown).
pub(crate) fn reset_dtmf() {
    while DTMF_QUEUE.pop().is_some() {}
    DTMF_DROPPED.store(0, Ordering::Relaxed);
}

/// The oldest digit waiting (called by the loop on the pjlib thread).
pub(crate) fn next_dtmf() -> Option<Event> {
    DTMF_QUEUE
        .pop()
        .map(|(call, digit)| Event::Dtmf { call, digit })
}

/// Digits dropped since the last call (reported by the loop's housekeeping).
pub(crate) fn dtmf_dropped() -> u64 {
    DTMF_DROPPED.swap(0, Ordering::Relaxed)
}

pub(crate) fn set_call_id(call: sys::pjsua_call_id, id: Option<CallId>) {
    if let Some(slot) = usize::try_from(call).ok().and_then(|i| CALL_IDS.get(i)) {
        slot.store(id.map_or(0, |c| c.0), Ordering::Release);
    }
}

fn call_info(call: sys::pjsua_call_id) -> Option<Box<sys::pjsua_call_info>> {
    // SAFETY: only called from pjsua's SIP callbacks, which run on the pjlib thread.
    let pj = unsafe { Pjsua::assume_pjlib_thread() };
    pj.call_get_info(call).ok()
}

pub(crate) unsafe extern "C" fn on_incoming_call(
    _acc: sys::pjsua_acc_id,
    call: sys::pjsua_call_id,
    rdata: *mut sys::pjsip_rx_data,
) {
    sip_callback("on_incoming_call", Some(call), || {
        let source = if rdata.is_null() {
            None
        } else {
            // SAFETY: pjsua passes the INVITE's rx data, valid for the duration of the callback.
            let pkt = unsafe { &(*rdata).pkt_info };
            let host = pjstr::from_c_array(&pkt.src_name);
            host.parse::<IpAddr>()
                .ok()
                .map(|ip| SocketAddr::new(ip, pkt.src_port as u16))
        };
        let (from, to) = call_info(call)
            .map(|i| {
                (
                    pjstr::to_string(&i.remote_info),
                    pjstr::to_string(&i.local_info),
                )
            })
            .unwrap_or_default();
        push(Record::Incoming {
            call,
            from,
            to,
            source,
            caller_from: rdata_caller(rdata, false).unwrap_or_default(),
            caller_asserted: rdata_caller(rdata, true),
        });
    });
}

/// The caller's number from the parsed `From` (or `P-Asserted-Identity`) URI of `rdata`.
fn rdata_caller(rdata: *mut sys::pjsip_rx_data, asserted: bool) -> Option<String> {
    let mut buf = [0 as std::os::raw::c_char; 128];
    // SAFETY: `rdata` is the INVITE's rx data (or null, which the shim checks), valid during
    // the callback; the shim writes at most `buf.len()` bytes including the NUL.
    let n = unsafe {
        sys::voiceagent_rdata_caller(rdata, i32::from(asserted), buf.as_mut_ptr(), buf.len())
    };
    if n < 0 {
        return None;
    }
    Some(pjstr::from_c_array(&buf))
}

pub(crate) unsafe extern "C" fn on_call_state(call: sys::pjsua_call_id, _e: *mut sys::pjsip_event) {
    sip_callback("on_call_state", Some(call), || {
        fault_point!(OnCallState);
        if let Some(i) = call_info(call) {
            push(Record::State {
                call,
                state: i.state,
                code: i.last_status as u16,
                reason: pjstr::to_string(&i.last_status_text),
            });
        }
    });
}

pub(crate) unsafe extern "C" fn on_call_media_state(call: sys::pjsua_call_id) {
    sip_callback("on_call_media_state", Some(call), || {
        push(Record::Media { call })
    });
}

pub(crate) unsafe extern "C" fn on_reg_state2(
    _acc: sys::pjsua_acc_id,
    info: *mut sys::pjsua_reg_info,
) {
    sip_callback("on_reg_state2", None, || {
        // SAFETY: pjsua passes a valid reg info whose cbparam lives for the callback.
        let param = unsafe { info.as_ref().and_then(|i| i.cbparam.as_ref()) };
        if let Some(p) = param {
            let mut reason = pjstr::to_string(&p.reason);
            if reason.is_empty() {
                if let Err(Error::Pj { message, .. }) = check(p.status, "REGISTER") {
                    reason = message;
                }
            }
            // SAFETY: the response's rx data, when there is one, is valid during the callback.
            let source = unsafe { p.rdata.as_ref() }.and_then(|r| {
                pjstr::from_c_array(&r.pkt_info.src_name)
                    .parse::<IpAddr>()
                    .ok()
            });
            push(Record::Registration {
                code: p.code as u16,
                reason,
                expires: p.expiration,
                unregistering: p.is_unreg != 0,
                source,
            });
        }
    });
}

pub(crate) unsafe extern "C" fn on_call_transfer_status(
    call: sys::pjsua_call_id,
    code: std::os::raw::c_int,
    text: *const sys::pj_str_t,
    last: sys::pj_bool_t,
    p_cont: *mut sys::pj_bool_t,
) {
    sip_callback("on_call_transfer_status", Some(call), || {
        // SAFETY: pjsua passes a valid (possibly empty) status text for the callback's duration.
        let reason = unsafe { text.as_ref() }
            .map(pjstr::to_string)
            .unwrap_or_default();
        push(Record::Transfer {
            call,
            code: code as u16,
            reason,
            last: last != 0,
        });
        if !p_cont.is_null() {
            // SAFETY: checked non-null; pjsua owns it for the callback. Keep receiving NOTIFYs
            // until the final one.
            unsafe { *p_cont = sys::pj_bool_t::from(last == 0) };
        }
    });
}

/// Defence in depth behind the edge filter (`edge.rs`), which answers every REFER with 403
/// before pjsua sees it: should one still arrive here, it is declined, never followed.
pub(crate) unsafe extern "C" fn on_call_transfer_request2(
    _call: sys::pjsua_call_id,
    _dst: *const sys::pj_str_t,
    code: *mut sys::pjsip_status_code,
    _opt: *mut sys::pjsua_call_setting,
) {
    // A plain store cannot panic; guarded anyway so every callback follows one rule.
    sip_callback("on_call_transfer_request2", None, || {
        if !code.is_null() {
            // SAFETY: checked non-null; pjsua owns it for the callback.
            unsafe { *code = sys::PJSIP_SC_DECLINE };
        }
    });
}

/// Defence in depth for INVITE with Replaces (the edge filter refuses those with 403 first).
pub(crate) unsafe extern "C" fn on_call_replace_request2(
    _call: sys::pjsua_call_id,
    _rdata: *mut sys::pjsip_rx_data,
    code: *mut std::os::raw::c_int,
    _text: *mut sys::pj_str_t,
    _opt: *mut sys::pjsua_call_setting,
) {
    sip_callback("on_call_replace_request2", None, || {
        if !code.is_null() {
            // SAFETY: checked non-null; pjsua owns it for the callback.
            unsafe { *code = sys::PJSIP_SC_FORBIDDEN as std::os::raw::c_int };
        }
    });
}

/// RFC 2833 digits arrive on PJSIP's media thread; SIP INFO digits on the pjlib thread.
pub(crate) unsafe extern "C" fn on_dtmf_digit2(
    call: sys::pjsua_call_id,
    info: *const sys::pjsua_dtmf_info,
) {
    // Real-time rules: counted only, reported by the pjlib thread's housekeeping.
    panics::guard_rt(RtPlace::Dtmf, (), || {
        fault_point!(Dtmf);
        // SAFETY: pjsua passes a valid info for the callback's duration.
        let Some(info) = (unsafe { info.as_ref() }) else {
            return;
        };
        let Some(slot) = usize::try_from(call).ok().and_then(|i| CALL_IDS.get(i)) else {
            return;
        };
        let id = slot.load(Ordering::Acquire);
        let digit = char::from_u32(info.digit).unwrap_or('?');
        // A lock-free, preallocated push (the queue was created at start-up, so this LazyLock
        // is only a load); the pjlib thread forwards the event.
        if id != 0 && DTMF_QUEUE.push((CallId(id), digit)).is_err() {
            DTMF_DROPPED.fetch_add(1, Ordering::Relaxed);
        }
    });
}

/// PJSIP's log output, from any thread, into `tracing`.
pub(crate) unsafe extern "C" fn on_log(
    level: std::os::raw::c_int,
    data: *const std::os::raw::c_char,
    len: std::os::raw::c_int,
) {
    panics::guard("on_log", (), || {
        if data.is_null() || len <= 0 {
            return;
        }
        // SAFETY: PJSIP passes `len` valid bytes for the callback's duration.
        let bytes = unsafe { std::slice::from_raw_parts(data.cast::<u8>(), len as usize) };
        let text = String::from_utf8_lossy(bytes);
        let text = text.trim_end();
        if !crate::pjsip_log::admit(level, text) {
            return;
        }
        let text = crate::pjsip_log::redact(text);
        match level {
            0 | 1 => tracing::error!(target: "pjsip", "{text}"),
            2 => tracing::warn!(target: "pjsip", "{text}"),
            3 => tracing::info!(target: "pjsip", "{text}"),
            4 => tracing::debug!(target: "pjsip", "{text}"),
            _ => tracing::trace!(target: "pjsip", "{text}"),
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(call: sys::pjsua_call_id, digit: char) {
        let info = sys::pjsua_dtmf_info {
            method: 0,
            digit: digit as u32,
            duration: 100,
        };
        // SAFETY: a valid info for the duration of the call, as pjsua passes it.
        unsafe { on_dtmf_digit2(call, &info) };
    }

    #[test]
    fn a_panicking_call_callback_leaves_a_failed_record_for_the_loop() {
        clear_records();
        let before = panics::caught_panics();
        sip_callback("a test callback", Some(9), || panic!("boom"));
        sip_callback("a test callback", None, || panic!("boom"));
        assert!(panics::caught_panics() >= before + 2);
        match next_record() {
            Some(Record::Failed { call: 9, place }) => assert_eq!(place, "a test callback"),
            other => panic!("{other:?}"),
        }
        // Without a call there is nothing to hang up: no record.
        assert!(next_record().is_none());
    }

    /// The only test in this binary that touches the DTMF queue and these call indices.
    #[test]
    fn dtmf_digits_pass_the_queue_in_order_and_overflow_is_counted() {
        reset_dtmf();
        set_call_id(240, Some(CallId(7)));
        set_call_id(241, Some(CallId(8)));
        for (call, digit) in [(240, '1'), (241, '#'), (240, '2'), (242, '9')] {
            key(call, digit);
        }
        let got: Vec<_> = std::iter::from_fn(next_dtmf)
            .map(|e| match e {
                Event::Dtmf { call, digit } => (call.0, digit),
                other => panic!("{other:?}"),
            })
            .collect();
        // Index 242 is no call of ours: its digit is not reported.
        assert_eq!(got, vec![(7, '1'), (8, '#'), (7, '2')]);

        for _ in 0..DTMF_QUEUE_CAPACITY + 3 {
            key(240, '5');
        }
        assert_eq!(dtmf_dropped(), 3);
        assert_eq!(std::iter::from_fn(next_dtmf).count(), DTMF_QUEUE_CAPACITY);
        set_call_id(240, None);
        set_call_id(241, None);
        reset_dtmf();
    }
}
