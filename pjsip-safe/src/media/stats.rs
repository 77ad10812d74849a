//! Counters and the high-water flag shared by both halves of a queue.
//!
//! The real-time side must never log, so everything worth reporting (drops, underruns, a queue
//! filling up) becomes an atomic here, and the API side reads it and decides what to log. Each
//! counter has a single writer (documented per field), so contention is limited to the reader
//! pulling a cache line now and then.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};

/// Live counters of one queue. All `Relaxed`: they are statistics, not synchronisation.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) frames_in: AtomicU64,
    pub(crate) frames_out: AtomicU64,
    pub(crate) dropped_oldest: AtomicU64,
    pub(crate) underruns: AtomicU64,
    pub(crate) flushes: AtomicU64,
    pub(crate) flushed_frames: AtomicU64,
    pub(crate) flush_races: AtomicU64,
    pub(crate) max_depth: AtomicU64,
}

impl Counters {
    #[inline]
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Remembers the deepest the queue has been. A plain load first, so the common case (not a
    /// new maximum) costs no read-modify-write.
    #[inline]
    pub(crate) fn note_depth(&self, depth: usize) {
        let depth = depth as u64;
        if depth > self.max_depth.load(Ordering::Relaxed) {
            self.max_depth.fetch_max(depth, Ordering::Relaxed);
        }
    }

    pub(crate) fn snapshot(&self, capacity: usize, depth: usize, high_water: bool) -> QueueStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        QueueStats {
            capacity,
            depth,
            max_depth: get(&self.max_depth),
            frames_in: get(&self.frames_in),
            frames_out: get(&self.frames_out),
            dropped_oldest: get(&self.dropped_oldest),
            underruns: get(&self.underruns),
            flushes: get(&self.flushes),
            flushed_frames: get(&self.flushed_frames),
            flush_races: get(&self.flush_races),
            high_water_tripped: high_water,
        }
    }
}

/// A point-in-time copy of one queue's counters (fields are read one by one, so a snapshot taken
/// while both sides run is not a single atomic cut).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueStats {
    /// Slots in the queue (frames).
    pub capacity: usize,
    /// Frames queued when the snapshot was taken.
    pub depth: usize,
    /// Deepest the queue has been.
    pub max_depth: u64,
    /// Uplink: frames `put_frame` received. Downlink: whole frames queued by the API side
    /// (including a padded last frame).
    pub frames_in: u64,
    /// Uplink: frames handed to the consumer. Downlink: frames handed to PJSIP by `get_frame`.
    pub frames_out: u64,
    /// Uplink only: frames overwritten because the consumer fell `capacity` frames behind.
    pub dropped_oldest: u64,
    /// Downlink only: `get_frame` calls that found nothing to play.
    pub underruns: u64,
    /// Downlink only: `flush` calls.
    pub flushes: u64,
    /// Downlink only: queued frames discarded by `flush`.
    pub flushed_frames: u64,
    /// Downlink only: frames the real-time side had already popped when a flush invalidated
    /// them (not played; included in `flushed_frames`).
    pub flush_races: u64,
    /// The queue has passed 50 % of its capacity at least once.
    pub high_water_tripped: bool,
}

/// Both directions of one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MediaStats {
    pub uplink: QueueStats,
    pub downlink: QueueStats,
}

const ARMED: u8 = 0;
const TRIPPED: u8 = 1;
const REPORTED: u8 = 2;

/// Trips once, for the lifetime of the queue, the first time the depth passes half the capacity;
/// the API side then reports it once. Once per lifetime (not per episode) because a queue that
/// sits near 50 % would otherwise produce a warning every few frames; the counters carry the rest.
#[derive(Debug)]
pub(crate) struct HighWater {
    state: AtomicU8,
    threshold: usize,
}

impl HighWater {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            state: AtomicU8::new(ARMED),
            threshold: capacity / 2,
        }
    }

    /// Real-time safe: one relaxed load per call once tripped.
    #[inline]
    pub(crate) fn observe(&self, depth: usize) {
        if depth > self.threshold && self.state.load(Ordering::Relaxed) == ARMED {
            let _ =
                self.state
                    .compare_exchange(ARMED, TRIPPED, Ordering::Relaxed, Ordering::Relaxed);
        }
    }

    /// True exactly once, on the first call after the flag tripped.
    pub(crate) fn take(&self) -> bool {
        self.state
            .compare_exchange(TRIPPED, REPORTED, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    }

    pub(crate) fn tripped(&self) -> bool {
        self.state.load(Ordering::Relaxed) != ARMED
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn high_water_trips_once_above_half() {
        let hw = HighWater::new(10);
        hw.observe(5);
        assert!(!hw.tripped());
        assert!(!hw.take());
        hw.observe(6);
        assert!(hw.tripped());
        assert!(hw.take());
        assert!(!hw.take());
        hw.observe(10);
        hw.observe(0);
        hw.observe(9);
        assert!(!hw.take());
        assert!(hw.tripped());
    }

    #[test]
    fn max_depth_keeps_the_maximum() {
        let c = Counters::default();
        c.note_depth(3);
        c.note_depth(7);
        c.note_depth(2);
        assert_eq!(c.snapshot(10, 0, false).max_depth, 7);
    }
}
