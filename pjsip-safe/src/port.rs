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
//!
//! Timing: each callback measures its own duration (two `Instant::now()` reads, a vDSO call, no
//! syscall) into [`CallbackTiming`] counters of its port, because "how long do we hold the
//! clock thread" is the figure that decides how many calls one bridge can carry (benchmarks:
//! `docs/BENCHMARKS.md`). When a port is destroyed its figures are folded into process-wide
//! totals ([`port_totals`]), so a process can report all its calls at exit.

use std::ffi::CStr;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use pjsip_sys as sys;

use crate::media::{
    DownlinkRt, Frame, MediaStats, TapRt, UplinkRt, FRAME_SAMPLES, SAMPLE_RATE, SILENCE,
};
use crate::panics::{fault_point, guard_rt, RtPlace};

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
    /// Copies of both directions for the call recorder (only when recording is on). Its
    /// methods take `&self` (lock-free queues), so both callbacks may use it at once.
    tap: Option<TapRt>,
    /// Written only by `put_frame` (one real-time caller at a time).
    put_timing: TimingCounters,
    /// Written only by `get_frame`.
    get_timing: TimingCounters,
    /// `get_frame` has handed out at least one queued frame (written only by `get_frame`).
    primed: bool,
    /// `get_frame` calls that found the queue empty after it was primed (written only by
    /// `get_frame`): frames the application delivered late, as the caller hears them.
    late: AtomicU64,
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
        tap: Option<TapRt>,
        pool: crate::pjsua::Pool,
    ) -> crate::Result<Self> {
        let mut port = Box::new(BotPort {
            base: sys::pjmedia_port::default(),
            // Borrowed until the port is complete; then the port owns it (see below).
            pool: pool.as_ptr(),
            uplink,
            downlink,
            tap,
            put_timing: TimingCounters::new(),
            get_timing: TimingCounters::new(),
            primed: false,
            late: AtomicU64::new(0),
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
        // On failure `pool` is dropped (released) with the half-built port.
        crate::error::check(status, "pjmedia_port_info_init")?;
        // From here the port owns its pool: released in on_destroy.
        let _ = pool.into_raw();
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

    /// The port's pool, for `pjsua_conf_add_port` (2.12 allocates the bridge's state in it).
    pub(crate) fn pool(&self) -> *mut sys::pj_pool_t {
        // SAFETY: the port is live until `destroy`; `pool` is written only in `new`.
        unsafe { self.port.as_ref() }.pool
    }

    /// Counters of both queues, readable from the pjlib thread while the port is live.
    pub(crate) fn stats(&self) -> MediaStats {
        // SAFETY: the port is live until `destroy`; the stats are atomics, safe to read while
        // the clock thread runs the callbacks.
        unsafe { self.port.as_ref() }.stats()
    }

    /// Durations of this port's callbacks so far.
    // Read by the engine's stats command (runtime.rs) once CallStats carries it.
    pub(crate) fn timing(&self) -> PortTiming {
        // SAFETY: as in `stats`: live port, atomics only.
        unsafe { self.port.as_ref() }.timing()
    }

    /// Destroys the port: PJSIP calls `on_destroy`, which frees it (now on 2.12, later on the
    /// clock thread on 2.15+). Must be called on the pjlib thread, after the port was removed
    /// from the bridge.
    pub(crate) fn destroy(self) {
        // SAFETY: the port was created by `new` and is destroyed exactly once (self is consumed).
        let status = unsafe { sys::pjmedia_port_destroy(self.as_pjmedia_port()) };
        if let Err(e) = crate::error::check(status, "pjmedia_port_destroy") {
            tracing::warn!("{e}");
        }
    }
}

/// Bridge → us: the caller's audio, mixed by the bridge. Called every tick, connected or not;
/// without a transmitter the frame is a NONE "heartbeat" with a null buffer.
unsafe extern "C" fn put_frame(
    this: *mut sys::pjmedia_port,
    frame: *mut sys::pjmedia_frame,
) -> sys::pj_status_t {
    let start = Instant::now();
    // A panic is counted only (real-time rules) and reported by the pjlib thread.
    guard_rt(RtPlace::PutFrame, (), || {
        fault_point!(PutFrame);
        // SAFETY: PJSIP passes the port we registered (a BotPort, see the struct docs) and a
        // valid frame. Only the uplink half and put_frame's own counters are borrowed: a
        // parallel bridge (2.16+) may run get_frame for this port on another thread at the
        // same time.
        let (uplink, tap, timing, frame) = unsafe {
            let port = this.cast::<BotPort>();
            (
                &mut *std::ptr::addr_of_mut!((*port).uplink),
                &*std::ptr::addr_of!((*port).tap),
                &*std::ptr::addr_of!((*port).put_timing),
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
            uplink.put_frame_at(samples, start);
            if let Some(tap) = tap {
                tap.caller(samples);
            }
        } else if let Some(tap) = tap {
            // One frame per tick keeps the recording's channels in step.
            tap.caller(&SILENCE);
        }
        timing.record(start.elapsed());
    });
    sys::PJ_SUCCESS as sys::pj_status_t
}

/// Us → bridge: the next 20 ms of what the caller should hear, or silence. The bridge does not
/// initialise the frame type, so it is always set.
unsafe extern "C" fn get_frame(
    this: *mut sys::pjmedia_port,
    frame: *mut sys::pjmedia_frame,
) -> sys::pj_status_t {
    let start = Instant::now();
    let completed = guard_rt(RtPlace::GetFrame, false, || {
        // SAFETY: as in put_frame; only the downlink half and get_frame's own fields are
        // borrowed.
        let (downlink, tap, timing, primed, late, frame) = unsafe {
            let port = this.cast::<BotPort>();
            (
                &mut *std::ptr::addr_of_mut!((*port).downlink),
                &*std::ptr::addr_of!((*port).tap),
                &*std::ptr::addr_of!((*port).get_timing),
                &mut *std::ptr::addr_of_mut!((*port).primed),
                &*std::ptr::addr_of!((*port).late),
                &mut *frame,
            )
        };
        if frame.buf.is_null() || frame.size < FRAME_BYTES {
            frame.type_ = sys::PJMEDIA_FRAME_TYPE_NONE;
            if let Some(tap) = tap {
                tap.agent(&SILENCE);
            }
            timing.record(start.elapsed());
            return true;
        }
        // SAFETY: checked above: at least 960 samples, 2-byte aligned bridge buffer.
        let out = unsafe { &mut *frame.buf.cast::<Frame>() };
        if downlink.get_frame_at(out, start) {
            *primed = true;
        } else {
            *out = SILENCE;
            if *primed {
                late.store(
                    late.load(Ordering::Relaxed).wrapping_add(1),
                    Ordering::Relaxed,
                );
            }
        }
        if let Some(tap) = tap {
            tap.agent(out);
        }
        frame.type_ = sys::PJMEDIA_FRAME_TYPE_AUDIO;
        frame.size = FRAME_BYTES;
        timing.record(start.elapsed());
        true
    });
    if !completed {
        // SAFETY: `frame` is valid (see above); tell the bridge there is nothing to mix.
        unsafe { (*frame).type_ = sys::PJMEDIA_FRAME_TYPE_NONE };
    }
    sys::PJ_SUCCESS as sys::pj_status_t
}

/// Frees the port and its pool. PJSIP calls it exactly once, after the bridge is done with it.
unsafe extern "C" fn on_destroy(this: *mut sys::pjmedia_port) -> sys::pj_status_t {
    guard_rt(RtPlace::PortDestroy, (), || {
        // SAFETY: `this` came from Box::into_raw in PortHandle::new and PJSIP calls on_destroy
        // once; nothing touches the port after this.
        let port = unsafe { Box::from_raw(this.cast::<BotPort>()) };
        TOTALS.add(&port.timing(), &port.stats());
        let pool = port.pool;
        drop(port);
        if !pool.is_null() {
            // SAFETY: the pool was created for this port alone and nothing else uses it now.
            unsafe { sys::pj_pool_release(pool) };
        }
    });
    sys::PJ_SUCCESS as sys::pj_status_t
}

impl BotPort {
    fn stats(&self) -> MediaStats {
        MediaStats {
            uplink: self.uplink.stats(),
            downlink: self.downlink.stats(),
        }
    }

    fn timing(&self) -> PortTiming {
        PortTiming {
            put_frame: self.put_timing.snapshot(),
            get_frame: self.get_timing.snapshot(),
            late_frames: self.late.load(Ordering::Relaxed),
        }
    }
}

/// Buckets of [`CallbackTiming::histogram`]: bucket 0 counts 0 ns, bucket `k` durations in
/// `[2^(k-1), 2^k)` ns, the last one everything from 2^30 ns (about 1 s) up.
pub const TIMING_BUCKETS: usize = 32;

/// Durations of one media-port callback (`put_frame` or `get_frame`), in nanoseconds.
///
/// Percentiles come from a log2 histogram, so they are upper bounds within a factor of two;
/// `max_ns` and the mean are exact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CallbackTiming {
    pub count: u64,
    pub total_ns: u64,
    pub max_ns: u64,
    pub histogram: [u64; TIMING_BUCKETS],
}

impl CallbackTiming {
    /// The histogram bucket a duration falls in.
    pub fn bucket(ns: u64) -> usize {
        ((u64::BITS - ns.leading_zeros()) as usize).min(TIMING_BUCKETS - 1)
    }

    /// Exclusive upper bound of bucket `k` in nanoseconds (`u64::MAX` for the last).
    pub fn bucket_upper_ns(k: usize) -> u64 {
        if k + 1 >= TIMING_BUCKETS {
            u64::MAX
        } else {
            1u64 << k
        }
    }

    /// Mean duration, if anything was measured.
    pub fn mean_ns(&self) -> Option<f64> {
        (self.count > 0).then(|| self.total_ns as f64 / self.count as f64)
    }

    /// An upper bound of the `q`-quantile (`0.0..=1.0`): the upper edge of the bucket that
    /// holds it, but never more than `max_ns`. `None` if nothing was measured.
    pub fn quantile_upper_ns(&self, q: f64) -> Option<u64> {
        let total: u64 = self.histogram.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (k, n) in self.histogram.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Some(Self::bucket_upper_ns(k).min(self.max_ns));
            }
        }
        Some(self.max_ns)
    }

    /// Adds another set of measurements (e.g. of another call) to this one.
    pub fn merge(&mut self, other: &Self) {
        self.count += other.count;
        self.total_ns += other.total_ns;
        self.max_ns = self.max_ns.max(other.max_ns);
        for (a, b) in self.histogram.iter_mut().zip(other.histogram.iter()) {
            *a += b;
        }
    }
}

