//! The service's Prometheus metrics (`GET /metrics` renders them).
//!
//! `prometheus-client` (the Prometheus project's own Rust client) does the text exposition:
//! label escaping, `_total` suffixes, histogram buckets and the `# EOF` trailer are easy to get
//! subtly wrong by hand, and it costs two small crates.
//!
//! Where the numbers come from, and why there:
//! - per call, at its end ([`Metrics::call_finished`]): outcome, codec, uplink/downlink latency
//!   (the bridge measures each frame; observing the report once costs nothing per frame);
//! - live events ([`Metrics::observe`]): tool latency, Realtime errors, turn latency, as they
//!   happen;
//! - at scrape time: active calls and the registration state, read from the call book, so they
//!   can never drift;
//! - the API's quality sampler adds the growth of the drop counters ([`Metrics::add_drops`]).
//!
//! The type lives with the shared state, below both the service (which feeds finished calls)
//! and the API (which renders it and runs the sampler).

use std::sync::Arc;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::call::report::CallReport;
use crate::live::LiveEvent;

type Labels = Vec<(&'static str, String)>;

fn latency_histogram() -> Histogram {
    // 0.5 ms .. ~2 s
    Histogram::new(exponential_buckets(0.0005, 2.0, 13))
}

fn turn_histogram() -> Histogram {
    // 50 ms .. ~6.4 s
    Histogram::new(exponential_buckets(0.05, 1.5, 13))
}

struct Inner {
    registry: Registry,
    calls_active: Gauge,
    calls: Family<Labels, Counter>,
    calls_by_codec: Family<Labels, Counter>,
    registered: Gauge,
    registration_state: Family<Labels, Gauge>,
    frames_dropped: Family<Labels, Counter>,
    downlink_underruns: Counter,
    uplink_latency: Histogram,
    downlink_latency: Histogram,
    turn_latency: Histogram,
    realtime_errors: Family<Labels, Counter>,
    tool_latency: Family<Labels, Histogram, fn() -> Histogram>,
    tool_calls: Family<Labels, Counter>,
    barge_ins: Counter,
    invites_refused: Family<Labels, Counter>,
    // Counters the engine keeps process-wide; copied in at each scrape.
    requests_refused: Family<Labels, Counter>,
    pjsip_log_suppressed: Counter,
    panics_caught: Counter,
    engine_seen: std::sync::Mutex<EngineCounts>,
}

/// The engine's process-wide counters as last copied into the registry.
#[derive(Default)]
struct EngineCounts {
    refused: [u64; pjsip_safe::edge::RefusedKind::ALL.len()],
    log_suppressed: u64,
    panics: u64,
}

/// The service's metrics; cheap to clone.
#[derive(Clone)]
pub struct Metrics(Arc<Inner>);

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let calls_active = Gauge::default();
        registry.register(
            "voiceagent_calls_active",
            "Calls in progress",
            calls_active.clone(),
        );
        let calls = Family::<Labels, Counter>::default();
        registry.register(
            "voiceagent_calls",
            "Finished calls by outcome (completed, unanswered, backend_failed)",
            calls.clone(),
        );
        // Zero series for every outcome, so rates and alerts see 0 rather than nothing.
        for outcome in ["completed", "unanswered", "backend_failed"] {
            let _ = calls.get_or_create(&vec![("outcome", outcome.to_owned())]);
        }
        let calls_by_codec = Family::<Labels, Counter>::default();
        registry.register(
            "voiceagent_calls_by_codec",
            "Finished calls by negotiated codec",
            calls_by_codec.clone(),
        );
        let registered = Gauge::default();
        registry.register(
            "voiceagent_sip_registered",
            "1 when registered with the SIP trunk (always 0 in IP mode)",
            registered.clone(),
        );
        let registration_state = Family::<Labels, Gauge>::default();
        registry.register(
            "voiceagent_sip_registration_state",
            "1 for the current registration state (ip_mode, unknown, registered, unregistered, failed)",
            registration_state.clone(),
        );
        let frames_dropped = Family::<Labels, Counter>::default();
        registry.register(
            "voiceagent_frames_dropped",
            "Audio frames dropped: uplink = caller frames overwritten because the bridge fell behind; \
             downlink = queued agent frames discarded (barge-in flushes)",
            frames_dropped.clone(),
        );
        let downlink_underruns = Counter::default();
        registry.register(
            "voiceagent_downlink_underruns",
            "20 ms ticks in which the caller's side had no agent audio queued",
            downlink_underruns.clone(),
        );
        let uplink_latency = latency_histogram();
        registry.register(
            "voiceagent_uplink_latency_seconds",
            "Caller frame captured by the engine -> sent to the Realtime backend",
            uplink_latency.clone(),
        );
        let downlink_latency = latency_histogram();
        registry.register(
            "voiceagent_downlink_latency_seconds",
            "Agent audio received from the Realtime backend -> queued for the caller",
            downlink_latency.clone(),
        );
        let turn_latency = turn_histogram();
        registry.register(
            "voiceagent_turn_latency_seconds",
            "End of the caller's speech -> first agent audio of the answer",
            turn_latency.clone(),
        );
        let realtime_errors = Family::<Labels, Counter>::default();
        registry.register(
            "voiceagent_realtime_errors",
            "Errors from the Realtime backend by code",
            realtime_errors.clone(),
        );
        let tool_latency: Family<Labels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(latency_histogram);
        registry.register(
            "voiceagent_tool_latency_seconds",
            "Duration of tool calls by tool",
            tool_latency.clone(),
        );
        let tool_calls = Family::<Labels, Counter>::default();
        registry.register(
            "voiceagent_tool_calls",
            "Tool calls by tool and result (ok, error)",
            tool_calls.clone(),
        );
        let barge_ins = Counter::default();
        registry.register(
            "voiceagent_barge_ins",
            "Times a caller interrupted the agent",
            barge_ins.clone(),
        );
        let invites_refused = Family::<Labels, Counter>::default();
        registry.register(
            "voiceagent_sip_invites_refused",
            "INVITEs refused before a call started, by reason (not_allowed, busy, rate_limited, shutting_down)",
            invites_refused.clone(),
        );
        let requests_refused = Family::<Labels, Counter>::default();
        registry.register(
            "voiceagent_sip_requests_refused",
            "SIP requests refused at the edge, by kind (refer, replaces, subscribe, publish, message)",
            requests_refused.clone(),
        );
        let pjsip_log_suppressed = Counter::default();
        registry.register(
            "voiceagent_pjsip_log_suppressed",
            "PJSIP log lines not written because of the log rate limit",
            pjsip_log_suppressed.clone(),
        );
        let panics_caught = Counter::default();
        registry.register(
            "voiceagent_panics_caught",
            "Panics caught at the boundary to PJSIP (each is also logged)",
            panics_caught.clone(),
        );
        Metrics(Arc::new(Inner {
            invites_refused,
            requests_refused,
            pjsip_log_suppressed,
            panics_caught,
            engine_seen: Default::default(),
            registry,
            calls_active,
            calls,
            calls_by_codec,
            registered,
            registration_state,
            frames_dropped,
            downlink_underruns,
            uplink_latency,
            downlink_latency,
            turn_latency,
            realtime_errors,
            tool_latency,
            tool_calls,
            barge_ins,
        }))
    }
}

