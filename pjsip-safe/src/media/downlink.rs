//! Downlink: the bot's voice, from the bridge task to PJSIP's clock thread.
//!
//! The API side pushes PCM in whatever chunks the model delivers (OpenAI sends 20–100 ms blocks,
//! resampling produces odd lengths), each tagged with a caller-chosen key (e.g. the response
//! item). The queue re-frames it into exact 960-sample frames, carrying a partial frame across
//! pushes, so the real-time side only ever copies one whole frame.
//!
//! # Played accounting
//!
//! To truncate a response on barge-in, the bridge must tell the model how much of it the caller
//! actually heard. Every pushed sample gets a stream position (frame `n` = positions
//! `n*960 ..`); the API side keeps, per key, the positions its samples occupy (`ledger`), and the
//! real-time side publishes one number: how many frames of the stream it has handed to PJSIP.
//! `played_samples(key)` is the key's positions below that mark, so it is exact even when one
//! frame ends one response and starts the next, and padding never counts.
//!
//! # Flush (barge-in) and its race
//!
//! The real-time side's published mark shares one `AtomicU64` with a flush epoch
//! (`epoch << 40 | played_frames`). Every queued frame carries the epoch it was pushed in.
//! `get_frame` pops a frame, copies it out, then commits with a compare-exchange that succeeds
//! only if the epoch is still the frame's; `flush` bumps the epoch with one `fetch_add`, which
//! also tells it exactly how many frames had been committed, then drains the queue. So each frame
//! is either committed before the flush (counted as played) or fails its commit (`get_frame`
//! returns `false` for it and it is counted as discarded); there is no third case. Once `flush`
//! has returned, no `get_frame` can return a frame pushed before it, including one that was popped
//! but not yet committed when the flush began. The only pre-flush frame that can still reach the
//! caller is one whose commit preceded the flush: PJSIP took it in the tick before the flush.
//!
//! The epoch is 24 bits and wraps; a stale frame is only ever in the hands of one in-flight
//! `get_frame`, so a wrap would need 16 million flushes during a single call of it. 40 bits of
//! frames last 700 years at 50 frames per second.
//!
//! # When audio was played
//!
//! Latency is measured to the moment a sample is handed to PJSIP, not to the moment it was
//! queued. The real-time side already reads the clock for its own timing; it also writes, per
//! committed frame, one word into a small ring (`time since the queue was made << 20 | seq`).
//! The API side asks [`DownlinkApi::playback_of`] about a stream position: the ring answers for
//! the last [`PLAYED_RING`] frames (1.28 s), which is ample for a bridge that looks every tick.
//!
//! # Backpressure
//!
//! The queue is bounded and the model sends audio faster than real time, so `push` is
//! all-or-nothing: if the whole frames the chunk would complete do not fit, nothing is taken and
//! [`PushError::Full`] says how much room there is; the bridge keeps the chunk and retries after
//! the next tick. Only the real-time side and `flush` free slots, so room seen by `push` cannot
//! shrink before it is used.

use std::future::poll_fn;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use atomic_waker::AtomicWaker;
use crossbeam_queue::ArrayQueue;
use crossbeam_utils::CachePadded;

use super::frame::{Frame, FRAME_SAMPLES};
use super::ledger::Ledger;
use super::stats::{Counters, HighWater, QueueStats};

const EPOCH_SHIFT: u32 = 40;
const PLAYED_MASK: u64 = (1 << EPOCH_SHIFT) - 1;
const EPOCH_MASK: u32 = (1 << (64 - EPOCH_SHIFT)) - 1;
/// Frames one `get_frame` may pop while skipping frames a concurrent flush has invalidated.
/// Bounds the real-time call; after that it reports an underrun and the flush's drain does the rest.
const MAX_POPS_PER_CALL: usize = 8;
const FRAME: u64 = FRAME_SAMPLES as u64;
/// Frames whose play time is remembered.
pub const PLAYED_RING: usize = 64;
/// Low bits of a ring word that hold the frame's sequence number (to spot overwritten slots).
const RING_SEQ_BITS: u32 = 20;
const RING_SEQ_MASK: u64 = (1 << RING_SEQ_BITS) - 1;

