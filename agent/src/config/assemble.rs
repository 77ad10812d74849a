//! From raw settings to the typed [`Config`]: defaults, per-key parsing and the rules that
//! involve several keys (trunk mode needs a user name, instructions come from text or a file but
//! not both, the SIP port must not sit inside the RTP range, …).
//!
//! Every section is read even after an error so that one run reports every problem.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use pjsip_safe::{OpusConfig, Transport, DEFAULT_CODECS};

use super::error::ConfigErrors;
use super::parse::{self, Reader};
use super::sources::Layers;
use super::{
    AgentSettings, ApiSettings, BackendFailure, BridgeSettings, Config, DataSettings, LogFormat,
    LogSettings, RealtimeSettings, RecordingSettings, SipSettings, TrunkSettings,
};
use crate::api::guard::AllowedHost;
use crate::api::outbound::{OutboundPattern, OutboundPolicy};
use crate::realtime::wire::{Eagerness, NoiseReductionKind, TurnDetection};

pub(super) const DEFAULT_REALTIME_URL: &str = "wss://api.openai.com/v1/realtime";

/// Voices the GA Realtime API offered when this was written; others only warn, since new
/// voices appear without notice.
const KNOWN_VOICES: &[&str] = &[
    "alloy", "ash", "ballad", "cedar", "coral", "echo", "marin", "sage", "shimmer", "verse",
];

pub(super) fn assemble(layers: Layers) -> Result<Config, ConfigErrors> {
    let mut r = Reader::new(&layers.values);
    let sip = sip(&mut r);
    let realtime = realtime(&mut r);
    let agent = agent(&mut r);
    let bridge = bridge(&mut r);
    let data = data(&mut r);
    let api = api(&mut r, &sip);
    let recording = recording(&mut r);
    let log = log(&mut r);
    let shutdown_timeout = r.parse_or(
        "SHUTDOWN_TIMEOUT_MS",
        Duration::from_secs(5),
        parse::millis(100..=120_000),
    );

    let mut errors = layers.errors;
    errors.append(&mut r.errors);
    let mut warnings = layers.warnings;
    warnings.append(&mut r.warnings);

    let config = Config {
        sip,
        realtime,
        agent,
        bridge,
        data,
        api,
        recording,
        log,
        shutdown_timeout,
        warnings: Vec::new(),
    };
    if errors.is_empty() {
        // The engine's own checks (e.g. MAX_CALLS against PJSUA_MAX_CALLS) as a last line of
        // defence, translated back to our key names.
        if let Err(pjsip_safe::Error::Config { key, problem }) = config.engine_config().validate() {
            let values = &layers.values;
            let mut r = Reader::new(values);
            r.fail(engine_key(key), problem);
            errors.append(&mut r.errors);
        }
    }
    if errors.is_empty() {
        Ok(Config { warnings, ..config })
    } else {
        Err(ConfigErrors { errors, warnings })
    }
}

/// Our key for an `EngineConfig` field named in a `pjsip_safe::Error::Config`.
fn engine_key(field: &str) -> &'static str {
    match field {
        "transports" => "SIP_TRANSPORT",
        "max_calls" => "MAX_CALLS",
        "rtp_port_range" => "RTP_PORT_RANGE",
        "codecs" => "CODECS",
        "opus.complexity" => "OPUS_COMPLEXITY",
        "opus.bitrate" => "OPUS_BITRATE",
        "account.username" => "SIP_USERNAME",
        _ => "SIP_SERVER",
    }
}