/// Written as `count:N,total_ns:N,max_ns:N,hist:a/b/...` (no spaces), read back by `FromStr`.
impl std::fmt::Display for CallbackTiming {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "count:{},total_ns:{},max_ns:{},hist:",
            self.count, self.total_ns, self.max_ns
        )?;
        for (k, n) in self.histogram.iter().enumerate() {
            write!(f, "{}{n}", if k == 0 { "" } else { "/" })?;
        }
        Ok(())
    }
}

impl std::str::FromStr for CallbackTiming {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let mut t = CallbackTiming::default();
        for field in s.split(',') {
            let (key, value) = field
                .split_once(':')
                .ok_or_else(|| format!("`{field}` is not key:value"))?;
            let num = |v: &str| v.parse::<u64>().map_err(|e| format!("{key}: `{v}`: {e}"));
            match key {
                "count" => t.count = num(value)?,
                "total_ns" => t.total_ns = num(value)?,
                "max_ns" => t.max_ns = num(value)?,
                "hist" => {
                    let values: Vec<&str> = value.split('/').collect();
                    if values.len() != TIMING_BUCKETS {
                        return Err(format!(
                            "hist has {} buckets, expected {TIMING_BUCKETS}",
                            values.len()
                        ));
                    }
                    for (slot, v) in t.histogram.iter_mut().zip(values) {
                        *slot = num(v)?;
                    }
                }
                other => return Err(format!("unknown field `{other}`")),
            }
        }
        Ok(t)
    }
}

