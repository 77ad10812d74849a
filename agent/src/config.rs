//! The service's configuration: one typed struct, loaded once at start-up.
//!
//! Operators set environment variables (the names they already use, e.g. `SIP_SERVER`), a
//! `.env` file beside them, or a TOML file for larger setups; the environment wins over `.env`,
//! which wins over the file. Everything is validated before a single socket is opened, and every
//! problem is reported at once with the key, the value (never a secret's), what is wrong and what
//! to set instead, so a misconfigured container fails with one readable message rather than one
//! restart per mistake. The rest of the service only sees typed values ([`Duration`],
//! [`SocketAddr`], enums); no other module reads the environment.
//!
//! The key table in [`keys`] is the single list of settings; `docs/CONFIGURATION.md` and
//! `.env.example` are checked against it by the tests.

mod assemble;
mod engine;
mod error;
pub mod keys;
mod parse;
mod sources;
mod summary;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use pjsip_safe::{IpNet, OpusConfig, Secret, Transport};

use crate::api::guard::AllowedHost;
use crate::api::outbound::OutboundPolicy;
use crate::realtime::conversation::{ConversationConfig, Greeting};
use crate::realtime::wire::{NoiseReductionKind, TurnDetection};

pub use error::{ConfigError, ConfigErrors, ConfigWarning};
pub use sources::{EnvFile, Sources};

/// Everything the service is configured with.
#[derive(Debug, Clone)]
pub struct Config {
    pub sip: SipSettings,
    pub realtime: RealtimeSettings,
    pub agent: AgentSettings,
    pub bridge: BridgeSettings,
    pub data: DataSettings,
    pub api: ApiSettings,
    pub recording: RecordingSettings,
    pub log: LogSettings,
    /// How long a graceful shutdown may take (`SHUTDOWN_TIMEOUT_MS`).
    pub shutdown_timeout: Duration,
    /// Probably unintended settings (typos, ignored keys); log them at start-up.
    pub warnings: Vec<ConfigWarning>,
}

/// SIP signalling and RTP media.
#[derive(Debug, Clone)]
pub struct SipSettings {
    /// Registration with a SIP trunk; `None` = IP mode (direct calls, no registration).
    pub trunk: Option<TrunkSettings>,
    pub port: u16,
    pub bind: IpAddr,
    pub public_ip: Option<IpAddr>,
    pub transports: Vec<Transport>,
    pub allowed_sources: Vec<IpNet>,
    pub stun_servers: Vec<String>,
    pub max_calls: u32,
    pub rtp_port_start: u16,
    pub rtp_port_range: u16,
    /// PJSIP codec id prefixes in order of preference, e.g. `opus/48000`.
    pub codecs: Vec<String>,
    pub opus: OpusConfig,
    pub jitter_max_ms: u32,
    /// Trunk mode: INVITEs only from the trunk's addresses and `allowed_sources`.
    pub trunk_sources_only: bool,
    /// New INVITEs per second per source address (the trunk is exempt); 0 = unlimited.
    pub invite_rate: u32,
    /// Hang up a call that received no RTP for this long (zero = never).
    pub rtp_timeout: Duration,
    /// `User-Agent` / `Server` header.
    pub user_agent: String,
    /// SIP over TLS (with `tls` in `transports`).
    pub tls: pjsip_safe::TlsConfig,
    /// SRTP for the calls' media.
    pub srtp: pjsip_safe::SrtpMode,
}

/// The trunk account (`SIP_SERVER` and friends).
#[derive(Debug, Clone)]
pub struct TrunkSettings {
    /// Registrar `host[:port]`.
    pub server: String,
    pub username: String,
    pub password: Secret,
    pub domain: Option<String>,
    pub proxy: Option<String>,
    pub register_interval: Duration,
}

/// The Realtime model endpoint.
#[derive(Debug, Clone)]
pub struct RealtimeSettings {
    /// `None` = use the built-in local Realtime server (the embedded default).
    pub api_key: Option<Secret>,
    pub url: String,
    pub model: String,
    pub voice: String,
}

/// What the agent says and how it listens.
#[derive(Debug, Clone)]
pub struct AgentSettings {
    /// Configured instructions; `None` = the built-in ordering instructions.
    pub instructions: Option<String>,
    /// Where the instructions came from (`AGENT_INSTRUCTIONS`, a file path, or `built-in`).
    pub instructions_source: String,
    /// What the agent says first; `None` = the model greets as its instructions say.
    pub greeting: Option<String>,
    /// ISO 639-1 code, used as the transcription language hint.
    pub language: String,
    pub turn_detection: TurnDetection,
    pub noise_reduction: Option<NoiseReductionKind>,
    /// `None` = no input transcription (no caller lines in transcripts).
    pub transcription_model: Option<String>,
}

