//! Uplink: what the caller says, from PJSIP's clock thread to the bridge task.
//!
//! # Why `ArrayQueue` of inline frames
//!
//! The queue is a `crossbeam_queue::ArrayQueue<UplinkFrame>`, frames stored inline (1.9 kB per
//! slot), allocated once at creation. Its `force_push` replaces the oldest element when full in
//! one atomic step, which is exactly the "drop the oldest, never block" policy; a bounded
//! crossbeam channel would need a second receiver on the real-time side and a pop-then-push that
//! races with the consumer, and a pool of `Box`ed frames recycled through a free list would save
//! one 1.9 kB copy per frame (~50 ns) at the price of a second queue and ownership rules on the
//! API side. The copy is cheaper than the complexity.
//!
//! `ArrayQueue` is lock-free, not wait-free: if the consumer is preempted inside its own `pop`
//! (a window of a few instructions between claiming a slot and marking it free), a `force_push`
//! that needs that very slot spins with exponential backoff and eventually `yield`s until the
//! consumer thread runs again. This needs the queue to be full and a preemption at that exact
//! instruction; the bench measures the ordinary cost.
//!
//! # Waking the consumer, off the real-time thread
//!
//! After each push, `put_frame` only marks the queue pending and notifies the process-wide
//! [`relay`](super::relay) (two atomic stores). The relay thread, within about a millisecond,
//! calls [`AtomicWaker::wake`] for pending queues: `Thread::unpark` for a consumer in
//! [`UplinkApi::recv_timeout`], tokio's `Waker::wake` for a task in [`UplinkApi::recv`]. Those
//! wakes are syscalls and (for tokio) a short mutex; measured directly in `put_frame` they cost
//! p99 65 µs under load, so they do not belong on PJSIP's clock thread.
//!
//! A waker is only consumed once per registration, so a burst of catch-up frames wakes the task
//! at most once until it polls again.

use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread, ThreadId};
use std::time::{Duration, Instant};

use atomic_waker::AtomicWaker;
use crossbeam_queue::ArrayQueue;

use super::frame::{Frame, UplinkFrame};
use super::stats::{Counters, HighWater, QueueStats};

struct Shared {
    queue: ArrayQueue<UplinkFrame>,
    waker: AtomicWaker,
    /// Set by the real-time side; the relay wakes the consumer and clears it.
    pending: AtomicBool,
    /// Set once when the real-time half is dropped (the port is gone).
    closed: AtomicBool,
    counters: Counters,
    high_water: HighWater,
}

impl super::relay::Wakeable for Shared {
    fn wake_if_pending(&self) {
        if self.pending.swap(false, Ordering::AcqRel) {
            self.waker.wake();
        }
    }
}

impl Shared {
    /// Real-time side: leave the wake to the relay.
    #[inline]
    fn mark_pending(&self) {
        self.pending.store(true, Ordering::Release);
        super::relay::notify();
    }

    fn stats(&self) -> QueueStats {
        self.counters.snapshot(
            self.queue.capacity(),
            self.queue.len(),
            self.high_water.tripped(),
        )
    }
}

/// Creates an uplink queue with room for `capacity` frames; all memory is allocated here.
pub fn channel(capacity: std::num::NonZeroUsize) -> (UplinkRt, UplinkApi) {
    let capacity = capacity.get();
    let shared = Arc::new(Shared {
        queue: ArrayQueue::new(capacity),
        waker: AtomicWaker::new(),
        pending: AtomicBool::new(false),
        closed: AtomicBool::new(false),
        counters: Counters::default(),
        high_water: HighWater::new(capacity),
    });
    let relay_target: Arc<dyn super::relay::Wakeable> = shared.clone();
    super::relay::register(Arc::downgrade(&relay_target));
    (
        UplinkRt {
            shared: shared.clone(),
            next_seq: 0,
        },
        UplinkApi {
            shared,
            thread_waker: None,
        },
    )
}

/// The real-time half: owned by the media port, fed from PJSIP's `put_frame` callback.
///
/// `&mut self` methods make "one real-time caller at a time" a compile-time fact. Dropping it
/// closes the queue: the consumer drains what is left, then sees the end.
pub struct UplinkRt {
    shared: Arc<Shared>,
    next_seq: u64,
}