/// Callback durations of one port (or of many, merged).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PortTiming {
    pub put_frame: CallbackTiming,
    pub get_frame: CallbackTiming,
    /// `get_frame` calls that found the downlink empty after it had started playing: audio the
    /// application delivered too late for its tick (the caller hears a gap).
    pub late_frames: u64,
}

/// Everything the ports of this process measured, summed over the ports destroyed so far
/// (see [`port_totals`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PortTotals {
    /// Ports destroyed (calls whose media ended).
    pub ports: u64,
    pub timing: PortTiming,
    /// Frames the bridge gave us (caller audio).
    pub uplink_frames: u64,
    /// Caller frames overwritten because the application fell a whole queue behind.
    pub uplink_dropped: u64,
    /// Frames we gave the bridge (application audio).
    pub downlink_frames: u64,
    /// `get_frame` calls with nothing queued (includes the time before a call's first frame).
    pub downlink_underruns: u64,
}

/// One line of `key=value` pairs, read back by `FromStr`.
impl std::fmt::Display for PortTotals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ports={} late_frames={} uplink_frames={} uplink_dropped={} downlink_frames={} \
             downlink_underruns={} put_frame={} get_frame={}",
            self.ports,
            self.timing.late_frames,
            self.uplink_frames,
            self.uplink_dropped,
            self.downlink_frames,
            self.downlink_underruns,
            self.timing.put_frame,
            self.timing.get_frame
        )
    }
}

