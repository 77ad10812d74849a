//! Latency of the real-time queue operations, as the clock thread sees them.
//!
//! `cargo bench -p pjsip-safe --bench media_queues`. Prints p50 / p99 / max in nanoseconds per
//! call. The budget for a whole media-port callback is 20 µs. The waker cases pace calls like the
//! clock thread (a pause between calls) so the consumer is really parked when the frame arrives:
//! that is when waking costs the most.

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use pjsip_safe::media::{call_queues, QueueConfig, FRAME_SAMPLES, SILENCE};

const FAST_ITERS: usize = 200_000;
const PACED_ITERS: usize = 5_000;
const PACE: Duration = Duration::from_micros(300);

fn report(name: &str, mut ns: Vec<u64>) {
    ns.sort_unstable();
    let pct = |p: f64| ns[((ns.len() - 1) as f64 * p) as usize];
    println!(
        "{name:<52} n={:<7} p50={:>6} ns  p99={:>6} ns  max={:>7} ns",
        ns.len(),
        pct(0.50),
        pct(0.99),
        ns[ns.len() - 1]
    );
}

fn timed(f: impl FnOnce()) -> u64 {
    let t = Instant::now();
    f();
    t.elapsed().as_nanos() as u64
}

fn wait_until(counter: &AtomicU64, value: u64) {
    while counter.load(Ordering::Acquire) < value {
        std::hint::spin_loop();
    }
}

fn main() {
    let frame = [1234i16; FRAME_SAMPLES];

    // put_frame with nobody waiting (consumer polls): push + one fetch_or on the waker.
    {
        let (mut rt, mut api) = call_queues(&QueueConfig::default());
        let mut ns = Vec::with_capacity(FAST_ITERS);
        for _ in 0..FAST_ITERS {
            ns.push(timed(|| rt.uplink.put_frame(black_box(&frame))));
            black_box(api.uplink.try_recv().ok());
        }
        report("uplink put_frame, no waiter", ns);
    }

    // put_frame into a full queue: drop-oldest path.
    {
        let (mut rt, _api) = call_queues(&QueueConfig::default());
        for _ in 0..500 {
            rt.uplink.put_frame(&frame);
        }
        let ns = (0..FAST_ITERS)
            .map(|_| timed(|| rt.uplink.put_frame(black_box(&frame))))
            .collect();
        report("uplink put_frame, full (drop oldest)", ns);
    }

    // put_frame waking a tokio task parked in recv().await (multi-thread runtime).
    {
        let tokio_rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .build()
            .expect("tokio runtime");
        let (mut rt, mut api) = call_queues(&QueueConfig::default());
        let received = Arc::new(AtomicU64::new(0));
        let r = received.clone();
        let task = tokio_rt.spawn(async move {
            while let Some(f) = api.uplink.recv().await {
                black_box(f);
                r.fetch_add(1, Ordering::Release);
            }
        });
        let mut ns = Vec::with_capacity(PACED_ITERS);
        for i in 1..=PACED_ITERS as u64 {
            thread::sleep(PACE);
            ns.push(timed(|| rt.uplink.put_frame(black_box(&frame))));
            wait_until(&received, i);
        }
        drop(rt);
        tokio_rt.block_on(task).expect("consumer task");
        report("uplink put_frame, waking tokio task (paced)", ns);
    }

    // put_frame unparking a thread blocked in recv_timeout.
    {
        let (mut rt, mut api) = call_queues(&QueueConfig::default());
        let received = Arc::new(AtomicU64::new(0));
        let r = received.clone();
        let consumer = thread::spawn(move || {
            while api.uplink.recv_timeout(Duration::from_secs(10)).is_ok() {
                r.fetch_add(1, Ordering::Release);
            }
        });
        let mut ns = Vec::with_capacity(PACED_ITERS);
        for i in 1..=PACED_ITERS as u64 {
            thread::sleep(PACE);
            ns.push(timed(|| rt.uplink.put_frame(black_box(&frame))));
            wait_until(&received, i);
        }
        drop(rt);
        consumer.join().expect("consumer thread");
        report("uplink put_frame, unparking recv_timeout (paced)", ns);
    }

    // get_frame with audio queued (refilled outside the timed region).
    {
        let (mut rt, mut api) = call_queues(&QueueConfig::default());
        let chunk = vec![7i16; 400 * FRAME_SAMPLES];
        let mut out = SILENCE;
        let mut ns = Vec::with_capacity(FAST_ITERS);
        while ns.len() < FAST_ITERS {
            api.downlink.push(1, &chunk).expect("room for the chunk");
            for _ in 0..400 {
                ns.push(timed(|| {
                    black_box(rt.downlink.get_frame(black_box(&mut out)));
                }));
            }
        }
        report("downlink get_frame, frame queued", ns);
        let ns = (0..FAST_ITERS)
            .map(|_| {
                timed(|| {
                    black_box(rt.downlink.get_frame(black_box(&mut out)));
                })
            })
            .collect();
        report("downlink get_frame, underrun", ns);
    }

    // The whole callback pair of one tick, as the port will run it: put_frame waking a parked
    // tokio task, then get_frame of a queued frame.
    {
        let tokio_rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .build()
            .expect("tokio runtime");
        let (mut rt, api) = call_queues(&QueueConfig::default());
        let mut up = api.uplink;
        let mut down = api.downlink;
        let received = Arc::new(AtomicU64::new(0));
        let r = received.clone();
        let task = tokio_rt.spawn(async move {
            while let Some(f) = up.recv().await {
                black_box(f);
                r.fetch_add(1, Ordering::Release);
            }
        });
        down.push(1, &vec![5i16; 450 * FRAME_SAMPLES])
            .expect("room for the chunk");
        let mut out = SILENCE;
        let mut ns = Vec::with_capacity(PACED_ITERS);
        for i in 1..=PACED_ITERS as u64 {
            if down.queued_frames() < 10 {
                down.push(1, &vec![5i16; 400 * FRAME_SAMPLES])
                    .expect("room for the chunk");
            }
            thread::sleep(PACE);
            ns.push(timed(|| {
                rt.uplink.put_frame(black_box(&frame));
                black_box(rt.downlink.get_frame(&mut out));
            }));
            wait_until(&received, i);
        }
        drop(rt);
        tokio_rt.block_on(task).expect("consumer task");
        report("tick: put_frame (wake tokio) + get_frame", ns);
    }
}
