//! What happened on a call: the record the bridge fills, the service keeps and the API shows.
//!
//! It lives below the bridge, the service and the API (it imports only the transcript type), so
//! each of them can read a report without importing the others.

use std::time::SystemTime;

use crate::realtime::conversation::Transcript;

/// A tool call as it happened, for the call's record.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ToolCallRecord {
    pub name: String,
    pub arguments: String,
    pub output: String,
    pub ok: bool,
    pub duration_ms: u64,
    pub at_ms: u64,
}

/// What happened on a call; logged at its end and kept by the service.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CallReport {
    pub call: String,
    pub direction: &'static str,
    pub from: String,
    pub to: String,
    #[serde(with = "unix_ms")]
    pub started_at: SystemTime,
    pub answered_after_ms: Option<u64>,
    pub duration_ms: u64,
    pub codec: Option<String>,
    pub clock_rate: Option<u32>,
    pub end_reason: String,
    pub barge_ins: u32,
    pub truncations: Vec<(String, u64)>,
    pub tool_calls: Vec<ToolCallRecord>,
    pub errors: Vec<String>,
    pub backend_failed: bool,
    pub transcript: Transcript,
    /// Frame captured by the engine → `append` sent, per frame (µs).
    #[serde(skip)]
    pub uplink_latency_us: Vec<u32>,
    /// Delta received → handed to the engine's queue (µs).
    #[serde(skip)]
    pub downlink_latency_us: Vec<u32>,
    /// Delta received → its first sample handed to PJSIP's clock tick (µs), for each delta
    /// that starts playback on an idle line (the start of every answer). Later deltas of an
    /// answer wait behind the audio queued before them, by design, so they are not timed.
    #[serde(skip)]
    pub downlink_play_latency_us: Vec<u32>,
}

mod unix_ms {
    use std::time::{SystemTime, UNIX_EPOCH};

    pub fn serialize<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        let ms = t
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        s.serialize_u64(ms)
    }
}

/// The `p`-th percentile (0..=100) of `values`, or 0 when there are none.
pub fn percentile(values: &[u32], p: f64) -> u32 {
    if values.is_empty() {
        return 0;
    }
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// One line per call with the bridge's own latencies, so operators (and the bridge benchmark)
/// see them without an API: uplink = frame captured by the port → `append` sent; downlink =
/// delta received → its audio in the engine's queue; downlink_play = delta received → its
/// first sample handed to PJSIP's clock tick, for deltas that start an answer.
pub fn log_latency(report: &CallReport) {
    let (up, down) = (&report.uplink_latency_us, &report.downlink_latency_us);
    let play = &report.downlink_play_latency_us;
    tracing::info!(
        call = %report.call,
        uplink_frames = up.len(),
        uplink_p50_us = percentile(up, 50.0),
        uplink_p99_us = percentile(up, 99.0),
        uplink_max_us = up.iter().copied().max().unwrap_or(0),
        downlink_deltas = down.len(),
        downlink_p50_us = percentile(down, 50.0),
        downlink_p99_us = percentile(down, 99.0),
        downlink_max_us = down.iter().copied().max().unwrap_or(0),
        downlink_play_starts = play.len(),
        downlink_play_p50_us = percentile(play, 50.0),
        downlink_play_p99_us = percentile(play, 99.0),
        downlink_play_max_us = play.iter().copied().max().unwrap_or(0),
        "bridge latency"
    );
}

#[cfg(test)]
mod latency_tests {
    use super::percentile;

    #[test]
    fn percentiles_pick_ranked_values() {
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), 51);
        assert_eq!(percentile(&v, 99.0), 99);
        assert_eq!(percentile(&v, 100.0), 100);
        assert_eq!(percentile(&[], 99.0), 0);
    }
}