#[inline]
fn epoch_of(word: u64) -> u32 {
    (word >> EPOCH_SHIFT) as u32 & EPOCH_MASK
}

#[inline]
fn played_of(word: u64) -> u64 {
    word & PLAYED_MASK
}

#[inline]
fn pack(epoch: u32, played: u64) -> u64 {
    (u64::from(epoch & EPOCH_MASK) << EPOCH_SHIFT) | (played & PLAYED_MASK)
}

struct DownFrame {
    seq: u64,
    epoch: u32,
    samples: Frame,
}

struct Shared {
    queue: ArrayQueue<DownFrame>,
    /// `epoch << 40 | frames committed (seq of the last played frame + 1)`; written by the
    /// real-time side (commit) and by `flush` (epoch bump) only.
    state: CachePadded<AtomicU64>,
    /// Played-frame count at which the real-time side wakes `drain_waker`; `u64::MAX` = nobody waits.
    drain_target: AtomicU64,
    drain_waker: AtomicWaker,
    /// Set by the real-time side; the relay wakes `drain_waker` and clears it.
    drain_pending: AtomicBool,
    /// Set once when the real-time half is dropped.
    closed: AtomicBool,
    counters: Counters,
    high_water: HighWater,
    /// Zero point of the ring's times.
    origin: Instant,
    /// Slot `seq % PLAYED_RING`: `(µs since origin + 1) << 20 | seq & RING_SEQ_MASK`, 0 = never.
    played_at: [AtomicU64; PLAYED_RING],
}

impl super::relay::Wakeable for Shared {
    fn wake_if_pending(&self) {
        if self.drain_pending.swap(false, Ordering::AcqRel) {
            self.drain_waker.wake();
        }
    }
}

impl Shared {
    /// Real-time side: leave the wake to the relay (see `relay.rs`).
    #[inline]
    fn wake_drained(&self) {
        self.drain_pending.store(true, Ordering::Release);
        super::relay::notify();
    }
}

impl Shared {
    fn stats(&self) -> QueueStats {
        self.counters.snapshot(
            self.queue.capacity(),
            self.queue.len(),
            self.high_water.tripped(),
        )
    }
}

/// Copies `frame` into `out` and marks it played, unless a flush has begun since it was
/// pushed. The compare-exchange is the point at which a frame counts as played: a flush either
/// sees it (and does not discard it) or makes it fail.
#[inline]
fn commit(shared: &Shared, frame: &DownFrame, out: &mut Frame) -> bool {
    let word = shared.state.load(Ordering::SeqCst);
    if epoch_of(word) != frame.epoch {
        return false;
    }
    *out = frame.samples;
    shared
        .state
        .compare_exchange(
            word,
            pack(frame.epoch, frame.seq.wrapping_add(1)),
            Ordering::SeqCst,
            Ordering::SeqCst,
        )
        .is_ok()
}

/// Creates a downlink queue with room for `capacity` frames; all memory is allocated here.
pub fn channel(capacity: NonZeroUsize) -> (DownlinkRt, DownlinkApi) {
    let capacity = capacity.get();
    let shared = Arc::new(Shared {
        queue: ArrayQueue::new(capacity),
        state: CachePadded::new(AtomicU64::new(pack(0, 0))),
        drain_target: AtomicU64::new(u64::MAX),
        drain_waker: AtomicWaker::new(),
        drain_pending: AtomicBool::new(false),
        closed: AtomicBool::new(false),
        counters: Counters::default(),
        high_water: HighWater::new(capacity),
        origin: Instant::now(),
        played_at: std::array::from_fn(|_| AtomicU64::new(0)),
    });
    let relay_target: Arc<dyn super::relay::Wakeable> = shared.clone();
    super::relay::register(Arc::downgrade(&relay_target));
    (
        DownlinkRt {
            shared: shared.clone(),
        },
        DownlinkApi {
            shared,
            partial: Box::new([0; FRAME_SAMPLES]),
            partial_len: 0,
            next_seq: 0,
            epoch: 0,
            last_flush_seq: 0,
            flushed: 0..0,
            ledger: Ledger::default(),
        },
    )
}

/// The real-time half: owned by the media port, drained by PJSIP's `get_frame` callback.
/// Dropping it closes the queue (pushes then fail with [`PushError::Closed`]).
pub struct DownlinkRt {
    shared: Arc<Shared>,
}

