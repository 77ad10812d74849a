//! The custom `pjmedia_port` that connects a call's conference slot to our media queues.
//!
//! PJSIP's "clock" thread calls `put_frame` (caller audio, bridge → us) and `get_frame` (our
//! audio, us → bridge) every 20 ms. Those two callbacks are real-time code: they only copy 960
//! samples into or out of preallocated lock-free queues and bump atomic counters. No allocation,
//! no lock that can block, no logging, and no panic can escape into C.
//!
//! Lifetime: the port is a `Box<BotPort>` whose first field is the `pjmedia_port`, so PJSIP's
//! pointer is ours. It is freed only in `on_destroy`, which PJSIP calls from
//! `pjmedia_port_destroy` (2.12: synchronously; 2.15+: on the clock thread once the bridge has
//! let go of it). Freeing it right after `pjsua_conf_remove_port` would be a use-after-free on
//! 2.15+.

use std::ffi::CStr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr::NonNull;

use pjsip_sys as sys;

use crate::media::{DownlinkRt, Frame, MediaStats, UplinkRt, FRAME_SAMPLES, SAMPLE_RATE, SILENCE};

const FRAME_BYTES: usize = FRAME_SAMPLES * 2;
/// `PJMEDIA_SIGNATURE('V','A','B','P')`: "voiceagent bot port".
const SIGNATURE: u32 = sys::pjmedia_signature(b'V', b'A', b'B', b'P');
static PORT_NAME: &CStr = c"voiceagent-call";

/// A call's media port. `#[repr(C)]` with `base` first, so `*mut pjmedia_port` from PJSIP is a
/// `*mut BotPort`.
#[repr(C)]
pub(crate) struct BotPort {
    base: sys::pjmedia_port,
    /// Pool given to `pjsua_conf_add_port` (2.12 allocates the bridge's per-port state in it and
    /// never frees it); released together with the port in `on_destroy`.
    pool: *mut sys::pj_pool_t,
    uplink: UplinkRt,
    downlink: DownlinkRt,
}

/// Owner of a live port on the pjlib thread. Dropping it does not free the port: call
/// [`PortHandle::destroy`] after removing it from the bridge.
pub(crate) struct PortHandle {
    port: NonNull<BotPort>,
    /// Bridge slot while added.
    pub(crate) slot: Option<sys::pjsua_conf_port_id>,
}

impl PortHandle {
    /// Creates the port (48 kHz, mono, 16 bit, 960 samples per frame) around the RT halves of a
    /// call's queues.
    pub(crate) fn new(
        uplink: UplinkRt,
        downlink: DownlinkRt,
        pool: *mut sys::pj_pool_t,
    ) -> crate::Result<Self> {
        let mut port = Box::new(BotPort {
            base: sys::pjmedia_port::default(),
            pool,
            uplink,
            downlink,
        });
        let name = crate::pjstr::borrow(PORT_NAME);
        // SAFETY: `port.base.info` is valid memory we own; the name is 'static as PJSIP requires
        // (pjmedia_port_info_init keeps the pointer, it does not copy).
        let status = unsafe {
            sys::pjmedia_port_info_init(
                &mut port.base.info,
                &name,
                SIGNATURE,
                SAMPLE_RATE,
                1,
                16,
                FRAME_SAMPLES as u32,
            )
        };
        crate::error::check(status, "pjmedia_port_info_init")?;
        port.base.put_frame = Some(put_frame);
        port.base.get_frame = Some(get_frame);
        port.base.on_destroy = Some(on_destroy);
        let raw = Box::into_raw(port);
        Ok(Self {
            // SAFETY: Box::into_raw never returns null.
            port: unsafe { NonNull::new_unchecked(raw) },
            slot: None,
        })
    }

    pub(crate) fn as_pjmedia_port(&self) -> *mut sys::pjmedia_port {
        self.port.as_ptr().cast()
    }

    /// Counters of both queues, readable from the pjlib thread while the port is live.
    pub(crate) fn stats(&self) -> MediaStats {
        // SAFETY: the port is live until `destroy`; the stats are atomics, safe to read while
        // the clock thread runs the callbacks.
        let port = unsafe { self.port.as_ref() };
        MediaStats {
            uplink: port.uplink.stats(),
            downlink: port.downlink.stats(),
        }
    }

