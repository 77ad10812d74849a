//! What one call's conversation is configured with, and the GA session it turns into.
//!
//! The session we send is built from this struct and the echo in `session.updated` is compared
//! with the same struct, so "what we asked for" has a single definition.

use serde_json::json;

use crate::realtime::wire::{
    AudioFormat, AudioInput, AudioOutput, FunctionTool, Modality, NoiseReduction,
    NoiseReductionKind, Session, SessionAudio, Tool, ToolChoice, ToolChoiceMode, Transcription,
    TurnDetection, Voice,
};

/// Name of the built-in tool that ends the call after the goodbye has played.
pub const END_CALL_TOOL: &str = "end_call";
/// Name of the built-in tool that transfers the call to a human.
pub const TRANSFER_CALL_TOOL: &str = "transfer_call";

/// Per-call conversation settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ConversationConfig {
    /// Realtime model, e.g. `gpt-realtime`.
    pub model: String,
    pub instructions: String,
    /// Built-in voice name, e.g. `marin`.
    pub voice: String,
    /// `None` turns VAD off (no barge-in; responses only when this machine asks).
    pub turn_detection: Option<TurnDetection>,
    /// Input transcription model (`None` = off; then no caller lines in the transcript).
    pub transcription_model: Option<String>,
    /// ISO-639-1 language hint for input transcription, e.g. `de`.
    pub transcription_language: Option<String>,
    pub noise_reduction: Option<NoiseReductionKind>,
    pub tools: Vec<ToolDefinition>,
    pub greeting: Greeting,
}

impl Default for ConversationConfig {
    fn default() -> Self {
        ConversationConfig {
            model: "gpt-realtime".into(),
            instructions: String::new(),
            voice: "marin".into(),
            turn_detection: Some(TurnDetection::ServerVad {
                threshold: Some(0.5),
                prefix_padding_ms: Some(300),
                silence_duration_ms: Some(500),
                idle_timeout_ms: None,
                create_response: Some(true),
                interrupt_response: Some(true),
            }),
            transcription_model: Some("gpt-4o-mini-transcribe".into()),
            transcription_language: None,
            noise_reduction: Some(NoiseReductionKind::NearField),
            tools: vec![ToolDefinition::end_call(), ToolDefinition::transfer_call()],
            greeting: Greeting::Model { extra: None },
        }
    }
}

/// What happens once the session is ready.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Greeting {
    /// Wait for the caller to speak first.
    None,
    /// Ask the model to speak first. `extra` is appended to the session instructions for that
    /// one response (response-level instructions replace the session's, so they are combined).
    Model { extra: Option<String> },
}

/// How the machine treats a tool when the model calls it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolKind {
    /// Run by the bridge: [`super::Output::RunTool`], answered with `handle_tool_result`.
    External,
    /// Answered by the machine; the call is hung up once the response's audio has played.
    EndCall,
    /// [`super::Output::TransferAfterPlayback`]; the bridge reports the outcome with
    /// `handle_tool_result` so the model can react to a failed transfer.
    TransferCall,
}

/// A function tool offered to the model.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolDefinition {
    pub name: String,
    pub description: String,
    /// JSON schema of the arguments object.
    pub parameters: serde_json::Value,
    pub kind: ToolKind,
}

impl ToolDefinition {
    /// An ordinary tool run by the bridge.
    pub fn external(
        name: impl Into<String>,
        description: impl Into<String>,
        parameters: serde_json::Value,
    ) -> Self {
        ToolDefinition {
            name: name.into(),
            description: description.into(),
            parameters,
            kind: ToolKind::External,
        }
    }

    /// The built-in `end_call` tool.
    pub fn end_call() -> Self {
        ToolDefinition {
            name: END_CALL_TOOL.into(),
            description: "End the phone call. Say goodbye first; the line is hung up after \
                          your last words have been played."
                .into(),
            parameters: json!({"type": "object", "properties": {}, "additionalProperties": false}),
            kind: ToolKind::EndCall,
        }
    }

    /// The built-in `transfer_call` tool.
    pub fn transfer_call() -> Self {
        ToolDefinition {
            name: TRANSFER_CALL_TOOL.into(),
            description: "Transfer the caller to a human colleague. Tell the caller first.".into(),
            parameters: json!({
                "type": "object",
                "properties": {"reason": {"type": "string", "description": "Why the caller needs a human."}},
                "required": ["reason"],
                "additionalProperties": false
            }),
            kind: ToolKind::TransferCall,
        }
    }
}

impl ConversationConfig {
    /// The GA session object sent in `session.update`. Audio is PCM16 24 kHz both ways.
    pub fn session(&self) -> Session {
        let mut session = Session::realtime();
        session.model = Some(self.model.clone());
        session.instructions = Some(self.instructions.clone());
        session.output_modalities = Some(vec![Modality::Audio]);
        session.audio = Some(SessionAudio {
            input: Some(AudioInput {
                format: Some(AudioFormat::PCM_24K),
                transcription: self
                    .transcription_model
                    .as_ref()
                    .map(|model| Transcription {
                        model: model.clone(),
                        language: self.transcription_language.clone(),
                        prompt: None,
                    }),
                noise_reduction: self.noise_reduction.map(|kind| NoiseReduction { kind }),
                turn_detection: self.turn_detection.clone(),
            }),
            output: Some(AudioOutput {
                format: Some(AudioFormat::PCM_24K),
                voice: Some(Voice::Named(self.voice.clone())),
                speed: None,
            }),
        });
        session.tools = Some(
            self.tools
                .iter()
                .map(|tool| {
                    Tool::Function(FunctionTool {
                        name: tool.name.clone(),
                        description: tool.description.clone(),
                        parameters: tool.parameters.clone(),
                    })
                })
                .collect(),
        );
        session.tool_choice = Some(ToolChoice::Mode(ToolChoiceMode::Auto));
        session
    }

    /// Whether the server interrupts (cancels) a response when the caller starts speaking, which
    /// is also when this machine performs barge-in.
    pub fn barge_in_enabled(&self) -> bool {
        self.turn_detection
            .as_ref()
            .is_some_and(TurnDetection::interrupts_response)
    }

    /// Whether the server creates a response by itself after the caller's turn.
    pub fn server_creates_responses(&self) -> bool {
        self.turn_detection
            .as_ref()
            .is_some_and(TurnDetection::creates_response)
    }

    pub(crate) fn tool(&self, name: &str) -> Option<&ToolDefinition> {
        self.tools.iter().find(|tool| tool.name == name)
    }
}