fn sip(r: &mut Reader) -> SipSettings {
    let trunk = trunk(r);
    let port = r.parse_or("SIP_PORT", 5060, parse::port);
    let bind = r.parse_or("SIP_BIND", IpAddr::from([0, 0, 0, 0]), parse::ip_addr);
    let public_ip = r.parse("SIP_PUBLIC_IP", parse::ip_addr);
    if public_ip.is_some_and(|ip| ip.is_unspecified()) {
        r.fail(
            "SIP_PUBLIC_IP",
            "the unspecified address cannot be advertised",
        );
    }
    let transports = r
        .parse("SIP_TRANSPORT", |s| {
            let mut transports = Vec::new();
            for item in parse::list(s) {
                let t = parse::one_of(&[
                    ("udp", Transport::Udp),
                    ("tcp", Transport::Tcp),
                    ("tls", Transport::Tls),
                ])(&item)
                .map_err(|p| format!("`{item}` is {p}"))?;
                if !transports.contains(&t) {
                    transports.push(t);
                }
            }
            if transports.is_empty() {
                return Err("names no transport".to_string());
            }
            Ok(transports)
        })
        .unwrap_or_else(|| vec![Transport::Udp, Transport::Tcp]);
    let allowed_sources = r
        .parse("SIP_ALLOWED_SOURCES", parse::list_of(parse::network))
        .unwrap_or_default();
    if trunk.is_none() && allowed_sources.is_empty() && !bind.is_loopback() {
        r.warn(
            "SIP_ALLOWED_SOURCES",
            format!(
                "empty while SIP_BIND={bind} accepts direct calls (IP mode, SIP_SERVER unset): \
                 anyone who reaches SIP_PORT can call in, and every call opens a Realtime \
                 session (paid, with OPENAI_API_KEY); set SIP_ALLOWED_SOURCES to the networks \
                 allowed to call (e.g. 10.0.0.0/8), bind SIP_BIND to 127.0.0.1, or firewall the \
                 port (scripts/firewall.sh, docs/SECURITY.md)"
            ),
        );
    }
    let stun_servers = r
        .parse("STUN_SERVERS", |s| {
            parse::list_of(|item| parse::host_port(item.strip_prefix("stun:").unwrap_or(item)))(s)
        })
        .unwrap_or_default();
    let max_calls_given = r.parse("MAX_CALLS", |s| {
        parse::number_in(1..=256)(s).map(|n| n as u32)
    });
    let max_calls = max_calls_given.unwrap_or(50);

    let rtp_port_start = r.parse_or("RTP_PORT_START", 4000, |s| {
        parse::number_in(1024..=65534)(s).map(|n| n as u16)
    });
    let rtp_range_given = r.parse("RTP_PORT_RANGE", |s| {
        parse::number_in(2..=64511)(s).map(|n| n as u16)
    });
    let rtp_port_range = rtp_range_given.unwrap_or(100);
    let rtp_end = u32::from(rtp_port_start) + u32::from(rtp_port_range);
    if rtp_end > 65535 {
        r.fail(
            "RTP_PORT_RANGE",
            format!("RTP_PORT_START {rtp_port_start} plus this range goes past port 65535"),
        );
    } else if (u32::from(rtp_port_start)..rtp_end).contains(&u32::from(port)) {
        r.fail_with(
            "SIP_PORT",
            format!(
                "lies inside the RTP port range {rtp_port_start}–{}",
                rtp_end - 1
            ),
            "move SIP_PORT (e.g. 5060) or RTP_PORT_START outside each other's range",
        );
    }
    // Each call's media takes two ports (RTP and RTCP).
    let media_calls = u32::from(rtp_port_range) / 2;
    // Only for explicit values: the defaults (50 calls, 100 ports) fit each other
    // (two ports per call).
    if max_calls > media_calls && (max_calls_given.is_some() || rtp_range_given.is_some()) {
        r.warn(
            "RTP_PORT_RANGE",
            format!(
                "{rtp_port_range} ports carry media for {media_calls} calls, fewer than \
                 MAX_CALLS={max_calls}; set RTP_PORT_RANGE to at least {}",
                max_calls * 2
            ),
        );
    }

    let codecs = r
        .parse("CODECS", |s| {
            let mut codecs: Vec<String> = Vec::new();
            for id in parse::list_of(parse::codec)(s)? {
                if !codecs.contains(&id) {
                    codecs.push(id);
                }
            }
            if codecs.is_empty() {
                return Err("names no codec".to_string());
            }
            Ok(codecs)
        })
        .unwrap_or_else(|| DEFAULT_CODECS.iter().map(|c| c.to_string()).collect());
    let defaults = OpusConfig::default();
    let opus = OpusConfig {
        bitrate: r
            .parse("OPUS_BITRATE", |s| {
                if s.eq_ignore_ascii_case("auto") {
                    Ok(None)
                } else {
                    parse::number_in(6000..=510_000)(s).map(|n| Some(n as u32))
                }
            })
            .flatten(),
        complexity: r.parse_or("OPUS_COMPLEXITY", defaults.complexity, |s| {
            parse::number_in(0..=10)(s).map(|n| n as u32)
        }),
        fec: r.parse_or("OPUS_FEC", defaults.fec, parse::boolean),
        ..defaults
    };
    let jitter_max_ms = r.parse_or("JITTER_MAX_MS", 120, |s| {
        parse::number_in(40..=2000)(s).map(|n| n as u32)
    });
    let trunk_sources_only = r.parse_or("SIP_TRUNK_SOURCES_ONLY", true, parse::boolean);
    let invite_rate = r.parse_or("SIP_INVITE_RATE", 5, |s| {
        parse::number_in(0..=10_000)(s).map(|n| n as u32)
    });
    let rtp_timeout = r.parse_or("RTP_TIMEOUT", Duration::from_secs(60), |s| {
        parse::number_in(0..=3600)(s).map(Duration::from_secs)
    });
    let file = |s: &str| {
        let path = PathBuf::from(s);
        if path.is_file() {
            Ok(path)
        } else {
            Err(format!("{s} is not a readable file"))
        }
    };
    let tls = pjsip_safe::TlsConfig {
        port: r.parse_or("SIP_TLS_PORT", 0, |s| {
            parse::number_in(1..=65535)(s).map(|n| n as u16)
        }),
        ca_file: r.parse("SIP_TLS_CA_FILE", file),
        cert_file: r.parse("SIP_TLS_CERT_FILE", file),
        key_file: r.parse("SIP_TLS_KEY_FILE", file),
    };
    if tls.cert_file.is_some() != tls.key_file.is_some() {
        r.fail_with(
            "SIP_TLS_CERT_FILE",
            "needs SIP_TLS_KEY_FILE and the other way round",
            "set both SIP_TLS_CERT_FILE and SIP_TLS_KEY_FILE (PEM files), or neither",
        );
    }
    let srtp = r.parse_or("SRTP", pjsip_safe::SrtpMode::Off, |s| {
        parse::one_of(&[
            ("off", pjsip_safe::SrtpMode::Off),
            ("optional", pjsip_safe::SrtpMode::Optional),
            ("mandatory", pjsip_safe::SrtpMode::Mandatory),
        ])(s)
    });
    let user_agent = r.parse_or("SIP_USER_AGENT", "voiceagent".to_string(), |s| {
        let s = s.trim();
        if s.is_empty() || s.len() > 64 || !s.chars().all(|c| c.is_ascii_graphic() || c == ' ') {
            Err("is not 1–64 printable ASCII characters".to_string())
        } else {
            Ok(s.to_string())
        }
    });

    SipSettings {
        trunk,
        port,
        bind,
        public_ip,
        transports,
        allowed_sources,
        stun_servers,
        max_calls,
        rtp_port_start,
        rtp_port_range,
        codecs,
        opus,
        jitter_max_ms,
        trunk_sources_only,
        invite_rate,
        rtp_timeout,
        user_agent,
        tls,
        srtp,
    }
}

