//! Live events for operators: what every call is doing right now, as it happens.
//!
//! The bridge and the service publish to a broadcast channel; the HTTP API's event stream and
//! the dashboard subscribe. Publishing never blocks and never fails a call: with nobody
//! listening, or a listener too slow, events are simply dropped for that listener.
//!
//! The bus also keeps each active call's story so far (transcript lines, tool calls, barge-ins,
//! errors; not the frequent level and quality samples), so an operator who opens the dashboard in
//! the middle of a call sees what was said before. A call's story is dropped when it ends: by
//! then the service holds the call's full report.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

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
    /// RTP quality of an active call, sampled about once a second by the API.
    Quality {
        call: String,
        codec: String,
        clock_rate: u32,
        rx_jitter_ms: f64,
        rx_lost: u32,
        rx_packets: u32,
        rtt_ms: Option<f64>,
        jitter_buffer_ms: u32,
    },
    /// The Realtime backend sent an `error` event (or the connection failed: code `connection`).
    RealtimeError {
        call: String,
        code: String,
        message: String,
    },
    /// From the end of the caller's speech to the first agent audio of the answer.
    TurnLatency {
        call: String,
        ms: u64,
    },
}

impl LiveEvent {
    /// The call this event belongs to, if any.
    pub fn call(&self) -> Option<&str> {
        match self {
            LiveEvent::CallStarted { call, .. }
            | LiveEvent::CallAnswered { call }
            | LiveEvent::CallEnded { call, .. }
            | LiveEvent::Transcript { call, .. }
            | LiveEvent::ToolCall { call, .. }
            | LiveEvent::BargeIn { call, .. }
            | LiveEvent::Levels { call, .. }
            | LiveEvent::Quality { call, .. }
            | LiveEvent::RealtimeError { call, .. }
            | LiveEvent::TurnLatency { call, .. } => Some(call),
            LiveEvent::Registration { .. } => None,
        }
    }

    /// Part of a call's story (kept for late viewers), as opposed to a frequent sample.
    fn is_story(&self) -> bool {
        !matches!(
            self,
            LiveEvent::Levels { .. } | LiveEvent::Quality { .. } | LiveEvent::Registration { .. }
        )
    }
}

/// How many story events are kept per active call (a long call keeps its first ones).
const STORY_LIMIT: usize = 2000;

/// The broadcast channel of [`LiveEvent`]s, plus each active call's story so far.
#[derive(Debug, Clone)]
pub struct LiveBus {
    tx: broadcast::Sender<LiveEvent>,
    stories: Arc<Mutex<HashMap<String, Vec<LiveEvent>>>>,
}

impl Default for LiveBus {
    fn default() -> Self {
        Self::new(1024)
    }
}

impl LiveBus {
    pub fn new(capacity: usize) -> Self {
        Self {
            tx: broadcast::channel(capacity).0,
            stories: Arc::default(),
        }
    }

    /// Never blocks for long (a short lock on the story book); never called from audio callbacks.
    pub fn publish(&self, event: LiveEvent) {
        if let Some(call) = event.call() {
            if let Ok(mut stories) = self.stories.lock() {
                match &event {
                    LiveEvent::CallEnded { .. } => {
                        stories.remove(call);
                    }
                    e if e.is_story() => {
                        let story = stories.entry(call.to_owned()).or_default();
                        if story.len() < STORY_LIMIT {
                            story.push(event.clone());
                        }
                    }
                    _ => {}
                }
            }
        }
        let _ = self.tx.send(event);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<LiveEvent> {
        self.tx.subscribe()
    }

    /// What an active call did so far (empty for unknown or ended calls).
    pub fn story(&self, call: &str) -> Vec<LiveEvent> {
        self.stories
            .lock()
            .ok()
            .and_then(|s| s.get(call).cloned())
            .unwrap_or_default()
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
    fn the_bus_keeps_an_active_calls_story_until_it_ends() {
        let bus = LiveBus::new(8);
        let mut rx = bus.subscribe();
        bus.publish(LiveEvent::Transcript {
            call: "call-1".into(),
            speaker: "caller",
            text: "Hallo".into(),
            at_ms: 10,
        });
        bus.publish(LiveEvent::Levels {
            call: "call-1".into(),
            caller_dbfs: -20.0,
            agent_dbfs: -100.0,
        });
        assert_eq!(
            bus.story("call-1").len(),
            1,
            "levels are not part of the story"
        );
        assert!(bus.story("call-2").is_empty());
        bus.publish(LiveEvent::CallEnded {
            call: "call-1".into(),
            reason: "hangup".into(),
            duration_ms: 1000,
        });
        assert!(bus.story("call-1").is_empty());
        let mut seen = 0;
        while rx.try_recv().is_ok() {
            seen += 1;
        }
        assert_eq!(seen, 3, "every event is broadcast");
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
