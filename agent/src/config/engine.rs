//! The SIP/RTP part of the configuration as the engine's own settings.
//!
//! Kept apart from parsing so the mapping is visible in one screen: anything not set here keeps
//! `EngineConfig::default()`, which already holds the engine's tuned values.

use pjsip_safe::{AccountConfig, AnswerMode, EngineConfig, JitterConfig};

use super::Config;

impl Config {
    /// Engine settings for `pjsip_safe::Engine::start`. Calls are answered manually: the bridge
    /// answers once the Realtime session is ready (or the apology prompt is chosen).
    pub fn engine_config(&self) -> EngineConfig {
        let sip = &self.sip;
        let defaults = EngineConfig::default();
        EngineConfig {
            bind: sip.bind,
            sip_port: sip.port,
            transports: sip.transports.clone(),
            public_address: sip.public_ip.map(|ip| ip.to_string()),
            rtp_port_start: sip.rtp_port_start,
            rtp_port_range: sip.rtp_port_range,
            account: sip.trunk.as_ref().map(|t| AccountConfig {
                server: t.server.clone(),
                username: t.username.clone(),
                password: t.password.clone(),
                domain: t.domain.clone(),
                proxy: t.proxy.clone(),
                reg_interval: t.register_interval,
                retry_interval: std::time::Duration::from_secs(30),
            }),
            stun_servers: sip.stun_servers.clone(),
            codecs: sip.codecs.clone(),
            opus: sip.opus,
            jitter: JitterConfig {
                max_ms: Some(sip.jitter_max_ms),
                ..JitterConfig::default()
            },
            max_calls: sip.max_calls,
            allowed_sources: sip.allowed_sources.clone(),
            trunk_sources_only: sip.trunk_sources_only,
            invite_rate: (sip.invite_rate > 0).then(|| pjsip_safe::InviteRate {
                per_second: f64::from(sip.invite_rate),
                burst: sip.invite_rate.saturating_mul(4),
            }),
            rtp_timeout: sip.rtp_timeout,
            user_agent: sip.user_agent.clone(),
            tls: sip.tls.clone(),
            srtp: sip.srtp,
            answer: AnswerMode::Manual,
            log_level: pjsip_log_level(&self.log.filter),
            shutdown_timeout: self.shutdown_timeout,
            ..defaults
        }
    }
}

/// PJSIP's verbosity (0–6) for a plain `LOG_LEVEL`; a filter expression keeps the default 3
/// (warnings and notable events), since its per-target levels do not map onto PJSIP's one knob.
fn pjsip_log_level(filter: &str) -> u32 {
    match filter.trim().to_ascii_lowercase().as_str() {
        "off" => 0,
        "error" => 1,
        "warn" => 2,
        "debug" => 4,
        "trace" => 5,
        _ => 3,
    }
}