/// Trunk mode when `SIP_SERVER` is set; then user name and password are required.
fn trunk(r: &mut Reader) -> Option<TrunkSettings> {
    const ACCOUNT_KEYS: [&str; 5] = [
        "SIP_USERNAME",
        "SIP_PASSWORD",
        "SIP_DOMAIN",
        "SIP_PROXY",
        "SIP_REGISTER_INTERVAL",
    ];
    if !r.is_set("SIP_SERVER") {
        for key in ACCOUNT_KEYS {
            if r.is_set(key) {
                r.warn(
                    key,
                    "ignored because SIP_SERVER is unset (IP mode); set SIP_SERVER to \
                     register with a trunk",
                );
            }
        }
        return None;
    }
    let server = r.parse("SIP_SERVER", parse::host_port);
    let username = r.parse("SIP_USERNAME", parse::word);
    if !r.is_set("SIP_USERNAME") {
        r.fail_with(
            "SIP_USERNAME",
            "required when SIP_SERVER is set (trunk mode)",
            "set SIP_USERNAME to the SIP user name of the trunk account, e.g. 1234567e0, \
             or unset SIP_SERVER for IP mode",
        );
    }
    let password = r.secret("SIP_PASSWORD", 1);
    if !r.is_set("SIP_PASSWORD") {
        r.fail_with(
            "SIP_PASSWORD",
            "required when SIP_SERVER is set (trunk mode)",
            "set SIP_PASSWORD to the SIP password of the trunk account, or unset SIP_SERVER \
             for IP mode",
        );
    }
    let domain = r.parse("SIP_DOMAIN", |s| {
        parse::host_port(s).and_then(|d| {
            if d.contains(':') {
                Err("a domain with a port; the domain has none".to_string())
            } else {
                Ok(d)
            }
        })
    });
    let proxy = r.parse("SIP_PROXY", parse::sip_uri);
    let register_interval = r.parse_or("SIP_REGISTER_INTERVAL", Duration::from_secs(300), |s| {
        parse::number_in(60..=86_400)(s).map(Duration::from_secs)
    });
    Some(TrunkSettings {
        server: server?,
        username: username?,
        password: password?,
        domain,
        proxy,
        register_interval,
    })
}