impl UplinkRt {
    /// Queues a copy of `samples`, timestamped now. Never blocks, allocates, logs or panics;
    /// when the queue is full the oldest frame is overwritten and counted in `dropped_oldest`.
    #[inline]
    pub fn put_frame(&mut self, samples: &Frame) {
        self.put_frame_at(samples, Instant::now());
    }

    /// [`put_frame`](Self::put_frame) with the capture time supplied by the caller.
    #[inline]
    pub fn put_frame_at(&mut self, samples: &Frame, captured_at: Instant) {
        let shared = &*self.shared;
        let frame = UplinkFrame {
            seq: self.next_seq,
            captured_at,
            samples: *samples,
        };
        self.next_seq = self.next_seq.wrapping_add(1);
        if shared.queue.force_push(frame).is_some() {
            Counters::add(&shared.counters.dropped_oldest, 1);
        }
        Counters::add(&shared.counters.frames_in, 1);
        let depth = shared.queue.len();
        shared.counters.note_depth(depth);
        shared.high_water.observe(depth);
        shared.mark_pending();
    }

    /// Counters of this queue.
    pub fn stats(&self) -> QueueStats {
        self.shared.stats()
    }
}

impl Drop for UplinkRt {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::Release);
        // May run on the clock thread (on_destroy on PJSIP 2.15+): the relay wakes the consumer.
        self.shared.mark_pending();
    }
}

/// Why [`UplinkApi::try_recv`] returned nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TryRecvError {
    /// No frame queued right now.
    Empty,
    /// The real-time half is gone and every frame has been received.
    Closed,
}

/// Why [`UplinkApi::recv_timeout`] returned nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecvTimeoutError {
    /// No frame arrived in time.
    Timeout,
    /// The real-time half is gone and every frame has been received.
    Closed,
}

impl std::fmt::Display for TryRecvError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Empty => "no uplink frame queued",
            Self::Closed => "uplink closed: the media port is gone",
        })
    }
}

impl std::fmt::Display for RecvTimeoutError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Timeout => "timed out waiting for an uplink frame",
            Self::Closed => "uplink closed: the media port is gone",
        })
    }
}

impl std::error::Error for TryRecvError {}
impl std::error::Error for RecvTimeoutError {}

/// Wakes a thread blocked in `recv_timeout`; kept alive by [`UplinkApi`] so the real-time side
/// never drops the last reference (never frees memory).
struct ThreadWaker(Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// The API half: the single consumer of the caller's audio (`&mut self` keeps it single, which
/// the one-slot waker needs).
pub struct UplinkApi {
    shared: Arc<Shared>,
    thread_waker: Option<(ThreadId, Waker)>,
}

impl UplinkApi {
    fn pop(&self) -> Option<UplinkFrame> {
        let frame = self.shared.queue.pop()?;
        Counters::add(&self.shared.counters.frames_out, 1);
        Some(frame)
    }

    fn is_closed_and_empty(&self) -> bool {
        self.shared.closed.load(Ordering::Acquire) && self.shared.queue.is_empty()
    }

    /// Takes the oldest queued frame without waiting.
    pub fn try_recv(&mut self) -> Result<UplinkFrame, TryRecvError> {
        if let Some(frame) = self.pop() {
            return Ok(frame);
        }
        if self.is_closed_and_empty() {
            // The closing store happens after the last push, so a second look is conclusive.
            return self.pop().ok_or(TryRecvError::Closed);
        }
        Err(TryRecvError::Empty)
    }

    /// Waits up to `timeout` for a frame, blocking this thread (not for async code).
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<UplinkFrame, RecvTimeoutError> {
        let deadline = Instant::now().checked_add(timeout);
        let me = thread::current();
        let waker = match &self.thread_waker {
            Some((id, waker)) if *id == me.id() => waker.clone(),
            _ => {
                let waker = Waker::from(Arc::new(ThreadWaker(me.clone())));
                self.thread_waker = Some((me.id(), waker.clone()));
                waker
            }
        };
        loop {
            match self.try_recv() {
                Ok(frame) => return Ok(frame),
                Err(TryRecvError::Closed) => return Err(RecvTimeoutError::Closed),
                Err(TryRecvError::Empty) => {}
            }
            self.shared.waker.register(&waker);
            // Re-check after registering: a frame pushed before registration woke nobody.
            match self.try_recv() {
                Ok(frame) => return Ok(frame),
                Err(TryRecvError::Closed) => return Err(RecvTimeoutError::Closed),
                Err(TryRecvError::Empty) => {}
            }
            match deadline {
                None => thread::park(),
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        return Err(RecvTimeoutError::Timeout);
                    }
                    thread::park_timeout(deadline - now);
                }
            }
        }
    }

    /// Polls for the next frame: `Ready(None)` once closed and drained.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<UplinkFrame>> {
        match self.try_recv() {
            Ok(frame) => return Poll::Ready(Some(frame)),
            Err(TryRecvError::Closed) => return Poll::Ready(None),
            Err(TryRecvError::Empty) => {}
        }
        self.shared.waker.register(cx.waker());
        match self.try_recv() {
            Ok(frame) => Poll::Ready(Some(frame)),
            Err(TryRecvError::Closed) => Poll::Ready(None),
            Err(TryRecvError::Empty) => Poll::Pending,
        }
    }

    /// Waits for the next frame; `None` once the port is gone and every frame was received.
    /// Cancel-safe: dropping the future loses no frame.
    pub async fn recv(&mut self) -> Option<UplinkFrame> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Frames queued now.
    pub fn len(&self) -> usize {
        self.shared.queue.len()
    }

    /// No frame queued now.
    pub fn is_empty(&self) -> bool {
        self.shared.queue.is_empty()
    }

    /// True once the real-time half has been dropped (frames may still be queued).
    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::Acquire)
    }

    /// True exactly once, the first time it is called after the queue passed 50 %: log one
    /// warning then.
    pub fn take_high_water(&self) -> bool {
        self.shared.high_water.take()
    }

    /// Counters of this queue.
    pub fn stats(&self) -> QueueStats {
        self.shared.stats()
    }
}

