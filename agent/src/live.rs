//! Live events for operators: what every call is doing right now, as it happens.
//!
//! The bridge and the service publish to a broadcast channel; the HTTP API's event stream and
//! the dashboard subscribe. Publishing never blocks and never fails a call: with nobody
//! listening, or a listener too slow, events are simply dropped for that listener.

use serde::Serialize;
use tokio::sync::broadcast;

/// One live event, serialized with a `type` tag for the event stream.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LiveEvent {
    CallStarted {
        call: String,
        direction: &'static str,
        from: String,
        to: String,
    },
    CallAnswered {
        call: String,
    },
    CallEnded {
        call: String,
        reason: String,
        duration_ms: u64,
    },
    /// A finished utterance of the caller or the agent.
    Transcript {
        call: String,
        speaker: &'static str,
        text: String,
        at_ms: u64,
    },
    ToolCall {
        call: String,
        name: String,
        arguments: String,
        output: String,
        ok: bool,
        duration_ms: u64,
    },
    BargeIn {
        call: String,
        item_id: String,
        heard_ms: u64,
    },
    /// Audio levels over the last few hundred milliseconds, in dBFS (−100 = silence).
    Levels {
        call: String,
        caller_dbfs: f32,
        agent_dbfs: f32,
    },
    Registration {
        state: String,
    },
}

/// The broadcast channel of [`LiveEvent`]s.
#[derive(Debug, Clone)]
pub struct LiveBus(broadcast::Sender<LiveEvent>);

impl Default for LiveBus {
    fn default() -> Self {
        Self::new(1024)
    }
}

impl LiveBus {
    pub fn new(capacity: usize) -> Self {
        Self(broadcast::channel(capacity).0)
    }

    pub fn publish(&self, event: LiveEvent) {
        let _ = self.0.send(event);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<LiveEvent> {
        self.0.subscribe()
    }
}

/// Accumulates sample energy and turns it into dBFS.
#[derive(Debug, Default, Clone, Copy)]
pub struct Level {
    sum_sq: f64,
    n: u64,
}

impl Level {
    pub fn add(&mut self, samples: &[i16]) {
        for &s in samples {
            let x = f64::from(s) / 32768.0;
            self.sum_sq += x * x;
        }
        self.n += samples.len() as u64;
    }

    /// The level since the last call, and a fresh start.
    pub fn take_dbfs(&mut self) -> f32 {
        let db = if self.n == 0 || self.sum_sq <= 0.0 {
            -100.0
        } else {
            (10.0 * (self.sum_sq / self.n as f64).log10()).max(-100.0)
        };
        *self = Level::default();
        db as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_are_dbfs() {
        let mut l = Level::default();
        assert_eq!(l.take_dbfs(), -100.0);
        l.add(&[i16::MAX, i16::MIN, i16::MAX, i16::MIN]);
        assert!(l.take_dbfs().abs() < 0.01);
        l.add(&[3277; 100]);
        assert!(
            (l.take_dbfs() + 20.0).abs() < 0.1,
            "a tenth of full scale is -20 dBFS"
        );
    }

    #[test]
    fn events_serialize_with_a_type_tag() {
        let e = LiveEvent::BargeIn {
            call: "call-1".into(),
            item_id: "item_1".into(),
            heard_ms: 640,
        };
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"type":"barge_in","call":"call-1","item_id":"item_1","heard_ms":640}"#
        );
    }
}
