use std::collections::HashMap;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use pjsip_safe::{AnswerMode, Transport, DEFAULT_CODECS};

use super::keys::KEYS;
use super::*;
use crate::realtime::wire::{Eagerness, NoiseReductionKind, TurnDetection};

/// Appears in every secret a test sets; must never show up in any output.
const SENTINEL: &str = "S3NTINEL";

fn map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn load(pairs: &[(&str, &str)]) -> Config {
    Config::from_map(map(pairs)).unwrap_or_else(|e| panic!("expected a valid config: {e}"))
}

fn errors(pairs: &[(&str, &str)]) -> ConfigErrors {
    match Config::from_map(map(pairs)) {
        Ok(_) => panic!("expected errors for {pairs:?}"),
        Err(e) => e,
    }
}

/// The warnings except the IP-mode exposure warning, which every config bound to 0.0.0.0
/// without SIP_SERVER and SIP_ALLOWED_SOURCES has (the defaults included).
fn other_warnings(c: &Config) -> Vec<&ConfigWarning> {
    c.warnings
        .iter()
        .filter(|w| w.key != "SIP_ALLOWED_SOURCES")
        .collect()
}

fn write_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    let mut file = std::fs::File::create(&path).expect("create test file");
    file.write_all(text.as_bytes()).expect("write test file");
    path
}

const TRUNK: &[(&str, &str)] = &[
    ("SIP_SERVER", "sipgate.de"),
    ("SIP_USERNAME", "1234567e0"),
    ("SIP_PASSWORD", "pw-S3NTINEL"),
];

#[test]
fn defaults() {
    let c = load(&[]);
    assert!(c.sip.trunk.is_none());
    assert!(!c.is_trunk_mode());
    assert_eq!(c.sip.port, 5060);
    assert_eq!(c.sip.bind, IpAddr::from([0, 0, 0, 0]));
    assert_eq!(c.sip.public_ip, None);
    assert_eq!(c.sip.transports, vec![Transport::Udp, Transport::Tcp]);
    assert!(c.sip.allowed_sources.is_empty());
    assert!(c.sip.stun_servers.is_empty());
    assert_eq!(c.sip.max_calls, 50);
    assert_eq!((c.sip.rtp_port_start, c.sip.rtp_port_range), (4000, 100));
    assert_eq!(c.sip.codecs, DEFAULT_CODECS.map(String::from).to_vec());
    assert_eq!(c.sip.opus, pjsip_safe::OpusConfig::default());
    assert_eq!(c.sip.jitter_max_ms, 120);

    assert!(c.uses_local_realtime());
    assert_eq!(c.realtime.url, "wss://api.openai.com/v1/realtime");
    assert_eq!(c.realtime.model, "gpt-realtime");
    assert_eq!(c.realtime.voice, "marin");

    assert_eq!(c.agent.instructions, None);
    assert_eq!(c.agent.instructions_source, "built-in");
    assert_eq!(c.agent.greeting, None);
    assert_eq!(c.agent.language, "de");
    assert_eq!(
        c.agent.turn_detection,
        TurnDetection::ServerVad {
            threshold: Some(0.5),
            prefix_padding_ms: Some(300),
            silence_duration_ms: Some(500),
            idle_timeout_ms: None,
            create_response: Some(true),
            interrupt_response: Some(true),
        }
    );
    assert_eq!(c.agent.noise_reduction, Some(NoiseReductionKind::NearField));
    assert_eq!(
        c.agent.transcription_model.as_deref(),
        Some("gpt-4o-mini-transcribe")
    );

    assert_eq!(
        c.bridge,
        BridgeSettings {
            ring_delay: Duration::ZERO,
            answer_timeout: Duration::from_millis(5000),
            backend_failure: BackendFailure::Apology,
            tool_hold_after: Some(Duration::from_millis(1500)),
            tool_timeout: Duration::from_millis(8000),
            transfer_target: None,
            hangup_grace: Duration::from_millis(3000),
        }
    );
    assert_eq!(c.data.data_dir, PathBuf::from("./data"));
    assert_eq!(c.data.catalog_dir, PathBuf::from("./data/catalog"));
    assert_eq!(c.data.orders_db(), PathBuf::from("./data/orders.sqlite3"));
    assert_eq!(c.api.addr, "127.0.0.1:8085".parse::<SocketAddr>().unwrap());
    assert!(c.api.token.is_none());
    assert_eq!(
        c.recording,
        RecordingSettings {
            enabled: false,
            retention: Some(Duration::from_secs(30 * 86_400)),
            notice: true,
        }
    );
    assert_eq!(c.log.filter, "info");
    assert_eq!(c.log.format, LogFormat::Text);
    assert_eq!(c.shutdown_timeout, Duration::from_secs(5));
    assert!(c.api.allowed_hosts.is_empty());
    assert!(!c.api.outbound.is_enabled());
    // The defaults answer direct calls from anywhere: said once, at start-up and in `check`.
    assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
    assert_eq!(c.warnings[0].key, "SIP_ALLOWED_SOURCES");

    let e = c.engine_config();
    assert!(e.account.is_none());
    assert_eq!(e.answer, AnswerMode::Manual);
    assert_eq!(e.sip_port, 5060);
    assert_eq!(e.max_calls, 50);
    assert_eq!(e.log_level, 3);
    e.validate().expect("default engine config is valid");
}

