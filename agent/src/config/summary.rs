//! The configuration as JSON for the start-up log and the status API.
//!
//! Built field by field rather than by deriving `Serialize` on the settings, so a secret can only
//! appear here if someone writes it here: secrets are shown as `"set"`/`"unset"`, and the
//! instructions (long, sometimes confidential) only by source and length.

use serde_json::{json, Value};

use super::{BackendFailure, Config, LogFormat};

fn set(present: bool) -> &'static str {
    if present {
        "set"
    } else {
        "unset"
    }
}

fn ms(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Config {
    /// Every setting except secrets, which appear as `"set"`/`"unset"`.
    pub fn summary(&self) -> Value {
        let sip = &self.sip;
        let trunk = sip.trunk.as_ref().map(|t| {
            json!({
                "server": t.server,
                "username": t.username,
                "password": set(!t.password.expose().is_empty()),
                "domain": t.domain,
                "proxy": t.proxy,
                "register_interval_s": t.register_interval.as_secs(),
            })
        });
        let agent = &self.agent;
        let bridge = &self.bridge;
        json!({
            "sip": {
                "mode": if trunk.is_some() { "trunk" } else { "ip" },
                "trunk": trunk,
                "port": sip.port,
                "bind": sip.bind.to_string(),
                "public_ip": sip.public_ip.map(|ip| ip.to_string()),
                "transports": sip.transports.iter().map(|t| format!("{t:?}").to_lowercase()).collect::<Vec<_>>(),
                "allowed_sources": sip.allowed_sources.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "stun_servers": sip.stun_servers,
                "max_calls": sip.max_calls,
                "rtp_port_start": sip.rtp_port_start,
                "rtp_port_range": sip.rtp_port_range,
                "codecs": sip.codecs,
                "opus": {
                    "bitrate": sip.opus.bitrate,
                    "complexity": sip.opus.complexity,
                    "fec": sip.opus.fec,
                },
                "jitter_max_ms": sip.jitter_max_ms,
            },
            "realtime": {
                "backend": if self.uses_local_realtime() { "local" } else { "openai" },
                "api_key": set(self.realtime.api_key.is_some()),
                "url": self.realtime.url,
                "model": self.realtime.model,
                "voice": self.realtime.voice,
            },
            "agent": {
                "instructions": {
                    "source": agent.instructions_source,
                    "chars": agent.instructions.as_ref().map(|s| s.chars().count()),
                },
                "greeting": agent.greeting,
                "language": agent.language,
                "turn_detection": agent.turn_detection,
                "noise_reduction": agent.noise_reduction,
                "transcription_model": agent.transcription_model,
            },
            "bridge": {
                "ring_delay_ms": ms(bridge.ring_delay),
                "answer_timeout_ms": ms(bridge.answer_timeout),
                "backend_failure": match bridge.backend_failure {
                    BackendFailure::Apology => "apology",
                    BackendFailure::Reject => "reject",
                },
                "tool_hold_sound_ms": bridge.tool_hold_after.map(ms),
                "tool_timeout_ms": ms(bridge.tool_timeout),
                "transfer_target": bridge.transfer_target,
                "hangup_grace_ms": ms(bridge.hangup_grace),
            },
            "data": {
                "data_dir": self.data.data_dir.display().to_string(),
                "catalog_dir": self.data.catalog_dir.display().to_string(),
            },
            "api": {
                "addr": self.api.addr.to_string(),
                "token": set(self.api.token.is_some()),
                "allowed_hosts": self.api.allowed_hosts.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "outbound_allowed": self.api.outbound.patterns().iter().map(ToString::to_string).collect::<Vec<_>>(),
            },
            "recording": {
                "enabled": self.recording.enabled,
                "retention_days": self.recording.retention.map(|d| d.as_secs() / 86_400),
                "notice": self.recording.notice,
            },
            "log": {
                "filter": self.log.filter,
                "format": match self.log.format {
                    LogFormat::Text => "text",
                    LogFormat::Json => "json",
                },
            },
            "shutdown_timeout_ms": ms(self.shutdown_timeout),
        })
    }
}