impl std::str::FromStr for PortTotals {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let mut t = PortTotals::default();
        for field in s.split_whitespace() {
            let (key, value) = field
                .split_once('=')
                .ok_or_else(|| format!("`{field}` is not key=value"))?;
            let num = || value.parse::<u64>().map_err(|e| format!("{key}: {e}"));
            match key {
                "ports" => t.ports = num()?,
                "late_frames" => t.timing.late_frames = num()?,
                "uplink_frames" => t.uplink_frames = num()?,
                "uplink_dropped" => t.uplink_dropped = num()?,
                "downlink_frames" => t.downlink_frames = num()?,
                "downlink_underruns" => t.downlink_underruns = num()?,
                "put_frame" => t.timing.put_frame = value.parse()?,
                "get_frame" => t.timing.get_frame = value.parse()?,
                other => return Err(format!("unknown field `{other}`")),
            }
        }
        Ok(t)
    }
}

/// Totals of every port destroyed in this process so far. A process that wants figures for all
/// its calls reads this after they ended (e.g. after [`crate::Engine::shutdown`]).
pub fn port_totals() -> PortTotals {
    TOTALS.snapshot()
}

/// One callback's live counters. Each has a single writer (the callback, one real-time caller
/// at a time), so `record` uses plain loads and stores instead of read-modify-writes; readers
/// on other threads see each counter whole, though not all of them at the same instant.
struct TimingCounters {
    count: AtomicU64,
    total_ns: AtomicU64,
    max_ns: AtomicU64,
    histogram: [AtomicU64; TIMING_BUCKETS],
}

impl TimingCounters {
    const fn new() -> Self {
        Self {
            count: AtomicU64::new(0),
            total_ns: AtomicU64::new(0),
            max_ns: AtomicU64::new(0),
            histogram: [const { AtomicU64::new(0) }; TIMING_BUCKETS],
        }
    }

    /// Real-time safe: a handful of relaxed loads and stores, no allocation, no panic.
    #[inline]
    fn record(&self, elapsed: std::time::Duration) {
        let ns = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        let bump = |c: &AtomicU64, n: u64| {
            c.store(c.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed)
        };
        bump(&self.count, 1);
        bump(&self.total_ns, ns);
        if ns > self.max_ns.load(Ordering::Relaxed) {
            self.max_ns.store(ns, Ordering::Relaxed);
        }
        if let Some(bucket) = self.histogram.get(CallbackTiming::bucket(ns)) {
            bump(bucket, 1);
        }
    }

    fn snapshot(&self) -> CallbackTiming {
        let mut t = CallbackTiming {
            count: self.count.load(Ordering::Relaxed),
            total_ns: self.total_ns.load(Ordering::Relaxed),
            max_ns: self.max_ns.load(Ordering::Relaxed),
            histogram: [0; TIMING_BUCKETS],
        };
        for (out, c) in t.histogram.iter_mut().zip(self.histogram.iter()) {
            *out = c.load(Ordering::Relaxed);
        }
        t
    }

    /// Adds a snapshot (several writers: read-modify-write).
    fn add(&self, t: &CallbackTiming) {
        self.count.fetch_add(t.count, Ordering::Relaxed);
        self.total_ns.fetch_add(t.total_ns, Ordering::Relaxed);
        self.max_ns.fetch_max(t.max_ns, Ordering::Relaxed);
        for (c, n) in self.histogram.iter().zip(t.histogram.iter()) {
            c.fetch_add(*n, Ordering::Relaxed);
        }
    }
}