/// Non-default values for every key that takes a plain value.
const EVERYTHING: &[(&str, &str)] = &[
    ("SIP_SERVER", "sip.example.com:5070"),
    ("SIP_PORT", "5080"),
    ("SIP_USERNAME", "1234567e0"),
    ("SIP_PASSWORD", "pw-S3NTINEL"),
    ("SIP_DOMAIN", "example.com"),
    ("SIP_PROXY", "sip:proxy.example.com;lr"),
    ("SIP_PUBLIC_IP", "203.0.113.10"),
    ("SIP_BIND", "10.0.0.2"),
    ("SIP_TRANSPORT", "UDP,tls"),
    ("SIP_TLS_PORT", "5071"),
    ("SIP_TLS_CA_FILE", "/etc/passwd"),
    ("SIP_TLS_CERT_FILE", "/etc/passwd"),
    ("SIP_TLS_KEY_FILE", "/etc/passwd"),
    ("SRTP", "Mandatory"),
    ("SIP_REGISTER_INTERVAL", "600"),
    ("SIP_ALLOWED_SOURCES", "217.10.64.0/20, 10.0.0.5"),
    ("SIP_TRUNK_SOURCES_ONLY", "false"),
    ("SIP_INVITE_RATE", "3"),
    ("SIP_USER_AGENT", "PBX 1"),
    ("RTP_TIMEOUT", "20"),
    (
        "STUN_SERVERS",
        "stun.sipgate.net:3478,stun:stun.example.com",
    ),
    ("MAX_CALLS", "10"),
    ("RTP_PORT_START", "10000"),
    ("RTP_PORT_RANGE", "40"),
    ("CODECS", "PCMA, opus,pcma"),
    ("OPUS_BITRATE", "32000"),
    ("OPUS_COMPLEXITY", "8"),
    ("OPUS_FEC", "no"),
    ("JITTER_MAX_MS", "200"),
    ("OPENAI_API_KEY", "sk-S3NTINEL"),
    ("OPENAI_MODEL", "gpt-realtime-mini"),
    ("OPENAI_REALTIME_URL", "ws://127.0.0.1:9000/v1/realtime"),
    ("OPENAI_VOICE", "Cedar"),
    ("AGENT_INSTRUCTIONS", "Sie sind ein Test."),
    ("AGENT_GREETING", "Hallo!"),
    ("AGENT_LANGUAGE", "EN"),
    ("TURN_DETECTION", "semantic_vad"),
    ("VAD_EAGERNESS", "high"),
    ("NOISE_REDUCTION", "far_field"),
    ("TRANSCRIPTION_MODEL", "off"),
    ("RING_DELAY_MS", "1000"),
    ("ANSWER_TIMEOUT_MS", "2500"),
    ("BACKEND_FAILURE", "Reject"),
    ("TOOL_HOLD_SOUND_MS", "0"),
    ("TOOL_TIMEOUT_MS", "9000"),
    ("TRANSFER_TARGET", "sip:+4930123456@sipgate.de"),
    ("HANGUP_GRACE_MS", "100"),
    ("DATA_DIR", "/var/lib/voiceagent-test-nonexistent"),
    ("CATALOG_DIR", "/srv/catalog-test-nonexistent"),
    ("API_ADDR", "0.0.0.0:9090"),
    ("API_TOKEN", "token-S3NTINEL-0123456789"),
    ("API_ALLOWED_HOSTS", "VoiceAgent.Internal, 10.8.0.1:9090"),
    ("OUTBOUND_ALLOWED", "sip:*@pbx.example, +4930*"),
    ("RECORD_CALLS", "YES"),
    ("RECORDING_RETENTION_DAYS", "0"),
    ("RECORDING_NOTICE", "1"),
    ("LOG_LEVEL", "info,agent=debug"),
    ("LOG_FORMAT", "json"),
    ("SHUTDOWN_TIMEOUT_MS", "10000"),
];