    /// Destroys the port: PJSIP calls `on_destroy`, which frees it (now on 2.12, later on the
    /// clock thread on 2.15+). Must be called on the pjlib thread, after the port was removed
    /// from the bridge.
    pub(crate) fn destroy(self) {
        // SAFETY: the port was created by `new` and is destroyed exactly once (self is consumed).
        let status = unsafe { sys::pjmedia_port_destroy(self.as_pjmedia_port()) };
        if status != sys::PJ_SUCCESS as sys::pj_status_t {
            tracing::warn!("pjmedia_port_destroy: {}", crate::error::pj_message(status));
        }
    }
}

/// Bridge → us: the caller's audio, mixed by the bridge. Called every tick, connected or not;
/// without a transmitter the frame is a NONE "heartbeat" with a null buffer.
unsafe extern "C" fn put_frame(
    this: *mut sys::pjmedia_port,
    frame: *mut sys::pjmedia_frame,
) -> sys::pj_status_t {
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: PJSIP passes the port we registered (a BotPort, see the struct docs) and a
        // valid frame. Only the uplink half is borrowed: a parallel bridge (2.16+) may run
        // get_frame for this port on another thread at the same time.
        let (uplink, frame) = unsafe {
            (
                &mut *std::ptr::addr_of_mut!((*this.cast::<BotPort>()).uplink),
                &*frame,
            )
        };
        if frame.type_ == sys::PJMEDIA_FRAME_TYPE_AUDIO
            && !frame.buf.is_null()
            && frame.size >= FRAME_BYTES
        {
            // SAFETY: the buffer holds at least 960 i16 samples (checked size), and the bridge
            // allocates its frame buffers as pj_int16_t arrays, so it is 2-byte aligned.
            let samples = unsafe { &*frame.buf.cast::<Frame>() };
            uplink.put_frame(samples);
        }
    }));
    sys::PJ_SUCCESS as sys::pj_status_t
}

/// Us → bridge: the next 20 ms of what the caller should hear, or silence. The bridge does not
/// initialise the frame type, so it is always set.
unsafe extern "C" fn get_frame(
    this: *mut sys::pjmedia_port,
    frame: *mut sys::pjmedia_frame,
) -> sys::pj_status_t {
    let result = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: as in put_frame; only the downlink half is borrowed.
        let (downlink, frame) = unsafe {
            (
                &mut *std::ptr::addr_of_mut!((*this.cast::<BotPort>()).downlink),
                &mut *frame,
            )
        };
        if frame.buf.is_null() || frame.size < FRAME_BYTES {
            frame.type_ = sys::PJMEDIA_FRAME_TYPE_NONE;
            return;
        }
        // SAFETY: checked above: at least 960 samples, 2-byte aligned bridge buffer.
        let out = unsafe { &mut *frame.buf.cast::<Frame>() };
        if !downlink.get_frame(out) {
            *out = SILENCE;
        }
        frame.type_ = sys::PJMEDIA_FRAME_TYPE_AUDIO;
        frame.size = FRAME_BYTES;
    }));
    if result.is_err() {
        // SAFETY: `frame` is valid (see above); tell the bridge there is nothing to mix.
        unsafe { (*frame).type_ = sys::PJMEDIA_FRAME_TYPE_NONE };
    }
    sys::PJ_SUCCESS as sys::pj_status_t
}

/// Frees the port and its pool. PJSIP calls it exactly once, after the bridge is done with it.
unsafe extern "C" fn on_destroy(this: *mut sys::pjmedia_port) -> sys::pj_status_t {
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: `this` came from Box::into_raw in PortHandle::new and PJSIP calls on_destroy
        // once; nothing touches the port after this.
        let port = unsafe { Box::from_raw(this.cast::<BotPort>()) };
        let pool = port.pool;
        drop(port);
        if !pool.is_null() {
            // SAFETY: the pool was created for this port alone and nothing else uses it now.
            unsafe { sys::pj_pool_release(pool) };
        }
    }));
    sys::PJ_SUCCESS as sys::pj_status_t
}