fn realtime(r: &mut Reader) -> RealtimeSettings {
    let api_key = r.secret("OPENAI_API_KEY", 8);
    let url = r.parse_or(
        "OPENAI_REALTIME_URL",
        DEFAULT_REALTIME_URL.to_string(),
        parse::ws_url,
    );
    if let Some(host) = parse::cleartext_remote_host(&url) {
        r.fail_with(
            "OPENAI_REALTIME_URL",
            format!(
                "a ws:// URL to {host}, which is not this machine: the OpenAI API key would \
                 cross the network in clear text"
            ),
            "use wss:// (e.g. wss://api.openai.com/v1/realtime); ws:// is accepted only to a \
             loopback host (127.0.0.1, ::1, localhost), e.g. a local test server",
        );
    }
    if !r.is_set("OPENAI_API_KEY") && r.is_set("OPENAI_REALTIME_URL") {
        r.warn(
            "OPENAI_REALTIME_URL",
            "ignored because OPENAI_API_KEY is unset, so the built-in local Realtime server \
             answers calls; set OPENAI_API_KEY to use this URL",
        );
    }
    let model = r.parse_or("OPENAI_MODEL", "gpt-realtime".to_string(), parse::word);
    let voice = r.parse_or("OPENAI_VOICE", "marin".to_string(), |s| {
        parse::word(s).map(|v| v.to_ascii_lowercase())
    });
    if r.is_set("OPENAI_VOICE") && !KNOWN_VOICES.contains(&voice.as_str()) {
        r.warn(
            "OPENAI_VOICE",
            format!(
                "`{voice}` is not a voice this version knows ({}); the server may reject it",
                KNOWN_VOICES.join(", ")
            ),
        );
    }
    RealtimeSettings {
        api_key,
        url,
        model,
        voice,
    }
}

/// Text from `KEY` or from the file named by `FILE_KEY`, not both.
fn text_or_file(r: &mut Reader, key: &str, file_key: &str) -> Option<(String, String)> {
    match (r.text(key), r.text(file_key)) {
        (Some(_), Some(_)) => {
            r.fail_with(
                key,
                format!("set together with {file_key}"),
                format!("unset either {key} or {file_key}; only one can be used"),
            );
            None
        }
        (Some(text), None) => Some((text, key.to_string())),
        (None, Some(path)) => match std::fs::read_to_string(Path::new(&path)) {
            Ok(text) if text.trim().is_empty() => {
                r.fail(file_key, "the file is empty");
                None
            }
            Ok(text) => Some((text.trim().to_string(), path)),
            Err(e) => {
                r.fail(file_key, format!("cannot read the file ({e})"));
                None
            }
        },
        (None, None) => None,
    }
}