#[test]
fn every_key_is_parsed() {
    let c = load(EVERYTHING);
    let trunk = c.sip.trunk.as_ref().expect("trunk mode");
    assert_eq!(trunk.server, "sip.example.com:5070");
    assert_eq!(trunk.username, "1234567e0");
    assert_eq!(trunk.password.expose(), "pw-S3NTINEL");
    assert_eq!(trunk.domain.as_deref(), Some("example.com"));
    assert_eq!(trunk.proxy.as_deref(), Some("sip:proxy.example.com;lr"));
    assert_eq!(trunk.register_interval, Duration::from_secs(600));
    assert_eq!(c.sip.port, 5080);
    assert_eq!(c.sip.public_ip, Some(IpAddr::from([203, 0, 113, 10])));
    assert_eq!(c.sip.bind, IpAddr::from([10, 0, 0, 2]));
    assert_eq!(c.sip.transports, vec![Transport::Udp, Transport::Tls]);
    assert_eq!(
        c.sip
            .allowed_sources
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        ["217.10.64.0/20", "10.0.0.5/32"]
    );
    assert_eq!(
        c.sip.stun_servers,
        ["stun.sipgate.net:3478", "stun.example.com"]
    );
    assert_eq!(c.sip.max_calls, 10);
    assert_eq!((c.sip.rtp_port_start, c.sip.rtp_port_range), (10000, 40));
    assert_eq!(c.sip.codecs, ["PCMA/8000", "opus/48000"]);
    assert_eq!(c.sip.opus.bitrate, Some(32000));
    assert_eq!(c.sip.opus.complexity, 8);
    assert!(!c.sip.opus.fec);
    assert_eq!(c.sip.jitter_max_ms, 200);

    assert!(!c.uses_local_realtime());
    assert_eq!(
        c.realtime.api_key.as_ref().map(|k| k.expose()),
        Some("sk-S3NTINEL")
    );
    assert_eq!(c.realtime.model, "gpt-realtime-mini");
    assert_eq!(c.realtime.url, "ws://127.0.0.1:9000/v1/realtime");
    assert_eq!(c.realtime.voice, "cedar");

    assert_eq!(c.agent.instructions.as_deref(), Some("Sie sind ein Test."));
    assert_eq!(c.agent.instructions_source, "AGENT_INSTRUCTIONS");
    assert_eq!(c.agent.greeting.as_deref(), Some("Hallo!"));
    assert_eq!(c.agent.language, "en");
    assert_eq!(
        c.agent.turn_detection,
        TurnDetection::SemanticVad {
            eagerness: Some(Eagerness::High),
            create_response: Some(true),
            interrupt_response: Some(true),
        }
    );
    assert_eq!(c.agent.noise_reduction, Some(NoiseReductionKind::FarField));
    assert_eq!(c.agent.transcription_model, None);

    assert_eq!(
        c.bridge,
        BridgeSettings {
            ring_delay: Duration::from_millis(1000),
            answer_timeout: Duration::from_millis(2500),
            backend_failure: BackendFailure::Reject,
            tool_hold_after: None,
            tool_timeout: Duration::from_millis(9000),
            transfer_target: Some("sip:+4930123456@sipgate.de".into()),
            hangup_grace: Duration::from_millis(100),
        }
    );
    assert_eq!(
        c.data.data_dir,
        PathBuf::from("/var/lib/voiceagent-test-nonexistent")
    );
    assert_eq!(
        c.data.catalog_dir,
        PathBuf::from("/srv/catalog-test-nonexistent")
    );
    assert_eq!(c.api.addr, "0.0.0.0:9090".parse::<SocketAddr>().unwrap());
    assert!(c.api.token.is_some());
    assert_eq!(
        c.api
            .allowed_hosts
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        ["voiceagent.internal", "10.8.0.1:9090"]
    );
    assert!(c.api.outbound.check("sip:desk@pbx.example").is_ok());
    // Number patterns apply at the trunk's hosts (SIP_SERVER and SIP_DOMAIN).
    assert!(c.api.outbound.check("sip:+4930123@sip.example.com").is_ok());
    assert!(c.api.outbound.check("sip:+4930123@example.com").is_ok());
    assert!(c.api.outbound.check("sip:+4930123@other.example").is_err());
    assert!(c.api.outbound.check("sip:+4940123@example.com").is_err());
    assert_eq!(
        c.summary()["api"]["outbound_allowed"],
        serde_json::json!(["sip:*@pbx.example", "+4930*"])
    );
    assert_eq!(
        c.recording,
        RecordingSettings {
            enabled: true,
            retention: None,
            notice: true,
        }
    );
    assert_eq!(c.log.filter, "info,agent=debug");
    assert_eq!(c.log.format, LogFormat::Json);
    assert_eq!(c.shutdown_timeout, Duration::from_secs(10));

    let e = c.engine_config();
    let account = e.account.as_ref().expect("account in trunk mode");
    assert_eq!(account.server, "sip.example.com:5070");
    assert_eq!(account.username, "1234567e0");
    assert_eq!(account.reg_interval, Duration::from_secs(600));
    assert_eq!(e.sip_port, 5080);
    assert_eq!(e.bind, IpAddr::from([10, 0, 0, 2]));
    assert_eq!(e.public_address.as_deref(), Some("203.0.113.10"));
    assert_eq!(e.transports, vec![Transport::Udp, Transport::Tls]);
    assert_eq!((e.rtp_port_start, e.rtp_port_range), (10000, 40));
    assert_eq!(e.codecs, ["PCMA/8000", "opus/48000"]);
    assert_eq!(e.jitter.max_ms, Some(200));
    assert_eq!(e.max_calls, 10);
    assert_eq!(e.allowed_sources.len(), 2);
    assert_eq!(e.stun_servers.len(), 2);
    assert!(!e.trunk_sources_only);
    assert_eq!(e.transports, vec![Transport::Udp, Transport::Tls]);
    assert_eq!(e.tls.port, 5071);
    assert_eq!(e.srtp, pjsip_safe::SrtpMode::Mandatory);
    let rate = e.invite_rate.expect("SIP_INVITE_RATE=3");
    assert_eq!((rate.per_second, rate.burst), (3.0, 12));
    assert_eq!(e.user_agent, "PBX 1");
    assert_eq!(e.rtp_timeout, Duration::from_secs(20));
    assert_eq!(e.answer, AnswerMode::Manual);
    assert_eq!(e.shutdown_timeout, Duration::from_secs(10));
    e.validate().expect("engine accepts the mapped config");

    // Every plain key is exercised above; the rest have their own tests.
    let covered_elsewhere = [
        "VOICEAGENT_CONFIG",
        "VOICEAGENT_ENV_FILE",
        "AGENT_INSTRUCTIONS_FILE",
        "AGENT_GREETING_FILE",
        "VAD_THRESHOLD",
        "VAD_PREFIX_PADDING_MS",
        "VAD_SILENCE_MS",
    ];
    for key in KEYS {
        assert!(
            covered_elsewhere.contains(&key.name) || EVERYTHING.iter().any(|(k, _)| *k == key.name),
            "{} is not in EVERYTHING",
            key.name
        );
    }
}