impl DownlinkRt {
    /// Copies the next frame into `out` and returns `true`, or returns `false` if there is
    /// nothing to play (then `out` may hold garbage: play silence or return NONE instead).
    ///
    /// Never blocks, allocates, logs or panics. Cost: one queue pop, one 1.9 kB copy, one
    /// compare-exchange; plus, only when `wait_drained` is waiting and this was the last
    /// queued frame, two atomic stores for the relay (which does the actual wake).
    #[inline]
    pub fn get_frame(&mut self, out: &mut Frame) -> bool {
        self.get_frame_at(out, Instant::now())
    }

    /// [`get_frame`](Self::get_frame) with the caller's reading of the clock, recorded as the
    /// frame's play time (the media port reads it anyway for its own timing).
    #[inline]
    pub fn get_frame_at(&mut self, out: &mut Frame, now: Instant) -> bool {
        let shared = &*self.shared;
        for _ in 0..MAX_POPS_PER_CALL {
            let Some(frame) = shared.queue.pop() else {
                break;
            };
            // The play time goes in before the commit makes the frame count as played, so a
            // reader that sees it played finds its time. A frame whose commit then fails was
            // flushed: `playback_of` knows the flushed range and ignores its slot.
            let us = now.saturating_duration_since(shared.origin).as_micros() as u64;
            shared.played_at[(frame.seq % PLAYED_RING as u64) as usize].store(
                ((us + 1) << RING_SEQ_BITS) | (frame.seq & RING_SEQ_MASK),
                Ordering::SeqCst,
            );
            if !commit(shared, &frame, out) {
                // Pushed before a flush that has begun: discarded (the flush counted it).
                Counters::add(&shared.counters.flush_races, 1);
                continue;
            }
            let played = frame.seq.wrapping_add(1);
            Counters::add(&shared.counters.frames_out, 1);
            let target = shared.drain_target.load(Ordering::SeqCst);
            if played >= target
                && shared
                    .drain_target
                    .compare_exchange(target, u64::MAX, Ordering::SeqCst, Ordering::Relaxed)
                    .is_ok()
            {
                shared.wake_drained();
            }
            return true;
        }
        Counters::add(&shared.counters.underruns, 1);
        false
    }

    /// Counters of this queue.
    pub fn stats(&self) -> QueueStats {
        self.shared.stats()
    }
}

impl Drop for DownlinkRt {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::SeqCst);
        self.shared.wake_drained();
    }
}

/// Why a push was refused. Nothing of the chunk was taken in either case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushError {
    /// The chunk would complete `needed_frames` frames but only `free_frames` slots are free.
    /// Retry after the real-time side has played some (one frame per 20 ms), or flush.
    Full {
        needed_frames: usize,
        free_frames: usize,
    },
    /// The media port is gone (call ended); nobody will play this.
    Closed,
}

impl std::fmt::Display for PushError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Full {
                needed_frames,
                free_frames,
            } => write!(
                f,
                "downlink queue full: chunk needs {needed_frames} frames, {free_frames} free; \
                 retry after playback catches up"
            ),
            Self::Closed => f.write_str("downlink closed: the media port is gone"),
        }
    }
}

impl std::error::Error for PushError {}

/// What became of the audio at one stream position; see [`DownlinkApi::playback_of`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Playback {
    /// Not handed to PJSIP yet (queued, or not even pushed).
    Pending,
    /// Handed to PJSIP's clock tick at this instant.
    Played(Instant),
    /// Discarded by a flush, or played too long ago to know when.
    Unknown,
}

/// The API half: pushes the bot's audio, flushes on barge-in, reports what was played.
pub struct DownlinkApi {
    shared: Arc<Shared>,
    /// Samples waiting for the rest of their frame.
    partial: Box<Frame>,
    partial_len: usize,
    /// Sequence number (= stream frame index) of the next frame to queue.
    next_seq: u64,
    /// Epoch stamped on frames pushed now (mirror of the state word's epoch; only `flush`
    /// changes it, and `flush` runs on this side).
    epoch: u32,
    /// `next_seq` at the last flush: frames below it are played or discarded.
    last_flush_seq: u64,
    /// Frames the last flush discarded (never played).
    flushed: std::ops::Range<u64>,
    ledger: Ledger,
}