fn agent(r: &mut Reader) -> AgentSettings {
    let instructions = text_or_file(r, "AGENT_INSTRUCTIONS", "AGENT_INSTRUCTIONS_FILE");
    let greeting = text_or_file(r, "AGENT_GREETING", "AGENT_GREETING_FILE").map(|(text, _)| text);
    let language = r.parse_or("AGENT_LANGUAGE", "de".to_string(), parse::language);

    #[derive(Clone, Copy, PartialEq)]
    enum Vad {
        Server,
        Semantic,
    }
    let vad = r.parse_or(
        "TURN_DETECTION",
        Vad::Server,
        parse::one_of(&[("server_vad", Vad::Server), ("semantic_vad", Vad::Semantic)]),
    );
    let threshold = r.parse_or("VAD_THRESHOLD", 0.5, parse::fraction);
    let prefix_padding_ms = r.parse_or("VAD_PREFIX_PADDING_MS", 300, |s| {
        parse::number_in(0..=2000)(s).map(|n| n as u32)
    });
    let silence_duration_ms = r.parse_or("VAD_SILENCE_MS", 500, |s| {
        parse::number_in(100..=5000)(s).map(|n| n as u32)
    });
    let eagerness = r.parse_or(
        "VAD_EAGERNESS",
        Eagerness::Auto,
        parse::one_of(&[
            ("low", Eagerness::Low),
            ("medium", Eagerness::Medium),
            ("high", Eagerness::High),
            ("auto", Eagerness::Auto),
        ]),
    );
    let (used_by_other, other) = match vad {
        Vad::Server => (&["VAD_EAGERNESS"][..], "semantic_vad"),
        Vad::Semantic => (
            &["VAD_THRESHOLD", "VAD_PREFIX_PADDING_MS", "VAD_SILENCE_MS"][..],
            "server_vad",
        ),
    };
    for key in used_by_other {
        if r.is_set(key) {
            r.warn(
                key,
                format!("ignored: it applies to TURN_DETECTION={other} only"),
            );
        }
    }
    let turn_detection = match vad {
        Vad::Server => TurnDetection::ServerVad {
            threshold: Some(threshold),
            prefix_padding_ms: Some(prefix_padding_ms),
            silence_duration_ms: Some(silence_duration_ms),
            idle_timeout_ms: None,
            create_response: Some(true),
            interrupt_response: Some(true),
        },
        Vad::Semantic => TurnDetection::SemanticVad {
            eagerness: Some(eagerness),
            create_response: Some(true),
            interrupt_response: Some(true),
        },
    };
    let noise_reduction = r.parse_or(
        "NOISE_REDUCTION",
        Some(NoiseReductionKind::NearField),
        parse::one_of(&[
            ("near_field", Some(NoiseReductionKind::NearField)),
            ("far_field", Some(NoiseReductionKind::FarField)),
            ("off", None),
        ]),
    );
    let transcription_model = r
        .parse("TRANSCRIPTION_MODEL", parse::word)
        .map(|m| (!m.eq_ignore_ascii_case("off")).then_some(m))
        .unwrap_or_else(|| Some("gpt-4o-mini-transcribe".into()));

    let (instructions, instructions_source) = match instructions {
        Some((text, source)) => (Some(text), source),
        None => (None, "built-in".to_string()),
    };
    AgentSettings {
        instructions,
        instructions_source,
        greeting,
        language,
        turn_detection,
        noise_reduction,
        transcription_model,
    }
}

fn bridge(r: &mut Reader) -> BridgeSettings {
    let ring_delay = r.parse_or("RING_DELAY_MS", Duration::ZERO, parse::millis(0..=30_000));
    let answer_timeout = r.parse_or(
        "ANSWER_TIMEOUT_MS",
        Duration::from_secs(5),
        parse::millis(100..=60_000),
    );
    let backend_failure = r.parse_or(
        "BACKEND_FAILURE",
        BackendFailure::Apology,
        parse::one_of(&[
            ("apology", BackendFailure::Apology),
            ("reject", BackendFailure::Reject),
        ]),
    );
    let tool_hold_after = r.parse_or(
        "TOOL_HOLD_SOUND_MS",
        Some(Duration::from_millis(1500)),
        |s| parse::millis(0..=60_000)(s).map(|d| (!d.is_zero()).then_some(d)),
    );
    let tool_timeout = r.parse_or(
        "TOOL_TIMEOUT_MS",
        Duration::from_secs(8),
        parse::millis(100..=120_000),
    );
    if tool_hold_after.is_some_and(|hold| hold >= tool_timeout) {
        r.warn(
            "TOOL_HOLD_SOUND_MS",
            "not below TOOL_TIMEOUT_MS, so the hold sound never plays",
        );
    }
    let transfer_target = r.parse("TRANSFER_TARGET", parse::sip_uri);
    let hangup_grace = r.parse_or(
        "HANGUP_GRACE_MS",
        Duration::from_secs(3),
        parse::millis(0..=60_000),
    );
    BridgeSettings {
        ring_delay,
        answer_timeout,
        backend_failure,
        tool_hold_after,
        tool_timeout,
        transfer_target,
        hangup_grace,
    }
}