#[test]
fn server_vad_settings_are_parsed() {
    let c = load(&[
        ("TURN_DETECTION", "server_vad"),
        ("VAD_THRESHOLD", "0.7"),
        ("VAD_PREFIX_PADDING_MS", "200"),
        ("VAD_SILENCE_MS", "800"),
    ]);
    assert_eq!(
        c.agent.turn_detection,
        TurnDetection::ServerVad {
            threshold: Some(0.7),
            prefix_padding_ms: Some(200),
            silence_duration_ms: Some(800),
            idle_timeout_ms: None,
            create_response: Some(true),
            interrupt_response: Some(true),
        }
    );
    assert!(other_warnings(&c).is_empty());
    // A semantic_vad-only key with server_vad is ignored with a warning.
    let c = load(&[("VAD_EAGERNESS", "low")]);
    assert_eq!(other_warnings(&c)[0].key, "VAD_EAGERNESS");
}

#[test]
fn booleans_accept_common_spellings() {
    for (text, want) in [
        ("true", true),
        ("TRUE", true),
        ("1", true),
        ("Yes", true),
        ("false", false),
        ("0", false),
        ("no", false),
        ("NO", false),
    ] {
        let c = load(&[("RECORD_CALLS", text), ("RECORDING_NOTICE", "true")]);
        assert_eq!(c.recording.enabled, want, "RECORD_CALLS={text}");
    }
}

#[test]
fn every_bad_value_is_reported_in_one_pass_with_key_and_fix() {
    let dir = tempfile::tempdir().unwrap();
    let a_file = write_file(dir.path(), "plain.txt", "x");
    let a_file = a_file.to_str().unwrap();
    let bad: &[(&str, &str)] = &[
        ("VOICEAGENT_CONFIG", "/nonexistent/voiceagent.toml"),
        ("SIP_SERVER", "sip:sipgate.de"),
        ("SIP_PORT", "70000"),
        ("SIP_USERNAME", "a b"),
        ("SIP_PASSWORD", "has space S3NTINEL"),
        ("SIP_DOMAIN", "sipgate.de:5060"),
        ("SIP_PROXY", "proxy.example.com"),
        ("SIP_PUBLIC_IP", "203.0.113"),
        ("SIP_BIND", "any"),
        ("SIP_TRANSPORT", "sctp"),
        ("SIP_TLS_PORT", "0"),
        ("SIP_TLS_CA_FILE", "/nonexistent/ca.pem"),
        ("SIP_TLS_CERT_FILE", "/nonexistent/cert.pem"),
        ("SIP_TLS_KEY_FILE", "/nonexistent/key.pem"),
        ("SRTP", "always"),
        ("SIP_REGISTER_INTERVAL", "10"),
        ("SIP_ALLOWED_SOURCES", "10.0.0.0/33"),
        ("SIP_TRUNK_SOURCES_ONLY", "perhaps"),
        ("SIP_INVITE_RATE", "-1"),
        ("SIP_USER_AGENT", "bad\u{7}agent"),
        ("RTP_TIMEOUT", "forever"),
        ("STUN_SERVERS", "stun.example.com:99999"),
        ("MAX_CALLS", "0"),
        ("RTP_PORT_START", "80"),
        ("RTP_PORT_RANGE", "1"),
        ("CODECS", "g729"),
        ("OPUS_BITRATE", "100"),
        ("OPUS_COMPLEXITY", "11"),
        ("OPUS_FEC", "maybe"),
        ("JITTER_MAX_MS", "10"),
        ("OPENAI_API_KEY", "sk- S3NTINEL"),
        ("OPENAI_MODEL", "gpt realtime"),
        ("OPENAI_REALTIME_URL", "https://api.openai.com/v1/realtime"),
        ("OPENAI_VOICE", "two words"),
        ("AGENT_INSTRUCTIONS", "text"),
        ("AGENT_INSTRUCTIONS_FILE", a_file),
        ("AGENT_GREETING_FILE", "/nonexistent/greeting.txt"),
        ("AGENT_LANGUAGE", "deu"),
        ("TURN_DETECTION", "vad"),
        ("VAD_THRESHOLD", "1.5"),
        ("VAD_PREFIX_PADDING_MS", "-1"),
        ("VAD_SILENCE_MS", "50"),
        ("VAD_EAGERNESS", "very"),
        ("NOISE_REDUCTION", "studio"),
        ("TRANSCRIPTION_MODEL", "a b"),
        ("RING_DELAY_MS", "1s"),
        ("ANSWER_TIMEOUT_MS", "0"),
        ("BACKEND_FAILURE", "hangup"),
        ("TOOL_HOLD_SOUND_MS", "x"),
        ("TOOL_TIMEOUT_MS", "0"),
        ("TRANSFER_TARGET", "+4930123"),
        ("HANGUP_GRACE_MS", "99999"),
        ("DATA_DIR", a_file),
        ("CATALOG_DIR", a_file),
        ("API_ADDR", "localhost:8085"),
        ("API_TOKEN", "S3NTINEL-short"),
        ("API_ALLOWED_HOSTS", "http://voiceagent.example"),
        ("OUTBOUND_ALLOWED", "premium-numbers"),
        ("RECORD_CALLS", "ja"),
        ("RECORDING_RETENTION_DAYS", "4000"),
        ("RECORDING_NOTICE", "nein"),
        ("LOG_LEVEL", "agent=loud"),
        ("LOG_FORMAT", "xml"),
        ("SHUTDOWN_TIMEOUT_MS", "0"),
    ];
    let e = errors(bad);
    let text = e.to_string();
    // Keys whose bad value is tested elsewhere (they need a source or a conflict of their own).
    let elsewhere = [
        "VOICEAGENT_ENV_FILE",
        "AGENT_INSTRUCTIONS_FILE",
        "AGENT_GREETING",
    ];
    for key in KEYS.iter().filter(|k| !elsewhere.contains(&k.name)) {
        let error = e
            .for_key(key.name)
            .unwrap_or_else(|| panic!("no error for {}; all errors:\n{text}", key.name));
        let line = error.to_string();
        assert!(line.starts_with(key.name), "{line}");
        assert!(
            error.fix.contains(key.name) || error.fix.contains("did you mean"),
            "the fix does not name the key: {line}"
        );
        if !key.secret {
            let given = bad.iter().find(|(k, _)| *k == key.name).unwrap().1;
            assert!(line.contains(given), "the value is missing: {line}");
        }
    }
    assert!(
        text.contains(
            "SIP_PORT=70000: not a port number (1–65535); set SIP_PORT to the UDP/TCP port to \
             listen on, e.g. 5060"
        ),
        "{text}"
    );
    assert!(!text.contains(SENTINEL), "a secret leaked: {text}");
    assert!(
        !format!("{e:?}").contains(SENTINEL),
        "a secret leaked in Debug"
    );
    assert!(text.contains("SIP_PASSWORD (value hidden)"), "{text}");
}

