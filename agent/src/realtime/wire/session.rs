//! The GA `session` object: what we send in `session.update` and what the server echoes in
//! `session.created` / `session.updated`.
//!
//! One type serves both directions on purpose: the echo is compared field by field with what we
//! asked for (reference §4.4: formats have been seen silently replaced), so both sides must mean
//! the same thing. Fields that GA treats as "null = off" (`transcription`, `noise_reduction`,
//! `turn_detection`) are always serialized, so every update states the whole audio configuration
//! instead of inheriting server defaults. Beta names (`modalities`, `voice` at top level,
//! `temperature`) do not exist here, so they cannot be sent by mistake.

use serde::{Deserialize, Serialize};

/// PCM sample rate of the Realtime API; the only rate GA accepts for `audio/pcm` (reference §4.1).
pub const PCM_RATE_HZ: u32 = 24_000;

/// `session.type`. Required on every update: without it the whole update is rejected (§16.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SessionType {
    Realtime,
    Transcription,
}

/// A GA session object. Every field but `type` is optional; `None` fields are left out of the
/// JSON except the three nullable audio settings (see the module docs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Session {
    #[serde(rename = "type")]
    pub session_type: SessionType,
    /// Server-assigned id (`sess_…`); only present in server events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instructions: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_modalities: Option<Vec<Modality>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio: Option<SessionAudio>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<Tool>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice>,
}

impl Session {
    /// An empty realtime session object (only `type`), to be filled in.
    pub fn realtime() -> Self {
        Session {
            session_type: SessionType::Realtime,
            id: None,
            model: None,
            instructions: None,
            output_modalities: None,
            audio: None,
            tools: None,
            tool_choice: None,
        }
    }
}

/// `output_modalities` entries. GA allows exactly one of `["audio"]` or `["text"]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Modality {
    Audio,
    Text,
    /// A modality this client does not know; kept so parsing never fails on it.
    #[serde(other)]
    Other,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SessionAudio {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<AudioInput>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<AudioOutput>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AudioInput {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<AudioFormat>,
    /// `null` = no input transcription.
    #[serde(default)]
    pub transcription: Option<Transcription>,
    /// `null` = no noise reduction.
    #[serde(default)]
    pub noise_reduction: Option<NoiseReduction>,
    /// `null` = VAD off (manual commit and `response.create`).
    #[serde(default)]
    pub turn_detection: Option<TurnDetection>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AudioOutput {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<AudioFormat>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voice: Option<Voice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speed: Option<f64>,
}

/// GA audio format objects (reference §4.1). Always send `rate` with `audio/pcm` (§4.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum AudioFormat {
    #[serde(rename = "audio/pcm")]
    Pcm { rate: u32 },
    #[serde(rename = "audio/pcmu")]
    Pcmu,
    #[serde(rename = "audio/pcma")]
    Pcma,
    /// A format this client does not know (parsing only).
    #[serde(other)]
    Other,
}

impl AudioFormat {
    /// PCM16 little-endian at 24 kHz, the format this bridge uses in both directions.
    pub const PCM_24K: AudioFormat = AudioFormat::Pcm { rate: PCM_RATE_HZ };
}

/// A built-in voice name (`marin`, `cedar`, `alloy`, …) or a custom voice `{"id": "voice_…"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Voice {
    Named(String),
    Custom { id: String },
}

impl std::fmt::Display for Voice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Voice::Named(name) => f.write_str(name),
            Voice::Custom { id } => write!(f, "custom:{id}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transcription {
    pub model: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoiseReduction {
    #[serde(rename = "type")]
    pub kind: NoiseReductionKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoiseReductionKind {
    NearField,
    FarField,
    #[serde(other)]
    Other,
}

/// `audio.input.turn_detection` when not null (reference §9).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TurnDetection {
    ServerVad {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        threshold: Option<f64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        prefix_padding_ms: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        silence_duration_ms: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        idle_timeout_ms: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        create_response: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        interrupt_response: Option<bool>,
    },
    SemanticVad {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        eagerness: Option<Eagerness>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        create_response: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        interrupt_response: Option<bool>,
    },
    /// A VAD type this client does not know (parsing only).
    #[serde(other)]
    Other,
}

impl TurnDetection {
    /// Whether the server creates a response by itself when the caller stops (default true).
    pub fn creates_response(&self) -> bool {
        match self {
            TurnDetection::ServerVad {
                create_response, ..
            }
            | TurnDetection::SemanticVad {
                create_response, ..
            } => create_response.unwrap_or(true),
            TurnDetection::Other => true,
        }
    }

    /// Whether the server cancels an ongoing response when the caller starts (default true).
    pub fn interrupts_response(&self) -> bool {
        match self {
            TurnDetection::ServerVad {
                interrupt_response, ..
            }
            | TurnDetection::SemanticVad {
                interrupt_response, ..
            } => interrupt_response.unwrap_or(true),
            TurnDetection::Other => true,
        }
    }

    /// The wire name of the VAD type.
    pub fn type_name(&self) -> &'static str {
        match self {
            TurnDetection::ServerVad { .. } => "server_vad",
            TurnDetection::SemanticVad { .. } => "semantic_vad",
            TurnDetection::Other => "other",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Eagerness {
    Low,
    Medium,
    High,
    Auto,
    #[serde(other)]
    Other,
}

/// A tool in the flat GA shape (not Chat Completions' nested `function`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Tool {
    Function(FunctionTool),
    /// MCP or a future tool type (parsing only).
    #[serde(other)]
    Other,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionTool {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// JSON schema of the arguments.
    #[serde(default)]
    pub parameters: serde_json::Value,
}

/// `tool_choice`: a mode string, or a forced function `{"type":"function","name":…}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ToolChoice {
    Mode(ToolChoiceMode),
    Function(ForcedFunction),
    /// MCP or a future shape (parsing only).
    Other(serde_json::Value),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ToolChoiceMode {
    Auto,
    None,
    Required,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForcedFunction {
    #[serde(rename = "type")]
    pub kind: ForcedFunctionType,
    pub name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ForcedFunctionType {
    Function,
}
