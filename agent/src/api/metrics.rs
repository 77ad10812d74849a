//! `GET /metrics` and the quality sampler that feeds some of the metrics.
//!
//! The metrics themselves ([`crate::state::Metrics`]) live in [`crate::state::metrics`], below the service and
//! the API. The quality sampler ([`run_sampler`]) asks the engine for every active call's RTP and
//! queue statistics once a second, publishes them as [`LiveEvent::Quality`] for the dashboard and
//! adds the growth of the drop counters. Drops in a call's last second before it ends are not
//! counted (the call's counters are gone by then). It also feeds the event-derived metrics from
//! the live bus.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use serde::Serialize;

use super::Api;
use crate::live::LiveEvent;

pub(super) async fn metrics(State(api): State<Api>) -> impl IntoResponse {
    let (active, registration) = {
        let book = api.shared.book.lock().unwrap_or_else(|e| e.into_inner());
        (
            book.active.len(),
            super::status::registration_state(&api, &book).0,
        )
    };
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        api.shared.metrics.render(active, registration),
    )
}

/// The last quality sample of a call, kept for the call detail after it ended.
#[derive(Debug, Clone, Serialize)]
pub struct Quality {
    pub codec: String,
    pub clock_rate: u32,
    pub rx_jitter_ms: f64,
    pub rx_lost: u32,
    pub rx_packets: u32,
    pub tx_packets: u32,
    pub rtt_ms: Option<f64>,
    pub jitter_buffer_ms: u32,
    pub uplink_frames_dropped: u64,
    pub downlink_frames_discarded: u64,
    pub downlink_underruns: u64,
}

/// Quality samples by call id, bounded (oldest calls forgotten first).
#[derive(Debug, Default)]
pub struct QualityBook {
    by_call: HashMap<String, Quality>,
    order: VecDeque<String>,
}

const QUALITY_KEEP: usize = 500;

impl QualityBook {
    pub fn get(&self, call: &str) -> Option<&Quality> {
        self.by_call.get(call)
    }

    /// Stores a sample; returns the previous one of the same call.
    fn put(&mut self, call: String, q: Quality) -> Option<Quality> {
        let previous = self.by_call.insert(call.clone(), q);
        if previous.is_none() {
            self.order.push_back(call);
            while self.order.len() > QUALITY_KEEP {
                if let Some(old) = self.order.pop_front() {
                    self.by_call.remove(&old);
                }
            }
        }
        previous
    }
}

/// Samples every active call's statistics once a second until the process ends, and feeds the
/// event-derived metrics from the live bus.
pub(super) async fn run_sampler(api: Api) {
    let mut events = api.shared.live.subscribe();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => sample(&api).await,
            event = events.recv() => match event {
                Ok(e) => api.shared.metrics.observe(&e),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    tracing::debug!("metrics missed {n} live events");
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            },
        }
    }
}

async fn sample(api: &Api) {
    let Some(engine) = api.shared.engine.get() else {
        return;
    };
    let calls: Vec<pjsip_safe::CallId> = {
        let book = api.shared.book.lock().unwrap_or_else(|e| e.into_inner());
        book.active.keys().copied().collect()
    };
    for call in calls {
        let Ok(Ok(stats)) =
            tokio::time::timeout(Duration::from_millis(500), engine.stats(call).wait_async()).await
        else {
            continue;
        };
        let queues = stats.queues.unwrap_or_default();
        let q = Quality {
            codec: stats.media.codec.clone(),
            clock_rate: stats.media.clock_rate,
            rx_jitter_ms: stats.rx_jitter_ms,
            rx_lost: stats.rx_lost,
            rx_packets: stats.rx_packets,
            tx_packets: stats.tx_packets,
            rtt_ms: stats.rtt_ms,
            jitter_buffer_ms: stats.jitter_buffer_ms,
            uplink_frames_dropped: queues.uplink.dropped_oldest,
            downlink_frames_discarded: queues.downlink.flushed_frames,
            downlink_underruns: queues.downlink.underruns,
        };
        let id = call.to_string();
        let previous = api
            .quality
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .put(id.clone(), q.clone());
        let (up0, down0, under0) = previous.map_or((0, 0, 0), |p| {
            (
                p.uplink_frames_dropped,
                p.downlink_frames_discarded,
                p.downlink_underruns,
            )
        });
        api.shared.metrics.add_drops(
            q.uplink_frames_dropped.saturating_sub(up0),
            q.downlink_frames_discarded.saturating_sub(down0),
            q.downlink_underruns.saturating_sub(under0),
        );
        api.shared.live.publish(LiveEvent::Quality {
            call: id,
            codec: q.codec,
            clock_rate: q.clock_rate,
            rx_jitter_ms: q.rx_jitter_ms,
            rx_lost: q.rx_lost,
            rx_packets: q.rx_packets,
            rtt_ms: q.rtt_ms,
            jitter_buffer_ms: q.jitter_buffer_ms,
        });
    }
}