/// Process-wide sums, fed by `on_destroy`.
struct Totals {
    ports: AtomicU64,
    put: TimingCounters,
    get: TimingCounters,
    late: AtomicU64,
    uplink_frames: AtomicU64,
    uplink_dropped: AtomicU64,
    downlink_frames: AtomicU64,
    downlink_underruns: AtomicU64,
}

static TOTALS: Totals = Totals {
    ports: AtomicU64::new(0),
    put: TimingCounters::new(),
    get: TimingCounters::new(),
    late: AtomicU64::new(0),
    uplink_frames: AtomicU64::new(0),
    uplink_dropped: AtomicU64::new(0),
    downlink_frames: AtomicU64::new(0),
    downlink_underruns: AtomicU64::new(0),
};

impl Totals {
    fn add(&self, timing: &PortTiming, stats: &MediaStats) {
        let add = |c: &AtomicU64, n: u64| {
            c.fetch_add(n, Ordering::Relaxed);
        };
        add(&self.ports, 1);
        self.put.add(&timing.put_frame);
        self.get.add(&timing.get_frame);
        add(&self.late, timing.late_frames);
        add(&self.uplink_frames, stats.uplink.frames_in);
        add(&self.uplink_dropped, stats.uplink.dropped_oldest);
        add(&self.downlink_frames, stats.downlink.frames_out);
        add(&self.downlink_underruns, stats.downlink.underruns);
    }

    fn snapshot(&self) -> PortTotals {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        PortTotals {
            ports: get(&self.ports),
            timing: PortTiming {
                put_frame: self.put.snapshot(),
                get_frame: self.get.snapshot(),
                late_frames: get(&self.late),
            },
            uplink_frames: get(&self.uplink_frames),
            uplink_dropped: get(&self.uplink_dropped),
            downlink_frames: get(&self.downlink_frames),
            downlink_underruns: get(&self.downlink_underruns),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn buckets_are_log2() {
        assert_eq!(CallbackTiming::bucket(0), 0);
        assert_eq!(CallbackTiming::bucket(1), 1);
        assert_eq!(CallbackTiming::bucket(1023), 10);
        assert_eq!(CallbackTiming::bucket(1024), 11);
        assert_eq!(CallbackTiming::bucket(u64::MAX), TIMING_BUCKETS - 1);
        assert_eq!(CallbackTiming::bucket_upper_ns(11), 2048);
    }

    #[test]
    fn quantiles_bound_the_recorded_durations() {
        let c = TimingCounters::new();
        for _ in 0..98 {
            c.record(Duration::from_nanos(1500));
        }
        c.record(Duration::from_micros(30));
        c.record(Duration::from_micros(100));
        let t = c.snapshot();
        assert_eq!(t.count, 100);
        assert_eq!(t.max_ns, 100_000);
        assert_eq!(t.quantile_upper_ns(0.5), Some(2048));
        assert_eq!(t.quantile_upper_ns(0.99), Some(32_768));
        assert_eq!(t.quantile_upper_ns(1.0), Some(100_000));
        assert!((t.mean_ns().unwrap() - 2770.0).abs() < 1.0);
        assert_eq!(CallbackTiming::default().quantile_upper_ns(0.5), None);
    }

    #[test]
    fn totals_round_trip_through_their_text_form() {
        let c = TimingCounters::new();
        c.record(Duration::from_micros(3));
        c.record(Duration::from_micros(7));
        let mut totals = PortTotals {
            ports: 2,
            uplink_frames: 100,
            downlink_underruns: 4,
            ..PortTotals::default()
        };
        totals.timing.put_frame = c.snapshot();
        totals.timing.late_frames = 1;
        let line = totals.to_string();
        assert_eq!(line.parse::<PortTotals>(), Ok(totals));
        assert!("ports=x".parse::<PortTotals>().is_err());
        assert!("put_frame=count:1,hist:1/2".parse::<PortTotals>().is_err());
    }

    #[test]
    fn merge_adds_and_keeps_the_maximum() {
        let a = TimingCounters::new();
        a.record(Duration::from_micros(5));
        let b = TimingCounters::new();
        b.record(Duration::from_micros(9));
        let mut m = a.snapshot();
        m.merge(&b.snapshot());
        assert_eq!(m.count, 2);
        assert_eq!(m.max_ns, 9000);
        assert_eq!(m.histogram.iter().sum::<u64>(), 2);
    }
}