#[test]
fn missing_username_and_password_in_trunk_mode() {
    let e = errors(&[("SIP_SERVER", "sipgate.de")]);
    let user = e.for_key("SIP_USERNAME").expect("SIP_USERNAME error");
    assert_eq!(user.value, None);
    let line = user.to_string();
    assert!(line.contains("required when SIP_SERVER is set"), "{line}");
    assert!(line.contains("set SIP_USERNAME to"), "{line}");
    assert!(line.contains("unset SIP_SERVER for IP mode"), "{line}");
    assert!(e.for_key("SIP_PASSWORD").is_some());
    assert_eq!(e.errors.len(), 2, "{e}");
}

#[test]
fn ip_mode_and_trunk_mode() {
    let ip = load(&[("SIP_USERNAME", "stray")]);
    assert!(!ip.is_trunk_mode());
    assert!(ip.engine_config().account.is_none());
    assert_eq!(ip.summary()["sip"]["mode"], "ip");
    let ip_warnings = other_warnings(&ip);
    assert_eq!(ip_warnings.len(), 1);
    assert!(ip_warnings[0].message.contains("IP mode"));

    let trunk = load(TRUNK);
    assert!(trunk.is_trunk_mode());
    let account = trunk.engine_config().account.expect("account");
    assert_eq!(account.server, "sipgate.de");
    assert_eq!(account.username, "1234567e0");
    assert_eq!(account.domain, None);
    assert_eq!(account.reg_interval, Duration::from_secs(300));
    assert_eq!(trunk.summary()["sip"]["mode"], "trunk");
}

#[test]
fn secrets_never_appear_in_debug_or_summary() {
    let mut pairs = TRUNK.to_vec();
    pairs.extend([
        ("OPENAI_API_KEY", "sk-S3NTINEL"),
        ("API_TOKEN", "token-S3NTINEL-0123456789"),
    ]);
    let c = load(&pairs);
    let summary = c.summary();
    for (what, text) in [
        ("Debug", format!("{c:?}")),
        ("summary", summary.to_string()),
        ("engine Debug", format!("{:?}", c.engine_config())),
    ] {
        assert!(
            !text.contains(SENTINEL),
            "a secret leaked in {what}: {text}"
        );
    }
    assert_eq!(summary["sip"]["trunk"]["password"], "set");
    assert_eq!(summary["realtime"]["api_key"], "set");
    assert_eq!(summary["api"]["token"], "set");
    assert_eq!(summary["realtime"]["backend"], "openai");
    assert_eq!(load(&[]).summary()["api"]["token"], "unset");
    assert_eq!(load(&[]).summary()["realtime"]["backend"], "local");
}