/// What the bridge does when the model is slow, missing or done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeSettings {
    /// Ring this long before answering.
    pub ring_delay: Duration,
    /// Wait this long for `session.updated` before treating the backend as failed.
    pub answer_timeout: Duration,
    pub backend_failure: BackendFailure,
    /// Play the hold sound when a tool runs longer than this; `None` = never.
    pub tool_hold_after: Option<Duration>,
    pub tool_timeout: Duration,
    /// SIP URI for `transfer_call`; `None` = transfers are refused.
    pub transfer_target: Option<String>,
    /// Time to finish tool calls and transcripts after the caller hung up.
    pub hangup_grace: Duration,
}

/// What a call gets when the Realtime backend cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendFailure {
    /// Answer and play the local apology prompt, then hang up.
    Apology,
    /// Reject the call with 503 Service Unavailable.
    Reject,
}

/// Where the service keeps its files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataSettings {
    pub data_dir: PathBuf,
    pub catalog_dir: PathBuf,
}

impl DataSettings {
    /// The order database, `DATA_DIR/orders.sqlite3`.
    pub fn orders_db(&self) -> PathBuf {
        self.data_dir.join("orders.sqlite3")
    }

    /// Call recordings, `DATA_DIR/recordings`.
    pub fn recordings_dir(&self) -> PathBuf {
        self.data_dir.join("recordings")
    }
}

/// The HTTP status and order API.
#[derive(Debug, Clone)]
pub struct ApiSettings {
    pub addr: SocketAddr,
    /// Bearer token; `None` = no authentication (only sensible on loopback).
    pub token: Option<Secret>,
    /// `API_ALLOWED_HOSTS`: names accepted in `Host`/`Origin` besides the bind address.
    pub allowed_hosts: Vec<AllowedHost>,
    /// `OUTBOUND_ALLOWED` with the trunk's hosts; disabled when empty.
    pub outbound: OutboundPolicy,
}

/// Call recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingSettings {
    pub enabled: bool,
    /// Delete recordings older than this; `None` = keep forever.
    pub retention: Option<Duration>,
    /// Tell callers that the call is recorded.
    pub notice: bool,
}

/// Logging.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSettings {
    /// A `tracing_subscriber::EnvFilter` directive, e.g. `info` or `info,agent=debug`.
    pub filter: String,
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

impl Config {
    /// Reads the environment, the `.env` file and the TOML file named by `sources`, and
    /// validates everything; all problems are returned together.
    pub fn load(sources: &Sources) -> Result<Config, ConfigErrors> {
        let layers = sources::gather(sources);
        assemble::assemble(layers)
    }

    /// Builds the configuration from these variables alone, without a `.env` file (files named
    /// by `VOICEAGENT_CONFIG` and `AGENT_*_FILE` are still read); for tests and embedding.
    pub fn from_map(vars: HashMap<String, String>) -> Result<Config, ConfigErrors> {
        Config::load(&Sources {
            env: vars,
            env_file: EnvFile::None,
            config_file: None,
        })
    }

    /// Whether calls go to the built-in local Realtime server (no `OPENAI_API_KEY`).
    pub fn uses_local_realtime(&self) -> bool {
        self.realtime.api_key.is_none()
    }

    /// Whether the engine registers with a trunk (`SIP_SERVER` set).
    pub fn is_trunk_mode(&self) -> bool {
        self.sip.trunk.is_some()
    }

    /// The per-call conversation settings: model, voice, VAD, transcription and greeting from
    /// this configuration; `default_instructions` is called only when none are configured.
    /// Tools are `ConversationConfig`'s defaults (`end_call`, `transfer_call`); the caller adds
    /// the ordering tools.
    pub fn conversation_config(
        &self,
        default_instructions: impl FnOnce() -> String,
    ) -> ConversationConfig {
        let agent = &self.agent;
        ConversationConfig {
            model: self.realtime.model.clone(),
            instructions: agent
                .instructions
                .clone()
                .unwrap_or_else(default_instructions),
            voice: self.realtime.voice.clone(),
            turn_detection: Some(agent.turn_detection.clone()),
            transcription_model: agent.transcription_model.clone(),
            transcription_language: Some(agent.language.clone()),
            noise_reduction: agent.noise_reduction,
            greeting: Greeting::Model {
                extra: agent
                    .greeting
                    .as_ref()
                    .map(|text| format!("Begin the call by saying exactly this greeting: {text}")),
            },
            ..ConversationConfig::default()
        }
    }
}