impl DownlinkApi {
    /// Stream position (samples) the next pushed sample will have; pass it to
    /// [`playback_of`](Self::playback_of) later to learn when that sample was played.
    pub fn write_position(&self) -> u64 {
        self.write_pos()
    }

    /// When the sample at stream position `pos` was handed to PJSIP, if it has been.
    pub fn playback_of(&self, pos: u64) -> Playback {
        let seq = pos / FRAME;
        if self.flushed.contains(&seq) {
            return Playback::Unknown;
        }
        if self.played_frames() <= seq {
            return Playback::Pending;
        }
        let word =
            self.shared.played_at[(seq % PLAYED_RING as u64) as usize].load(Ordering::SeqCst);
        if word == 0 || word & RING_SEQ_MASK != seq & RING_SEQ_MASK {
            return Playback::Unknown;
        }
        let us = (word >> RING_SEQ_BITS) - 1;
        Playback::Played(self.shared.origin + Duration::from_micros(us))
    }

    /// Stream position (samples) of the next pushed sample.
    fn write_pos(&self) -> u64 {
        self.next_seq * FRAME + self.partial_len as u64
    }

    fn free_frames(&self) -> usize {
        self.shared
            .queue
            .capacity()
            .saturating_sub(self.shared.queue.len())
    }

    fn check_room(&self, frames: usize) -> Result<(), PushError> {
        if self.is_closed() {
            return Err(PushError::Closed);
        }
        let free = self.free_frames();
        if frames > free {
            return Err(PushError::Full {
                needed_frames: frames,
                free_frames: free,
            });
        }
        Ok(())
    }

    /// Moves the (full) partial frame into the queue. Room was checked by the caller, and only
    /// this side pushes, so the push cannot fail.
    fn enqueue_partial(&mut self) {
        let frame = DownFrame {
            seq: self.next_seq,
            epoch: self.epoch,
            samples: *self.partial,
        };
        let pushed = self.shared.queue.push(frame).is_ok();
        debug_assert!(pushed, "room was checked before pushing");
        self.next_seq += 1;
        self.partial_len = 0;
        let c = &self.shared.counters;
        Counters::add(&c.frames_in, 1);
        let depth = self.shared.queue.len();
        c.note_depth(depth);
        self.shared.high_water.observe(depth);
    }

    /// Appends `pcm` (any length, 48 kHz mono) to the stream as samples of `key`. Whole frames
    /// go to the queue now; a remainder waits for the next push or [`end_of_response`].
    ///
    /// All or nothing: on error nothing was taken.
    ///
    /// [`end_of_response`]: Self::end_of_response
    pub fn push(&mut self, key: u64, pcm: &[i16]) -> Result<(), PushError> {
        let frames = (self.partial_len + pcm.len()) / FRAME_SAMPLES;
        self.check_room(frames)?;
        self.ledger.append(key, self.write_pos(), pcm.len() as u64);
        let mut rest = pcm;
        while !rest.is_empty() {
            let take = (FRAME_SAMPLES - self.partial_len).min(rest.len());
            let (head, tail) = rest.split_at(take);
            self.partial[self.partial_len..self.partial_len + take].copy_from_slice(head);
            self.partial_len += take;
            rest = tail;
            if self.partial_len == FRAME_SAMPLES {
                self.enqueue_partial();
            }
        }
        Ok(())
    }

    /// Ends the response `key`: pads the partial frame (if any) with silence and queues it, so
    /// the tail is played now instead of waiting for more audio. Padding never counts as played.
    pub fn end_of_response(&mut self, key: u64) -> Result<(), PushError> {
        self.ledger.touch(key);
        if self.partial_len == 0 {
            return Ok(());
        }
        self.check_room(1)?;
        self.partial[self.partial_len..].fill(0);
        self.partial_len = FRAME_SAMPLES;
        self.enqueue_partial();
        Ok(())
    }