#[test]
fn env_wins_over_dotenv_which_wins_over_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let toml = write_file(
        dir.path(),
        "voiceagent.toml",
        "SIP_PORT = 5080\nMAX_CALLS = 20\nRTP_PORT_START = 6000\ncodecs = [\"PCMU\", \"opus\"]\n\
         [sip]\nbind = \"127.0.0.1\"\n[openai]\nmodel = \"from-file\"\n",
    );
    let env_file = write_file(
        dir.path(),
        "test.env",
        &format!(
            "# comment\nSIP_PORT=5070\nMAX_CALLS=10\nSIP_PROXY=\nVOICEAGENT_CONFIG={}\n",
            toml.display()
        ),
    );
    let sources = Sources {
        env: map(&[("SIP_PORT", "5090"), ("MAX_CALLS", "")]),
        env_file: EnvFile::Required(env_file.clone()),
        config_file: None,
    };
    let c = Config::load(&sources).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.sip.port, 5090, "environment wins");
    assert_eq!(
        c.sip.max_calls, 10,
        ".env wins over the file; empty env falls through"
    );
    assert_eq!(c.sip.rtp_port_start, 6000, "the file wins over defaults");
    assert_eq!(c.sip.codecs, ["PCMU/8000", "opus/48000"]);
    assert_eq!(c.sip.bind, IpAddr::from([127, 0, 0, 1]), "[sip] bind");
    assert_eq!(c.realtime.model, "from-file", "[openai] model");
    assert!(c.sip.trunk.is_none());

    // Errors name the file a value came from.
    let other = write_file(dir.path(), "other.toml", "[sip]\nport = 0\n");
    let only_file = Sources {
        env: HashMap::new(),
        env_file: EnvFile::None,
        config_file: Some(other.clone()),
    };
    let e = Config::load(&only_file).unwrap_err();
    let line = e.for_key("SIP_PORT").expect("SIP_PORT error").to_string();
    assert!(
        line.contains(&format!("SIP_PORT=0 (from {})", other.display())),
        "{line}"
    );
}

#[test]
fn explicit_file_beats_voiceagent_config() {
    let dir = tempfile::tempdir().unwrap();
    let named = write_file(dir.path(), "named.toml", "MAX_CALLS = 11\n");
    let explicit = write_file(dir.path(), "explicit.toml", "MAX_CALLS = 12\n");
    let sources = Sources {
        env: map(&[("VOICEAGENT_CONFIG", named.to_str().unwrap())]),
        env_file: EnvFile::None,
        config_file: None,
    };
    assert_eq!(Config::load(&sources).unwrap().sip.max_calls, 11);
    let c = Config::load(&sources.with_config_file(explicit)).unwrap();
    assert_eq!(c.sip.max_calls, 12);
}

#[test]
fn source_file_problems_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    // A missing default .env is fine, a missing named one is not.
    let missing = dir.path().join("missing.env");
    let optional = Sources {
        env_file: EnvFile::Optional(missing.clone()),
        ..Sources::default()
    };
    assert!(Config::load(&optional).is_ok());
    let e = Config::load(&Sources::default().with_env_file(&missing)).unwrap_err();
    assert!(e.for_key("VOICEAGENT_ENV_FILE").is_some(), "{e}");

    // A broken .env line is located without quoting it (it may hold a password).
    let env_file = write_file(
        dir.path(),
        "broken.env",
        "SIP_PORT=5060\nSIP_PASSWORD='S3NTINEL\n",
    );
    let e = Config::load(&Sources::default().with_env_file(&env_file)).unwrap_err();
    let text = e.to_string();
    assert!(text.contains("VOICEAGENT_ENV_FILE"), "{text}");
    assert!(!text.contains(SENTINEL), "{text}");

    // Bad TOML, and an unknown key in the file with a suggestion.
    let bad_toml = write_file(dir.path(), "bad.toml", "SIP_PORT = \n");
    let e = Config::load(&Sources::default().with_config_file(&bad_toml)).unwrap_err();
    assert!(e.to_string().contains("not valid TOML at line 1"), "{e}");
    let secret_toml = write_file(dir.path(), "secret.toml", "SIP_PASSWORD = \"S3NTINEL\nx\n");
    let e = Config::load(&Sources::default().with_config_file(&secret_toml)).unwrap_err();
    assert!(e.to_string().contains("not valid TOML"), "{e}");
    assert!(!e.to_string().contains(SENTINEL), "{e}");
    let typo = write_file(dir.path(), "typo.toml", "[sip]\nservr = \"x\"\n");
    let e = Config::load(&Sources::default().with_config_file(&typo)).unwrap_err();
    let error = e.for_key("SIP_SERVR").expect("unknown key error");
    assert!(error.fix.contains("did you mean SIP_SERVER"), "{e}");
}

#[test]
fn typo_in_the_environment_is_a_warning_with_a_suggestion() {
    let e = errors(&[
        ("SIP_SERVER", "sipgate.de"),
        ("SIP_USERNAME", "1234567e0"),
        ("SIP_PASSWROD", "S3NTINEL"),
    ]);
    let warning = e
        .warnings
        .iter()
        .find(|w| w.key == "SIP_PASSWROD")
        .expect("typo warning");
    assert!(
        warning.message.contains("did you mean SIP_PASSWORD"),
        "{warning}"
    );
    // The warning is printed with the error it explains, without the value.
    let text = e.to_string();
    assert!(text.contains("SIP_PASSWROD"), "{text}");
    assert!(!text.contains(SENTINEL), "{text}");

    // Without errors the warnings are on the config; unrelated variables are left alone.
    let c = load(&[
        ("OPENAI_MODLE", "x"),
        ("PATH", "/usr/bin"),
        ("HOME", "/root"),
    ]);
    let warnings = other_warnings(&c);
    assert_eq!(warnings.len(), 1);
    assert!(warnings[0].message.contains("did you mean OPENAI_MODEL"));
}

