//! Per-call audio queues between PJSIP's real-time "clock" thread and the async bridge.
//!
//! PJSIP calls a call's media port every 20 ms (and in catch-up bursts after a stall) on its
//! clock thread, which also runs every other call's codecs. Anything slow there is heard as
//! crackle on every call, so the port must not allocate, block, log or panic. These queues are
//! the boundary: the port owns only the real-time halves ([`MediaRt`]); the bridge task owns the
//! API halves ([`MediaApi`]), where waiting, logging and bookkeeping are allowed.
//!
//! * Uplink (caller → bot): [`UplinkRt::put_frame`] copies each 20 ms frame into a preallocated
//!   ring, overwriting the oldest when the bridge falls behind, and wakes the consumer.
//! * Downlink (bot → caller): [`DownlinkApi::push`] re-frames PCM of any chunk size;
//!   [`DownlinkRt::get_frame`] pops one frame; [`DownlinkApi::flush`] discards everything on
//!   barge-in; [`DownlinkApi::played_samples`] says exactly what the caller heard of each
//!   response.
//!
//! # Real-time invariants
//!
//! The real-time methods (`UplinkRt::put_frame*`, `DownlinkRt::get_frame`) touch only memory
//! allocated in [`call_queues`], use atomics and `crossbeam_queue::ArrayQueue` (lock-free), do no
//! arithmetic that can overflow-panic and no indexing, and never log. The one thing they may
//! reach beyond atomics is a registered consumer's `Waker` (see the uplink module for its cost).
//! Both take `&mut self`, so each direction has one real-time caller at a time by construction.
//! The halves are `Send + Sync`; a port holding both may hand `&mut` to each from different
//! threads (PJSIP 2.16+'s parallel bridge) as they share nothing but the atomics.
//!
//! Memory: each slot holds a whole frame (1.9 kB), so the default 500 + 500 slots cost about
//! 1.9 MB per call, allocated once when the call's queues are created.

mod downlink;
mod frame;
mod ledger;
pub mod relay;
mod stats;
pub mod tap;
mod uplink;

use std::num::NonZeroUsize;

pub use downlink::{
    channel as downlink_channel, DownlinkApi, DownlinkRt, Playback, PushError, PLAYED_RING,
};
pub use frame::{Frame, UplinkFrame, FRAME_MS, FRAME_SAMPLES, SAMPLE_RATE, SILENCE};
pub use stats::{MediaStats, QueueStats};
pub use tap::{tap_channel, RecordingTap, TapRead, TapRt};
pub use uplink::{channel as uplink_channel, RecvTimeoutError, TryRecvError, UplinkApi, UplinkRt};

/// Default depth of each queue: 500 frames = 10 s.
pub const DEFAULT_QUEUE_FRAMES: NonZeroUsize = match NonZeroUsize::new(500) {
    Some(n) => n,
    None => unreachable!(),
};

/// Queue depths of one call, in 20 ms frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueConfig {
    /// Caller audio the bridge may lag behind before the oldest is dropped.
    pub uplink_frames: NonZeroUsize,
    /// Bot audio that may be queued ahead of playback.
    pub downlink_frames: NonZeroUsize,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            uplink_frames: DEFAULT_QUEUE_FRAMES,
            downlink_frames: DEFAULT_QUEUE_FRAMES,
        }
    }
}

/// The halves the media port owns; called only from PJSIP's callbacks.
pub struct MediaRt {
    pub uplink: UplinkRt,
    pub downlink: DownlinkRt,
}

impl MediaRt {
    /// Counters of both directions.
    pub fn stats(&self) -> MediaStats {
        MediaStats {
            uplink: self.uplink.stats(),
            downlink: self.downlink.stats(),
        }
    }
}

/// The halves the bridge task owns.
pub struct MediaApi {
    pub uplink: UplinkApi,
    pub downlink: DownlinkApi,
}

impl MediaApi {
    /// Counters of both directions.
    pub fn stats(&self) -> MediaStats {
        MediaStats {
            uplink: self.uplink.stats(),
            downlink: self.downlink.stats(),
        }
    }
}

/// Creates both queues of one call. All their memory is allocated here, on the caller's thread.
pub fn call_queues(config: &QueueConfig) -> (MediaRt, MediaApi) {
    let (up_rt, up_api) = uplink::channel(config.uplink_frames);
    let (down_rt, down_api) = downlink::channel(config.downlink_frames);
    (
        MediaRt {
            uplink: up_rt,
            downlink: down_rt,
        },
        MediaApi {
            uplink: up_api,
            downlink: down_api,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halves_are_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<MediaRt>();
        check::<MediaApi>();
    }

    #[test]
    fn call_queues_wires_both_directions() {
        let (mut rt, mut api) = call_queues(&QueueConfig::default());
        rt.uplink.put_frame(&[3; FRAME_SAMPLES]);
        assert_eq!(api.uplink.try_recv().unwrap().samples, [3; FRAME_SAMPLES]);
        api.downlink.push(1, &[4; FRAME_SAMPLES]).unwrap();
        let mut out = SILENCE;
        assert!(rt.downlink.get_frame(&mut out));
        assert_eq!(out, [4; FRAME_SAMPLES]);
        let s = api.stats();
        assert_eq!(s.uplink.capacity, 500);
        assert_eq!(s.downlink.frames_out, 1);
        assert_eq!(rt.stats(), s);
    }
}
