//! The recording tap: a copy of each tick's two frames (what the caller said, what the caller
//! heard) for a recorder that runs off the real-time path.
//!
//! Two bounded lock-free queues, one per direction, filled by the media port's `put_frame` and
//! `get_frame` (one frame each per bridge tick, silence included, so both stay in step) and
//! drained in pairs by the recorder. The real-time side never blocks: when the recorder falls
//! behind by more than the capacity, new frames are dropped and counted, and the recorder pads
//! the gap so both channels stay aligned.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_queue::ArrayQueue;

use super::frame::{Frame, SILENCE};

/// Frames each direction may queue for the recorder (2 s).
pub const TAP_FRAMES: usize = 100;

struct Shared {
    up: ArrayQueue<Frame>,
    down: ArrayQueue<Frame>,
    dropped_up: AtomicU64,
    dropped_down: AtomicU64,
    closed: AtomicBool,
}

/// Creates a tap: the real-time half goes into the media port, the other to the recorder.
pub fn tap_channel() -> (TapRt, RecordingTap) {
    let shared = Arc::new(Shared {
        up: ArrayQueue::new(TAP_FRAMES),
        down: ArrayQueue::new(TAP_FRAMES),
        dropped_up: AtomicU64::new(0),
        dropped_down: AtomicU64::new(0),
        closed: AtomicBool::new(false),
    });
    (
        TapRt {
            shared: shared.clone(),
        },
        RecordingTap { shared },
    )
}

/// The media port's half. Never blocks, allocates or logs.
pub struct TapRt {
    shared: Arc<Shared>,
}

impl TapRt {
    /// The caller's frame of this tick (silence when PJSIP had none).
    #[inline]
    pub fn caller(&self, frame: &Frame) {
        if self.shared.up.push(*frame).is_err() {
            self.shared.dropped_up.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// What the caller hears in this tick.
    #[inline]
    pub fn agent(&self, frame: &Frame) {
        if self.shared.down.push(*frame).is_err() {
            self.shared.dropped_down.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Drop for TapRt {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::Release);
    }
}

/// The recorder's half: pairs of frames, caller and agent, 20 ms each.
pub struct RecordingTap {
    shared: Arc<Shared>,
}

/// What [`RecordingTap::next_pair`] found.
#[derive(Debug)]
pub enum TapRead {
    /// The next 20 ms of both directions.
    Pair(Box<(Frame, Frame)>),
    /// Nothing yet.
    Empty,
    /// The call's port is gone and everything was read.
    Closed,
}

impl RecordingTap {
    /// The next pair of frames. When one direction is ahead (the other lost frames to a full
    /// queue), silence stands in for the missing frame so the channels stay aligned.
    pub fn next_pair(&self) -> TapRead {
        let closed = self.shared.closed.load(Ordering::Acquire);
        let up_len = self.shared.up.len();
        let down_len = self.shared.down.len();
        if up_len == 0 && down_len == 0 {
            return if closed {
                TapRead::Closed
            } else {
                TapRead::Empty
            };
        }
        // Wait for the other direction of this tick, unless the port is gone.
        if (up_len == 0 || down_len == 0) && !closed && up_len.max(down_len) < TAP_FRAMES / 2 {
            return TapRead::Empty;
        }
        let up = self.shared.up.pop().unwrap_or(SILENCE);
        let down = self.shared.down.pop().unwrap_or(SILENCE);
        TapRead::Pair(Box::new((up, down)))
    }

    /// Waits up to `timeout` for a pair (polling: the recorder is not latency-critical).
    pub fn next_pair_timeout(&self, timeout: Duration) -> TapRead {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            match self.next_pair() {
                TapRead::Empty if std::time::Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                other => return other,
            }
        }
    }

    /// Frames lost because the recorder fell behind (caller, agent).
    pub fn dropped(&self) -> (u64, u64) {
        (
            self.shared.dropped_up.load(Ordering::Relaxed),
            self.shared.dropped_down.load(Ordering::Relaxed),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_come_out_in_step_and_end_after_close() {
        let (rt, tap) = tap_channel();
        let a = [1i16; 960];
        let b = [2i16; 960];
        rt.agent(&b);
        rt.caller(&a);
        match tap.next_pair() {
            TapRead::Pair(p) => assert_eq!((p.0[0], p.1[0]), (1, 2)),
            other => panic!("{other:?}"),
        }
        assert!(matches!(tap.next_pair(), TapRead::Empty));
        rt.caller(&a);
        drop(rt);
        match tap.next_pair() {
            TapRead::Pair(p) => assert_eq!((p.0[0], p.1[0]), (1, 0), "silence stands in"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(tap.next_pair(), TapRead::Closed));
    }

    #[test]
    fn a_full_tap_drops_and_counts_instead_of_blocking() {
        let (rt, tap) = tap_channel();
        for _ in 0..TAP_FRAMES + 5 {
            rt.caller(&SILENCE);
            rt.agent(&SILENCE);
        }
        assert_eq!(tap.dropped(), (5, 5));
    }
}