#[test]
fn bad_url_scheme() {
    let e = errors(&[("OPENAI_REALTIME_URL", "http://localhost:8080/v1/realtime")]);
    let line = e.for_key("OPENAI_REALTIME_URL").unwrap().to_string();
    assert!(line.contains("http://localhost:8080/v1/realtime"), "{line}");
    assert!(line.contains("ws:// or wss://"), "{line}");
    assert!(line.contains("set OPENAI_REALTIME_URL to"), "{line}");
    assert!(errors(&[("OPENAI_REALTIME_URL", "wss://")])
        .for_key("OPENAI_REALTIME_URL")
        .is_some());
}

#[test]
fn instructions_from_text_or_file_but_not_both() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(dir.path(), "instructions.md", "  Aus der Datei.\n");
    let path = file.to_str().unwrap();
    let c = load(&[("AGENT_INSTRUCTIONS_FILE", path)]);
    assert_eq!(c.agent.instructions.as_deref(), Some("Aus der Datei."));
    assert_eq!(c.agent.instructions_source, path);

    let e = errors(&[
        ("AGENT_INSTRUCTIONS", "inline"),
        ("AGENT_INSTRUCTIONS_FILE", path),
    ]);
    let line = e.for_key("AGENT_INSTRUCTIONS").unwrap().to_string();
    assert!(line.contains("AGENT_INSTRUCTIONS_FILE"), "{line}");
    assert!(line.contains("unset either"), "{line}");

    let e = errors(&[("AGENT_GREETING", "Hallo"), ("AGENT_GREETING_FILE", path)]);
    assert!(e.for_key("AGENT_GREETING").is_some());

    let missing = dir.path().join("missing.md");
    let e = errors(&[("AGENT_INSTRUCTIONS_FILE", missing.to_str().unwrap())]);
    let line = e.for_key("AGENT_INSTRUCTIONS_FILE").unwrap().to_string();
    assert!(line.contains(missing.to_str().unwrap()), "{line}");
    assert!(line.contains("cannot read"), "{line}");

    let greeting = write_file(dir.path(), "greeting.txt", "Guten Tag!\n");
    let c = load(&[("AGENT_GREETING_FILE", greeting.to_str().unwrap())]);
    assert_eq!(c.agent.greeting.as_deref(), Some("Guten Tag!"));
}

#[test]
fn cross_key_rules() {
    let e = errors(&[("SIP_PORT", "4010")]);
    assert!(
        e.for_key("SIP_PORT")
            .unwrap()
            .problem
            .contains("RTP port range 4000–4099"),
        "{e}"
    );
    let e = errors(&[("RTP_PORT_START", "65500"), ("RTP_PORT_RANGE", "100")]);
    assert!(e.for_key("RTP_PORT_RANGE").is_some(), "{e}");
    let c = load(&[("MAX_CALLS", "64")]);
    assert!(
        c.warnings.iter().any(|w| w.key == "RTP_PORT_RANGE"),
        "{:?}",
        c.warnings
    );
    let c = load(&[("API_ADDR", "0.0.0.0:8085")]);
    assert!(c.warnings.iter().any(|w| w.key == "API_TOKEN"));
    let c = load(&[("RECORD_CALLS", "true"), ("RECORDING_NOTICE", "false")]);
    assert!(c.warnings.iter().any(|w| w.key == "RECORDING_NOTICE"));
    let c = load(&[("OPENAI_REALTIME_URL", "ws://127.0.0.1:1/v1/realtime")]);
    assert!(c.uses_local_realtime());
    assert!(c.warnings.iter().any(|w| w.key == "OPENAI_REALTIME_URL"));
}

#[test]
fn conversation_config_follows_the_settings() {
    let c = load(&[
        ("OPENAI_VOICE", "cedar"),
        ("AGENT_GREETING", "Guten Tag!"),
        ("NOISE_REDUCTION", "off"),
    ]);
    let conv = c.conversation_config(|| "built-in".to_string());
    assert_eq!(conv.voice, "cedar");
    assert_eq!(conv.instructions, "built-in");
    assert_eq!(conv.noise_reduction, None);
    assert_eq!(conv.transcription_language.as_deref(), Some("de"));
    match conv.greeting {
        crate::realtime::conversation::Greeting::Model { extra: Some(extra) } => {
            assert!(extra.contains("Guten Tag!"))
        }
        other => panic!("unexpected greeting {other:?}"),
    }
}

#[test]
fn docs_and_env_example_list_every_key() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for file in ["docs/CONFIGURATION.md", ".env.example"] {
        let text = std::fs::read_to_string(root.join(file))
            .unwrap_or_else(|e| panic!("cannot read {file}: {e}"));
        for key in KEYS {
            assert!(
                text.contains(key.name),
                "{file} does not mention {}",
                key.name
            );
        }
    }
}