/// What became of a call, for `voiceagent_calls_total{outcome}`.
pub fn outcome(report: &CallReport) -> &'static str {
    if report.backend_failed {
        "backend_failed"
    } else if report.answered_after_ms.is_none() {
        "unanswered"
    } else {
        // Errors during an answered call (an unintelligible utterance, a failed tool) are in the
        // call's report; the call itself completed.
        "completed"
    }
}

impl Metrics {
    /// Records a finished call.
    pub fn call_finished(&self, report: &CallReport) {
        let m = &self.0;
        m.calls
            .get_or_create(&vec![("outcome", outcome(report).to_owned())])
            .inc();
        if let Some(codec) = &report.codec {
            m.calls_by_codec
                .get_or_create(&vec![("codec", codec.clone())])
                .inc();
        }
        for &us in &report.uplink_latency_us {
            m.uplink_latency.observe(f64::from(us) / 1e6);
        }
        for &us in &report.downlink_latency_us {
            m.downlink_latency.observe(f64::from(us) / 1e6);
        }
    }

    /// Records what a live event says (tools, Realtime errors, turn latency, barge-ins).
    pub fn observe(&self, event: &LiveEvent) {
        let m = &self.0;
        match event {
            LiveEvent::ToolCall {
                name,
                ok,
                duration_ms,
                ..
            } => {
                m.tool_latency
                    .get_or_create(&vec![("tool", name.clone())])
                    .observe(*duration_ms as f64 / 1e3);
                let result = if *ok { "ok" } else { "error" };
                m.tool_calls
                    .get_or_create(&vec![("tool", name.clone()), ("result", result.to_owned())])
                    .inc();
            }
            LiveEvent::RealtimeError { code, .. } => {
                m.realtime_errors
                    .get_or_create(&vec![("code", code.clone())])
                    .inc();
            }
            LiveEvent::TurnLatency { ms, .. } => m.turn_latency.observe(*ms as f64 / 1e3),
            LiveEvent::BargeIn { .. } => {
                m.barge_ins.inc();
            }
            _ => {}
        }
    }

