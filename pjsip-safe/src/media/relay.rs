//! Wakes consumers on behalf of PJSIP's clock thread.
//!
//! Waking a task or a parked thread is a syscall (futex, eventfd) and, for tokio, a short mutex:
//! measured at p99 65 µs inside `put_frame` under load, which breaks the media callbacks'
//! 20 µs budget. So the real-time side never wakes anyone itself: it marks its queue pending and
//! sets one global flag (two atomic stores). One relay thread per process checks the flag every
//! [`INTERVAL`] and wakes the consumers of pending queues. That adds at most about one interval
//! of latency to the uplink and costs one thread's timer wake-ups while queues exist (it parks
//! when there are none).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock, Weak};
use std::thread::{self, Thread};
use std::time::Duration;

/// How often the relay looks for pending queues.
pub const INTERVAL: Duration = Duration::from_millis(1);

/// Something whose consumer the relay may have to wake.
pub(crate) trait Wakeable: Send + Sync {
    /// Wakes the consumer if the real-time side marked this queue pending since the last call.
    fn wake_if_pending(&self);
}

static ANY_PENDING: AtomicBool = AtomicBool::new(false);
static REGISTRY: Mutex<Vec<Weak<dyn Wakeable>>> = Mutex::new(Vec::new());
static RELAY: OnceLock<Thread> = OnceLock::new();

/// Real-time side: something is pending. One atomic store; no syscall, lock or allocation.
#[inline]
pub(crate) fn notify() {
    ANY_PENDING.store(true, Ordering::Release);
}

/// API side (channel creation): makes `target` known to the relay, starting it on first use.
pub(crate) fn register(target: Weak<dyn Wakeable>) {
    if let Ok(mut registry) = REGISTRY.lock() {
        registry.push(target);
    }
    let relay = RELAY.get_or_init(|| {
        thread::Builder::new()
            .name("media-relay".into())
            .spawn(run)
            .expect("cannot start the media relay thread")
            .thread()
            .clone()
    });
    relay.unpark();
}

fn run() {
    loop {
        let empty = {
            let Ok(mut registry) = REGISTRY.lock() else {
                return;
            };
            if ANY_PENDING.swap(false, Ordering::AcqRel) {
                registry.retain(|weak| match weak.upgrade() {
                    Some(target) => {
                        target.wake_if_pending();
                        true
                    }
                    None => false,
                });
            } else {
                registry.retain(|weak| weak.strong_count() > 0);
            }
            registry.is_empty()
        };
        if empty {
            // No queues: sleep until register() unparks us.
            thread::park();
        } else {
            thread::sleep(INTERVAL);
        }
    }
}