#[test]
fn env_example_shows_the_defaults() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.env.example");
    let text = std::fs::read_to_string(path).expect(".env.example");
    for key in KEYS
        .iter()
        .filter(|k| !k.default.is_empty() && k.name != "CATALOG_DIR")
    {
        let line = format!("# {}={}", key.name, key.default);
        assert!(
            text.lines().any(|l| l == line),
            ".env.example lacks `{line}`"
        );
    }
    // The commented defaults are valid settings.
    let defaults: HashMap<String, String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# ")?.split_once('='))
        .filter(|(k, v)| !v.is_empty() && super::keys::find(k).is_some_and(|key| key.default == *v))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert!(defaults.len() > 30, "{defaults:?}");
    let c = Config::from_map(defaults).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.summary(), load(&[]).summary());
}

#[test]
fn cleartext_realtime_urls_are_refused_unless_loopback() {
    for local in [
        "ws://127.0.0.1:9000/v1/realtime",
        "ws://127.8.9.10/v1/realtime",
        "ws://[::1]:9000/v1/realtime",
        "ws://localhost:9000/v1/realtime",
        "ws://LOCALHOST./v1/realtime",
        "wss://api.openai.com/v1/realtime",
        "wss://10.0.0.5/v1/realtime",
    ] {
        let c = load(&[
            ("OPENAI_API_KEY", "sk-S3NTINEL"),
            ("OPENAI_REALTIME_URL", local),
        ]);
        assert_eq!(c.realtime.url, local);
    }
    for remote in [
        "ws://api.openai.com/v1/realtime",
        "ws://10.0.0.5:9000/v1/realtime",
        "ws://[2001:db8::1]/v1/realtime",
        "ws://[::ffff:10.0.0.5]/v1/realtime",
        "ws://localhost.evil.example/v1/realtime",
        "ws://127.0.0.1.nip.io/v1/realtime",
        "ws://0.0.0.0/v1/realtime",
    ] {
        let e = errors(&[
            ("OPENAI_API_KEY", "sk-S3NTINEL"),
            ("OPENAI_REALTIME_URL", remote),
        ]);
        let error = e
            .for_key("OPENAI_REALTIME_URL")
            .unwrap_or_else(|| panic!("{remote} is refused: {e}"));
        let line = error.to_string();
        assert!(line.contains("clear text"), "{line}");
        assert!(line.contains("use wss://"), "{line}");
        assert!(!line.contains(SENTINEL), "{line}");
    }
    // Refused without a key too: the URL is used as soon as one is added.
    assert!(
        errors(&[("OPENAI_REALTIME_URL", "ws://api.openai.com/v1/realtime")])
            .for_key("OPENAI_REALTIME_URL")
            .is_some()
    );
}

#[test]
fn ip_mode_on_a_public_address_without_an_allowlist_warns() {
    let exposed = |c: &Config| c.warnings.iter().any(|w| w.key == "SIP_ALLOWED_SOURCES");
    for bind in ["0.0.0.0", "203.0.113.10", "::", "10.0.0.2"] {
        let c = load(&[("SIP_BIND", bind)]);
        let w = c
            .warnings
            .iter()
            .find(|w| w.key == "SIP_ALLOWED_SOURCES")
            .unwrap_or_else(|| panic!("a warning for SIP_BIND={bind}"));
        let line = w.to_string();
        assert!(line.contains(&format!("SIP_BIND={bind}")), "{line}");
        assert!(line.contains("set SIP_ALLOWED_SOURCES"), "{line}");
        assert!(line.contains("IP mode"), "{line}");
    }
    assert!(!exposed(&load(&[("SIP_BIND", "127.0.0.1")])));
    assert!(!exposed(&load(&[("SIP_BIND", "::1")])));
    assert!(!exposed(&load(&[("SIP_ALLOWED_SOURCES", "10.0.0.0/8")])));
    // Trunk mode: the trunk's own admission rules apply, not this warning.
    assert!(!exposed(&load(TRUNK)));
}

#[test]
fn api_hosts_and_outbound_patterns() {
    let c = load(&[("API_ALLOWED_HOSTS", "ops.example,[fd00::1]:8085")]);
    assert_eq!(c.api.allowed_hosts.len(), 2);
    let e = errors(&[("API_ALLOWED_HOSTS", "ops.example, *.example")]);
    let line = e.for_key("API_ALLOWED_HOSTS").unwrap().to_string();
    assert!(line.contains("`*.example`"), "{line}");
    assert!(line.contains("set API_ALLOWED_HOSTS to"), "{line}");

    // IP mode: URI patterns only; a number pattern names the fix.
    let c = load(&[("OUTBOUND_ALLOWED", "sip:*@127.0.0.1")]);
    assert!(c.api.outbound.check("sip:a@127.0.0.1:5062").is_ok());
    let e = errors(&[("OUTBOUND_ALLOWED", "sip:*@127.0.0.1,+4930*")]);
    let line = e.for_key("OUTBOUND_ALLOWED").unwrap().to_string();
    assert!(line.contains("`+4930*`"), "{line}");
    assert!(line.contains("SIP_SERVER is unset"), "{line}");
    assert!(line.contains("sip:+4930*@"), "{line}");
    let mut trunk = TRUNK.to_vec();
    trunk.push(("OUTBOUND_ALLOWED", "tel:+4930*"));
    let c = load(&trunk);
    assert!(c.api.outbound.check("sip:+4930123@sipgate.de").is_ok());
    assert!(c.api.outbound.check("sip:+4930123@evil.example").is_err());
}