impl Drop for UplinkApi {
    fn drop(&mut self) {
        // Drop our registered waker here, not on the clock thread in a later wake: dropping a
        // task's last waker may free the task.
        drop(self.shared.waker.take());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::frame::FRAME_SAMPLES;
    use std::num::NonZeroUsize;

    fn cap(n: usize) -> NonZeroUsize {
        NonZeroUsize::new(n).unwrap()
    }

    fn frame_of(v: i16) -> Frame {
        [v; FRAME_SAMPLES]
    }

    #[test]
    fn frames_arrive_in_order_with_seq_and_timestamp() {
        let (mut rt, mut api) = channel(cap(8));
        let t0 = Instant::now();
        for i in 0..3 {
            rt.put_frame_at(&frame_of(i), t0 + Duration::from_millis(20 * i as u64));
        }
        for i in 0..3 {
            let f = api.try_recv().unwrap();
            assert_eq!(f.seq, i as u64);
            assert_eq!(f.samples, frame_of(i));
            assert_eq!(f.captured_at, t0 + Duration::from_millis(20 * i as u64));
        }
        assert_eq!(api.try_recv().unwrap_err(), TryRecvError::Empty);
        let s = api.stats();
        assert_eq!((s.frames_in, s.frames_out, s.dropped_oldest), (3, 3, 0));
    }

    #[test]
    fn full_queue_drops_the_oldest_and_counts() {
        let (mut rt, mut api) = channel(cap(3));
        for i in 0..5 {
            rt.put_frame(&frame_of(i));
        }
        assert_eq!(api.stats().dropped_oldest, 2);
        assert_eq!(api.stats().depth, 3);
        let seqs: Vec<u64> = std::iter::from_fn(|| api.try_recv().ok())
            .map(|f| {
                assert_eq!(f.samples[0] as u64, f.seq);
                f.seq
            })
            .collect();
        assert_eq!(seqs, [2, 3, 4]);
    }

    #[test]
    fn high_water_trips_once() {
        let (mut rt, mut api) = channel(cap(10));
        for _ in 0..5 {
            rt.put_frame(&frame_of(0));
        }
        assert!(!api.take_high_water());
        rt.put_frame(&frame_of(0));
        assert!(api.take_high_water());
        assert!(!api.take_high_water());
        while api.try_recv().is_ok() {}
        for _ in 0..10 {
            rt.put_frame(&frame_of(0));
        }
        assert!(!api.take_high_water());
        assert!(api.stats().high_water_tripped);
        assert_eq!(api.stats().max_depth, 10);
    }

    #[test]
    fn closed_after_drain() {
        let (mut rt, mut api) = channel(cap(4));
        rt.put_frame(&frame_of(7));
        drop(rt);
        assert!(api.is_closed());
        assert_eq!(api.try_recv().unwrap().samples[0], 7);
        assert_eq!(api.try_recv().unwrap_err(), TryRecvError::Closed);
        assert_eq!(
            api.recv_timeout(Duration::from_secs(5)).unwrap_err(),
            RecvTimeoutError::Closed
        );
    }

    #[test]
    fn recv_timeout_times_out_when_empty() {
        let (_rt, mut api) = channel(cap(4));
        let t = Instant::now();
        let err = api.recv_timeout(Duration::from_millis(30)).unwrap_err();
        assert_eq!(err, RecvTimeoutError::Timeout);
        assert!(t.elapsed() >= Duration::from_millis(30));
    }

    #[test]
    fn recv_timeout_wakes_on_frame_from_another_thread() {
        let (mut rt, mut api) = channel(cap(64));
        let producer = thread::spawn(move || {
            for i in 0..50 {
                rt.put_frame(&frame_of(i));
                // Pacing, not synchronisation: gives the consumer a chance to park.
                thread::sleep(Duration::from_micros(200));
            }
        });
        for i in 0..50 {
            let f = api.recv_timeout(Duration::from_secs(10)).unwrap();
            assert_eq!(f.seq, i as u64);
            assert_eq!(f.samples[0], i);
        }
        producer.join().unwrap();
        assert_eq!(
            api.recv_timeout(Duration::from_secs(10)).unwrap_err(),
            RecvTimeoutError::Closed
        );
    }

    #[test]
    fn async_recv_with_tokio() {
        let rt_tokio = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let (mut rt, mut api) = channel(cap(500));
        let consumer = rt_tokio.spawn(async move {
            let mut got = Vec::new();
            while let Some(f) = api.recv().await {
                assert!(f.samples.iter().all(|&s| s == f.samples[0]));
                got.push((f.seq, f.samples[0]));
            }
            (got, api.stats())
        });
        let producer = thread::spawn(move || {
            for i in 0..200i16 {
                rt.put_frame(&frame_of(i));
                if i % 10 == 0 {
                    thread::sleep(Duration::from_micros(500));
                }
            }
        });
        producer.join().unwrap();
        let (got, stats) = rt_tokio.block_on(consumer).unwrap();
        let want: Vec<(u64, i16)> = (0..200).map(|i| (i as u64, i as i16)).collect();
        assert_eq!(got, want);
        assert_eq!(stats.frames_out, 200);
    }

    #[test]
    fn stress_every_frame_is_received_or_counted_dropped() {
        const N: u64 = 20_000;
        let (mut rt, mut api) = channel(cap(16));
        let producer = thread::spawn(move || {
            let mut f = frame_of(0);
            for i in 0..N {
                f[0] = i as i16;
                f[FRAME_SAMPLES - 1] = i as i16;
                rt.put_frame(&f);
            }
        });
        let mut received = 0u64;
        let mut last: Option<u64> = None;
        loop {
            match api.recv_timeout(Duration::from_secs(10)) {
                Ok(f) => {
                    if let Some(l) = last {
                        assert!(f.seq > l, "seq went backwards: {} after {l}", f.seq);
                    }
                    assert_eq!(f.samples[0], f.seq as i16);
                    assert_eq!(f.samples[FRAME_SAMPLES - 1], f.seq as i16);
                    last = Some(f.seq);
                    received += 1;
                }
                Err(RecvTimeoutError::Closed) => break,
                Err(RecvTimeoutError::Timeout) => panic!("producer stalled"),
            }
        }
        producer.join().unwrap();
        let s = api.stats();
        assert_eq!(received + s.dropped_oldest, N);
        assert_eq!(s.frames_in, N);
        assert_eq!(s.frames_out, received);
        assert_eq!(last, Some(N - 1), "the newest frame is never dropped");
    }
}