/// A directory that may not exist yet, but must not be a file.
fn directory(key: &str, r: &mut Reader, default: PathBuf) -> PathBuf {
    let path = r.text(key).map(PathBuf::from).unwrap_or(default);
    if path.exists() && !path.is_dir() {
        r.fail(key, format!("{} is not a directory", path.display()));
    }
    path
}

fn data(r: &mut Reader) -> DataSettings {
    let data_dir = directory("DATA_DIR", r, PathBuf::from("./data"));
    let catalog_dir = directory("CATALOG_DIR", r, data_dir.join("catalog"));
    DataSettings {
        data_dir,
        catalog_dir,
    }
}

fn api(r: &mut Reader, sip: &SipSettings) -> ApiSettings {
    let addr = r.parse_or(
        "API_ADDR",
        ([127, 0, 0, 1], 8085).into(),
        parse::socket_addr,
    );
    let token = r.secret("API_TOKEN", 16);
    if token.is_none() && !r.is_set("API_TOKEN") && !addr.ip().is_loopback() {
        r.warn(
            "API_TOKEN",
            format!(
                "unset while API_ADDR={addr} is reachable from other machines: anyone who \
                 reaches it can read orders; set API_TOKEN or bind API_ADDR to 127.0.0.1"
            ),
        );
    }
    let allowed_hosts = r
        .parse("API_ALLOWED_HOSTS", parse::list_of(AllowedHost::parse))
        .unwrap_or_default();
    let patterns = r
        .parse("OUTBOUND_ALLOWED", parse::list_of(OutboundPattern::parse))
        .unwrap_or_default();
    let trunk_hosts: Vec<&str> = match &sip.trunk {
        Some(t) => [Some(t.server.as_str()), t.domain.as_deref()]
            .into_iter()
            .flatten()
            .map(host_of)
            .collect(),
        None => Vec::new(),
    };
    if trunk_hosts.is_empty() {
        if let Some(number) = patterns.iter().find(|p| p.is_number()) {
            r.fail_with(
                "OUTBOUND_ALLOWED",
                format!(
                    "`{number}` is a number pattern, which applies to calls through the trunk, \
                     but SIP_SERVER is unset (IP mode)"
                ),
                "write a SIP URI pattern with the host that routes the number instead, e.g. \
                 sip:+4930*@pbx.example, or set SIP_SERVER",
            );
        }
    }
    ApiSettings {
        addr,
        token,
        allowed_hosts,
        outbound: OutboundPolicy::new(patterns, &trunk_hosts),
    }
}

/// The host of a `host[:port]` (`[v6]:port` keeps its brackets).
fn host_of(host_port: &str) -> &str {
    if host_port.starts_with('[') {
        host_port
            .find(']')
            .map_or(host_port, |end| &host_port[..=end])
    } else {
        host_port.split(':').next().unwrap_or(host_port)
    }
}

fn recording(r: &mut Reader) -> RecordingSettings {
    let enabled = r.parse_or("RECORD_CALLS", false, parse::boolean);
    let retention = r.parse_or("RECORDING_RETENTION_DAYS", Some(30), |s| {
        parse::number_in(0..=3650)(s).map(|days| (days > 0).then_some(days))
    });
    let notice = r.parse_or("RECORDING_NOTICE", true, parse::boolean);
    if enabled && !notice {
        r.warn(
            "RECORDING_NOTICE",
            "calls are recorded without telling the caller; in Germany that needs the \
             caller's consent (§ 201 StGB)",
        );
    }
    RecordingSettings {
        enabled,
        retention: retention.map(|days| Duration::from_secs(days * 86_400)),
        notice,
    }
}

fn log(r: &mut Reader) -> LogSettings {
    let filter = r.parse_or("LOG_LEVEL", "info".to_string(), |s| {
        tracing_subscriber::EnvFilter::builder()
            .parse(s)
            .map(|_| s.to_string())
            .map_err(|e| format!("not a level or tracing filter ({e})"))
    });
    let format = r.parse_or(
        "LOG_FORMAT",
        LogFormat::Text,
        parse::one_of(&[("text", LogFormat::Text), ("json", LogFormat::Json)]),
    );
    LogSettings { filter, format }
}
