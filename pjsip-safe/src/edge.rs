//! The SIP edge: requests that nobody outside may send us, refused before PJSIP acts on them.
//!
//! pjsua's defaults are a softphone's: an answered caller may send an in-dialog `REFER` and
//! pjsua dials the `Refer-To` target from the call's own account (in trunk mode with the
//! trunk's credentials), an `INVITE` with `Replaces` takes over a call, `SUBSCRIBE` gets
//! presence, `MESSAGE` reaches the pager. For a server on a public address with a paid trunk
//! behind it, each of these is a way to spend the operator's money or to act in our name. So a
//! PJSIP module (C, in pjsip-sys's shim) sees every request before the transaction and dialog
//! layers and asks [`refusal`] what to do; refused requests are answered statelessly and never
//! reach pjsua. Transfers we start ourselves (`Engine::transfer`) are outgoing `REFER`s and are
//! not affected; their `NOTIFY`s are allowed.
//!
//! Refusals are counted per kind ([`refused_counts`]) and logged through a [`LogLimiter`], so a
//! flood cannot fill the disk.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use pjsip_sys as sys;

use crate::log_limit::LogLimiter;

/// What a refused request tried to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RefusedKind {
    /// `REFER`: a transfer, which would make us place a call.
    Refer,
    /// `INVITE` with `Replaces`: taking over one of our calls.
    Replaces,
    /// `SUBSCRIBE`: presence or other event packages.
    Subscribe,
    /// `PUBLISH`: event state.
    Publish,
    /// `MESSAGE`: instant messages.
    Message,
}

impl RefusedKind {
    /// Every kind, in the order of [`refused_counts`].
    pub const ALL: [RefusedKind; 5] = [
        RefusedKind::Refer,
        RefusedKind::Replaces,
        RefusedKind::Subscribe,
        RefusedKind::Publish,
        RefusedKind::Message,
    ];

