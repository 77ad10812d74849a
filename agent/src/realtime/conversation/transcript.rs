//! The call's record: what both sides said, keys pressed and tools run, with times relative to
//! the start of the call (no wall clock in protocol logic; the API adds the call's start time).

use serde::Serialize;

/// Everything said and done in one call, in arrival order.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Transcript {
    pub entries: Vec<TranscriptEntry>,
}

/// One line of the record. `at_ms` is milliseconds since the conversation was created.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TranscriptEntry {
    pub at_ms: u64,
    #[serde(flatten)]
    pub event: TranscriptEvent,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TranscriptEvent {
    /// The caller's words, from the asynchronous input transcription.
    Caller { item_id: String, text: String },
    /// The agent's words. `heard_ms` is set when the caller interrupted: only that much of the
    /// audio was played (the text is the full generated transcript).
    Agent {
        item_id: String,
        text: String,
        heard_ms: Option<u64>,
    },
    /// A DTMF key the caller pressed.
    Dtmf { digit: char },
    /// A tool call; `output` and `duration_ms` are filled in when the result arrives.
    Tool {
        call_id: String,
        name: String,
        arguments: String,
        output: Option<String>,
        duration_ms: Option<u64>,
    },
}

impl Transcript {
    pub(crate) fn push(&mut self, at_ms: u64, event: TranscriptEvent) {
        self.entries.push(TranscriptEntry { at_ms, event });
    }

    pub(crate) fn set_heard(&mut self, item: &str, heard: u64) -> bool {
        for entry in self.entries.iter_mut().rev() {
            if let TranscriptEvent::Agent {
                item_id, heard_ms, ..
            } = &mut entry.event
            {
                if item_id == item {
                    *heard_ms = Some(heard);
                    return true;
                }
            }
        }
        false
    }

    pub(crate) fn set_tool_output(&mut self, call: &str, result: &str, duration_ms: u64) {
        for entry in self.entries.iter_mut().rev() {
            if let TranscriptEvent::Tool {
                call_id,
                output,
                duration_ms: duration,
                ..
            } = &mut entry.event
            {
                if call_id == call {
                    *output = Some(result.to_owned());
                    *duration = Some(duration_ms);
                    return;
                }
            }
        }
    }
}