    /// Barge-in: discards everything queued and the partial frame, at once. Returns how many
    /// pushed samples (padding excluded) will now never be played.
    ///
    /// After this returns, the real-time side will not hand PJSIP any frame pushed before it
    /// (see the module docs for the exact guarantee), and `played_samples` is final for every
    /// key pushed before it.
    pub fn flush(&mut self) -> u64 {
        let old = self
            .shared
            .state
            .fetch_add(1 << EPOCH_SHIFT, Ordering::SeqCst);
        self.epoch = epoch_of(old).wrapping_add(1) & EPOCH_MASK;
        let played = played_of(old);
        // Only this side pushes, so after this loop no frame of the old epoch is queued
        // (the real-time side may hold one, whose commit will now fail).
        while self.shared.queue.pop().is_some() {}
        let unplayed = self
            .next_seq
            .saturating_sub(played.max(self.last_flush_seq));
        let c = &self.shared.counters;
        Counters::add(&c.flushes, 1);
        Counters::add(&c.flushed_frames, unplayed);
        self.partial_len = 0;
        self.flushed = played.max(self.last_flush_seq)..self.next_seq;
        self.last_flush_seq = self.next_seq;
        self.ledger.truncate(played * FRAME)
    }

    fn played_frames(&self) -> u64 {
        played_of(self.shared.state.load(Ordering::SeqCst))
    }

    /// Stream position up to which audio has been handed to PJSIP.
    fn played_pos(&self) -> u64 {
        self.played_frames() * FRAME
    }

    /// Samples of `key` (padding excluded) handed to PJSIP so far. Exact; after a flush it stays
    /// fixed at what was played before the flush.
    pub fn played_samples(&self, key: u64) -> u64 {
        self.ledger.played(key, self.played_pos())
    }

    /// Samples pushed under `key` (including any later discarded by a flush).
    pub fn received_samples(&self, key: u64) -> u64 {
        self.ledger.received(key)
    }

    /// Forgets a key's accounting (the ledger otherwise keeps every key of the call).
    pub fn forget(&mut self, key: u64) {
        self.ledger.forget(key);
    }

    /// Keys currently tracked.
    pub fn tracked_keys(&self) -> usize {
        self.ledger.len()
    }

    fn queue_played(&self) -> bool {
        self.played_frames().max(self.last_flush_seq) >= self.next_seq
    }

    /// Everything pushed has been played or flushed, and no partial frame waits for more audio.
    pub fn is_drained(&self) -> bool {
        self.partial_len == 0 && self.queue_played()
    }

    /// Waits until every frame queued so far has been handed to PJSIP (or flushed), or the port
    /// is gone. A partial frame is not queued: call [`end_of_response`] first to include it.
    ///
    /// [`end_of_response`]: Self::end_of_response
    pub async fn wait_drained(&mut self) {
        poll_fn(|cx| {
            let done = |this: &Self| this.queue_played() || this.is_closed();
            if done(self) {
                self.shared.drain_target.store(u64::MAX, Ordering::SeqCst);
                return Poll::Ready(());
            }
            self.shared.drain_waker.register(cx.waker());
            self.shared
                .drain_target
                .store(self.next_seq, Ordering::SeqCst);
            // Re-check: the last frame may have been committed before the target was visible.
            if done(self) {
                self.shared.drain_target.store(u64::MAX, Ordering::SeqCst);
                return Poll::Ready(());
            }
            Poll::Pending
        })
        .await
    }

    /// Whole frames queued now (not counting the partial frame).
    pub fn queued_frames(&self) -> usize {
        self.shared.queue.len()
    }

    /// Samples waiting in the partial frame.
    pub fn pending_samples(&self) -> usize {
        self.partial_len
    }

    /// Frames `push` can queue now.
    pub fn free_capacity(&self) -> usize {
        self.free_frames()
    }

    /// True once the real-time half has been dropped.
    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::SeqCst)
    }

    /// True exactly once, the first time it is called after the queue passed 50 %.
    pub fn take_high_water(&self) -> bool {
        self.shared.high_water.take()
    }

    /// Counters of this queue.
    pub fn stats(&self) -> QueueStats {
        self.shared.stats()
    }
}

impl Drop for DownlinkApi {
    fn drop(&mut self) {
        // Drop a registered waker here rather than on the clock thread.
        drop(self.shared.drain_waker.take());
    }
}

#[cfg(test)]
mod tests;