    /// A label for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            RefusedKind::Refer => "refer",
            RefusedKind::Replaces => "replaces",
            RefusedKind::Subscribe => "subscribe",
            RefusedKind::Publish => "publish",
            RefusedKind::Message => "message",
        }
    }

    /// The final response: 403 for what a caller may not make us do, 405 (with `Allow`) for
    /// methods we do not serve at all.
    pub fn code(self) -> u16 {
        match self {
            RefusedKind::Refer | RefusedKind::Replaces => 403,
            RefusedKind::Subscribe | RefusedKind::Publish | RefusedKind::Message => 405,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The decision, without I/O: `method` is the request's method name as sent, `has_replaces`
/// whether it carries a `Replaces` header. SIP method names are case-sensitive and PJSIP
/// compares extension methods that way, but we refuse any spelling: a `refer` that some layer
/// one day treats as `REFER` must not get through.
pub fn refusal(method: &[u8], has_replaces: bool) -> Option<RefusedKind> {
    let is = |name: &[u8]| method.eq_ignore_ascii_case(name);
    if is(b"REFER") {
        Some(RefusedKind::Refer)
    } else if is(b"INVITE") && has_replaces {
        Some(RefusedKind::Replaces)
    } else if is(b"SUBSCRIBE") {
        Some(RefusedKind::Subscribe)
    } else if is(b"PUBLISH") {
        Some(RefusedKind::Publish)
    } else if is(b"MESSAGE") {
        Some(RefusedKind::Message)
    } else {
        None
    }
}

static REFUSED: [AtomicU64; RefusedKind::ALL.len()] = [const { AtomicU64::new(0) }; 5];

/// How many requests of each kind were refused since the process started, with their kinds.
pub fn refused_counts() -> [(RefusedKind, u64); RefusedKind::ALL.len()] {
    RefusedKind::ALL.map(|k| (k, REFUSED[k.index()].load(Ordering::Relaxed)))
}

/// Log lines per kind and minute before the rest are only counted (and summarised).
const LOG_BURST: u32 = 5;
const LOG_WINDOW: Duration = Duration::from_secs(60);

thread_local! {
    // The decision runs on the thread that polls SIP (the pjlib thread): no lock needed.
    static LOG: RefCell<LogLimiter<RefusedKind>> =
        RefCell::new(LogLimiter::new(LOG_BURST, LOG_WINDOW));
}

/// Installs the edge filter on pjsua's endpoint (after `pjsua_init`, on the pjlib thread).
pub(crate) fn install(
    pj: crate::pjsua::Pjsua,
    inbound_auth: Option<&(String, crate::Secret)>,
) -> crate::Result<()> {
    // SAFETY: on the pjlib thread (the token says so) after pjsua_init, so the endpoint exists;
    // the module is a static in the shim, and `decide` is a plain function that lives for the
    // process.
    let status = unsafe { sys::voiceagent_edge_register(pj.pjsip_endpt(), Some(decide)) };
    crate::error::check(status, "pjsip_endpt_register_module")?;
    if let Some((user, password)) = inbound_auth {
        let user = crate::pjstr::cstring("inbound_auth.user", user)?;
        let password = crate::pjstr::cstring("inbound_auth.password", password.expose())?;
        // SAFETY: on the pjlib thread after pjsua_init (the shim takes a pjsua pool); the
        // strings are copied before the call returns.
        let status = unsafe {
            sys::voiceagent_edge_inbound_auth(
                c"voiceagent".as_ptr(),
                user.as_ptr(),
                password.as_ptr(),
            )
        };
        crate::error::check(status, "pjsip_auth_srv_init")?;
    }
    Ok(())
}

/// New INVITEs answered with a 401 challenge by the inbound authentication since start.
// `unsigned long` is 32 bits on some targets: the conversion is only useless on this one.
#[allow(clippy::useless_conversion)]
pub fn auth_refused() -> u64 {
    // SAFETY: an atomic load of a counter in the shim; no other state is touched.
    u64::from(unsafe { sys::voiceagent_edge_auth_refused() })
}

unsafe extern "C" fn decide(
    method: *const sys::pj_str_t,
    rdata: *const sys::pjsip_rx_data,
) -> std::os::raw::c_int {
    let outcome = std::panic::catch_unwind(|| {
        // SAFETY: the shim passes the request's method name, valid during the callback.
        let Some(method) = (unsafe { method.as_ref() }) else {
            return 0;
        };
        // SAFETY: a pj_str_t points at `slen` bytes of the received packet.
        let name = unsafe { pj_bytes(method) };
        let has_replaces = name.eq_ignore_ascii_case(b"INVITE") && has_header(rdata, c"Replaces");
        let Some(kind) = refusal(name, has_replaces) else {
            return 0;
        };
        REFUSED[kind.index()].fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        LOG.with(|log| {
            let mut log = log.borrow_mut();
            for (k, suppressed) in log.summaries(now) {
                tracing::warn!(
                    kind = k.as_str(),
                    suppressed,
                    "security: refused more {} requests than were logged",
                    k.as_str()
                );
            }
            if log.admit(kind, now) {
                tracing::warn!(
                    kind = kind.as_str(),
                    source = %source(rdata),
                    code = kind.code(),
                    "security: refused a {} request from outside",
                    String::from_utf8_lossy(name)
                );
            }
        });
        i32::from(kind.code())
    });
    // A panic here refuses the request: letting an unchecked request through is worse.
    outcome.unwrap_or_else(|payload| {
        crate::panics::caught("the SIP edge filter", payload.as_ref());
        500
    })
}

/// # Safety
/// `s` must point at `slen` readable bytes (or be empty).
unsafe fn pj_bytes(s: &sys::pj_str_t) -> &[u8] {
    if s.ptr.is_null() || s.slen <= 0 {
        return &[];
    }
    // SAFETY: the caller guarantees `slen` readable bytes at `ptr`.
    unsafe { std::slice::from_raw_parts(s.ptr.cast::<u8>(), s.slen as usize) }
}

fn has_header(rdata: *const sys::pjsip_rx_data, name: &std::ffi::CStr) -> bool {
    // SAFETY: the shim passes the rx data of the request being received; its parsed message
    // is valid during the callback (the shim checked msg != NULL).
    let msg = unsafe { rdata.as_ref().map(|r| r.msg_info.msg) };
    let Some(msg) = msg.filter(|m| !m.is_null()) else {
        return false;
    };
    let name = crate::pjstr::borrow(name);
    // SAFETY: `msg` is valid (above); the name is only read during the call.
    !unsafe { sys::pjsip_msg_find_hdr_by_name(msg, &name, std::ptr::null_mut()) }.is_null()
}

fn source(rdata: *const sys::pjsip_rx_data) -> String {
    // SAFETY: as in `has_header`; pkt_info is filled by the transport before any module runs.
    match unsafe { rdata.as_ref() } {
        Some(r) => format!(
            "{}:{}",
            crate::pjstr::from_c_array(&r.pkt_info.src_name),
            r.pkt_info.src_port
        ),
        None => String::from("?"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refer_and_replaces_are_forbidden() {
        assert_eq!(refusal(b"REFER", false), Some(RefusedKind::Refer));
        assert_eq!(refusal(b"INVITE", true), Some(RefusedKind::Replaces));
        assert_eq!(RefusedKind::Refer.code(), 403);
        assert_eq!(RefusedKind::Replaces.code(), 403);
    }

    #[test]
    fn methods_we_do_not_serve_get_405() {
        for (m, k) in [
            (&b"SUBSCRIBE"[..], RefusedKind::Subscribe),
            (b"PUBLISH", RefusedKind::Publish),
            (b"MESSAGE", RefusedKind::Message),
        ] {
            assert_eq!(refusal(m, false), Some(k));
            assert_eq!(k.code(), 405);
        }
    }

    #[test]
    fn calls_and_their_requests_pass() {
        for m in [
            &b"INVITE"[..],
            b"ACK",
            b"BYE",
            b"CANCEL",
            b"OPTIONS",
            b"INFO",
            b"UPDATE",
            b"PRACK",
            b"NOTIFY",
        ] {
            assert_eq!(refusal(m, false), None, "{}", String::from_utf8_lossy(m));
        }
        assert_eq!(refusal(b"BYE", true), None);
        assert_eq!(refusal(b"", false), None);
        assert_eq!(refusal(&[0xff; 64], false), None);
    }

    #[test]
    fn any_spelling_of_a_refused_method_is_refused() {
        assert_eq!(refusal(b"refer", false), Some(RefusedKind::Refer));
        assert_eq!(refusal(b"Subscribe", false), Some(RefusedKind::Subscribe));
        assert_eq!(refusal(b"invite", true), Some(RefusedKind::Replaces));
    }
}