    /// Records an INVITE the engine refused (`reason` as in `pjsip_safe::RejectReason`).
    pub fn invite_refused(&self, reason: pjsip_safe::RejectReason) {
        let reason = match reason {
            pjsip_safe::RejectReason::NotAllowed => "not_allowed",
            pjsip_safe::RejectReason::Busy => "busy",
            pjsip_safe::RejectReason::ShuttingDown => "shutting_down",
            pjsip_safe::RejectReason::RateLimited => "rate_limited",
        };
        self.0
            .invites_refused
            .get_or_create(&vec![("reason", reason.to_owned())])
            .inc();
    }

    /// Copies the engine's process-wide counters (edge refusals, suppressed PJSIP log lines,
    /// caught panics) into the registry: each by what it grew since the last copy.
    fn sync_engine_counters(&self) {
        let m = &self.0;
        let mut seen = m.engine_seen.lock().unwrap_or_else(|e| e.into_inner());
        for (i, (kind, n)) in pjsip_safe::edge::refused_counts().into_iter().enumerate() {
            let counter = m
                .requests_refused
                .get_or_create(&vec![("kind", kind.as_str().to_owned())]);
            counter.inc_by(n.saturating_sub(seen.refused[i]));
            seen.refused[i] = n;
        }
        let suppressed = pjsip_safe::pjsip_log_suppressed();
        m.pjsip_log_suppressed
            .inc_by(suppressed.saturating_sub(seen.log_suppressed));
        seen.log_suppressed = suppressed;
        let panics = pjsip_safe::panics::caught_panics();
        m.panics_caught.inc_by(panics.saturating_sub(seen.panics));
        seen.panics = panics;
    }

    /// Adds the growth of the engine's drop counters (from the quality sampler).
    pub fn add_drops(&self, uplink: u64, downlink: u64, underruns: u64) {
        let m = &self.0;
        if uplink > 0 {
            m.frames_dropped
                .get_or_create(&vec![("direction", "uplink".to_owned())])
                .inc_by(uplink);
        }
        if downlink > 0 {
            m.frames_dropped
                .get_or_create(&vec![("direction", "downlink".to_owned())])
                .inc_by(downlink);
        }
        m.downlink_underruns.inc_by(underruns);
    }

    /// The exposition text, with the gauges read from the call book first.
    pub fn render(&self, active: usize, registration: &str) -> String {
        self.sync_engine_counters();
        let m = &self.0;
        m.calls_active.set(active as i64);
        m.registered.set(i64::from(registration == "registered"));
        for state in ["ip_mode", "unknown", "registered", "unregistered", "failed"] {
            m.registration_state
                .get_or_create(&vec![("state", state.to_owned())])
                .set(i64::from(state == registration));
        }
        // Families only appear once a label set exists; make both directions visible from the
        // start so dashboards and alerts see a zero rather than nothing.
        for dir in ["uplink", "downlink"] {
            let _ = m
                .frames_dropped
                .get_or_create(&vec![("direction", dir.to_owned())]);
        }
        let mut out = String::new();
        if encode(&mut out, &m.registry).is_err() {
            out.clear();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_has_the_promised_families() {
        let m = Metrics::default();
        m.observe(&LiveEvent::RealtimeError {
            call: "call-1".into(),
            code: "rate_limit_exceeded".into(),
            message: "slow down".into(),
        });
        let text = m.render(2, "registered");
        for needle in [
            "voiceagent_calls_active 2",
            "voiceagent_sip_registered 1",
            "voiceagent_sip_registration_state{state=\"registered\"} 1",
            "voiceagent_frames_dropped_total{direction=\"uplink\"} 0",
            "voiceagent_realtime_errors_total{code=\"rate_limit_exceeded\"} 1",
            "# TYPE voiceagent_turn_latency_seconds histogram",
            "# EOF",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in\n{text}");
        }
    }
}
