//! Conference wiring: a call's media port in the 48 kHz bridge, connected both ways to the
//! call's stream slot, and what that stream negotiated.
//!
//! The port is created the first time the call's media becomes active (its queues were made
//! with the call record) and reconnected whenever pjsua gives the call a new stream slot (hold,
//! re-INVITE). It is removed from the bridge and destroyed when the call ends; its memory is
//! freed only in the port's `on_destroy` (see `port.rs`).

use pjsip_sys as sys;

use super::calls::CallRecord;
use crate::error::{Error, Result};
use crate::event::MediaInfo;
use crate::pjsua::Pjsua;
use crate::port::PortHandle;

pub(super) fn audio_media_index(info: &sys::pjsua_call_info) -> Option<u32> {
    info.media[..(info.media_cnt as usize).min(info.media.len())]
        .iter()
        .position(|m| m.type_ == sys::PJMEDIA_TYPE_AUDIO)
        .map(|i| i as u32)
}

pub(super) fn media_info(pj: Pjsua, idx: sys::pjsua_call_id, med: u32) -> MediaInfo {
    pj.call_audio_stream_info(idx, med)
        .unwrap_or_else(|_| MediaInfo {
            codec: String::new(),
            clock_rate: 0,
            channels: 0,
            remote_rtp: String::new(),
        })
}

/// Creates the call's port on first use and connects it both ways to `slot`.
pub(super) fn attach_port(
    pj: Pjsua,
    record: &mut CallRecord,
    slot: sys::pjsua_conf_port_id,
) -> Result<()> {
    if record.port.is_none() {
        let (uplink, downlink, tap) = record
            .pending_rt
            .take()
            .ok_or_else(|| Error::Internal("media queues already used".into()))?;
        // A per-call pool, released with the port in on_destroy.
        let pool = pj.pool_create(c"va-call")?;
        let mut port = PortHandle::new(uplink, downlink, tap, pool)?;
        match pj.conf_add_port(port.pool(), port.as_pjmedia_port()) {
            Ok(port_slot) => port.slot = Some(port_slot),
            Err(e) => {
                port.destroy();
                return Err(e);
            }
        }
        record.port = Some(port);
    }
    let port_slot = record
        .port
        .as_ref()
        .and_then(|p| p.slot)
        .ok_or_else(|| Error::Internal("port without slot".into()))?;
    if record.connected_to == Some(slot) {
        return Ok(());
    }
    // Both slots are live: the call's was just read from pjsua_call_get_info, ours is added.
    pj.conf_connect(slot, port_slot)?;
    pj.conf_connect(port_slot, slot)?;
    record.connected_to = Some(slot);
    Ok(())
}

/// Removes the call's port from the bridge and destroys it (freed in on_destroy).
pub(super) fn detach_port(pj: Pjsua, record: &mut CallRecord) {
    if let Some(port) = record.port.take() {
        if let Some(slot) = port.slot {
            if let Err(e) = pj.conf_remove_port(slot) {
                tracing::warn!(call = %record.id, "{e}");
            }
        }
        port.destroy();
    }
    record.connected_to = None;
}
