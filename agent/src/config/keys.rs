//! The list of every configuration key: its default, what it expects and whether it is secret.
//!
//! One table serves four purposes, so they cannot drift apart: the "fix" half of every error
//! message ("set SIP_PORT to …"), typo detection for unknown keys, hiding secret values, and the
//! tests that check `docs/CONFIGURATION.md` and `.env.example` mention every key.

/// One configuration key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    /// The environment variable name, e.g. `SIP_PORT`.
    pub name: &'static str,
    /// The default as an operator would write it; empty = unset by default.
    pub default: &'static str,
    /// What a good value is, phrased to follow "set KEY to …", with an example.
    pub expects: &'static str,
    /// Values are never printed (errors, `Debug`, summary).
    pub secret: bool,
}

const fn key(name: &'static str, default: &'static str, expects: &'static str) -> Key {
    Key {
        name,
        default,
        expects,
        secret: false,
    }
}

const fn secret(name: &'static str, expects: &'static str) -> Key {
    Key {
        name,
        default: "",
        expects,
        secret: true,
    }
}

/// Every key the service reads, in the order of the documentation.
pub const KEYS: &[Key] = &[
    // Where the configuration comes from.
    key("VOICEAGENT_CONFIG", "", "the path of a TOML configuration file, e.g. /etc/voiceagent.toml"),
    key("VOICEAGENT_ENV_FILE", ".env", "the path of the .env file to read, e.g. /etc/voiceagent.env"),
    // SIP.
    key("SIP_SERVER", "", "the registrar as host[:port], e.g. sipgate.de (unset = IP mode: accept direct calls, no registration)"),
    key("SIP_PORT", "5060", "the UDP/TCP port to listen on, e.g. 5060"),
    key("SIP_USERNAME", "", "the SIP user name of the trunk account, e.g. 1234567e0"),
    secret("SIP_PASSWORD", "the SIP password of the trunk account"),
    key("SIP_DOMAIN", "", "the domain of the SIP address, e.g. sipgate.de (default: SIP_SERVER without port)"),
    key("SIP_PROXY", "", "an outbound proxy URI, e.g. sip:proxy.example.com;lr"),
    key("SIP_PUBLIC_IP", "", "the public IP address to advertise in SIP and SDP behind 1:1 NAT, e.g. 203.0.113.10"),
    key("SIP_BIND", "0.0.0.0", "the local IP address to bind SIP and RTP to, e.g. 0.0.0.0 for all"),
    key("SIP_TRANSPORT", "udp,tcp", "a comma list of udp, tcp and tls, e.g. udp,tcp or tls (with tls, the trunk is reached over TLS)"),
    key("SIP_TLS_PORT", "", "the TLS listening port (1-65535; default SIP_PORT + 1, i.e. 5061), e.g. 5061"),
    key("SIP_TLS_CA_FILE", "", "a PEM file of CA certificates that the trunk's TLS certificate must chain to (default: the system's, /etc/ssl/certs/ca-certificates.crt)"),
    key("SIP_TLS_CERT_FILE", "", "our TLS certificate chain as a PEM file, presented to callers over TLS (with SIP_TLS_KEY_FILE)"),
    key("SIP_TLS_KEY_FILE", "", "the private key of SIP_TLS_CERT_FILE as a PEM file"),
    key("SRTP", "off", "off, optional or mandatory: SRTP (SDES, AES_CM_128_HMAC_SHA1_80 and stronger) for the calls' audio"),
    key("SIP_REGISTER_INTERVAL", "300", "the registration interval in seconds (60–86400), e.g. 300"),
    key("SIP_ALLOWED_SOURCES", "", "a comma list of networks allowed to call, e.g. 217.10.64.0/20,10.0.0.5 (empty = everyone; a warning in IP mode on a non-loopback SIP_BIND)"),
    key("SIP_TRUNK_SOURCES_ONLY", "true", "true or false: in trunk mode accept INVITEs only from the trunk's addresses and SIP_ALLOWED_SOURCES"),
    key("SIP_INVITE_RATE", "5", "new INVITEs per second allowed from one source address, bursts of 4x that (the trunk is exempt; 0 = unlimited), e.g. 5"),
    key("SIP_USER_AGENT", "voiceagent", "the User-Agent/Server header, 1-64 printable characters (default without a version), e.g. voiceagent"),
    key("STUN_SERVERS", "", "a comma list of STUN servers as host[:port], e.g. stun.sipgate.net:3478"),
    key("MAX_CALLS", "50", "the number of concurrent calls (1–256; each takes 2 RTP ports), e.g. 50"),
    // Media.
    key("RTP_PORT_START", "4000", "the first UDP port for RTP (1024–65534), e.g. 4000"),
    key("RTP_TIMEOUT", "60", "seconds without any RTP from the caller after which a call is hung up (0 = never), e.g. 60"),
    key("RTP_PORT_RANGE", "100", "the number of UDP ports for RTP and RTCP, two per call, e.g. 100"),
    key("CODECS", "opus,G722,PCMA,PCMU", "a comma list from opus, G722, PCMA, PCMU, L16 in order of preference"),
    key("OPUS_BITRATE", "auto", "the Opus bit rate in bit/s (6000–510000) or auto, e.g. 32000"),
    key("OPUS_COMPLEXITY", "5", "the Opus encoder complexity (0–10), e.g. 5"),
    key("OPUS_FEC", "true", "true or false (Opus in-band forward error correction)"),
    key("JITTER_MAX_MS", "120", "the jitter buffer's maximum in milliseconds (40–2000), e.g. 120"),
    // Realtime model.
    secret("OPENAI_API_KEY", "an OpenAI API key (unset = use the built-in local Realtime server)"),
    key("OPENAI_MODEL", "gpt-realtime", "a Realtime model name, e.g. gpt-realtime"),
    key("OPENAI_REALTIME_URL", "wss://api.openai.com/v1/realtime", "a wss:// URL (ws:// only to a loopback host), e.g. wss://api.openai.com/v1/realtime"),
    key("OPENAI_VOICE", "marin", "a Realtime voice, e.g. marin or cedar"),
    // Agent behaviour.
    key("AGENT_INSTRUCTIONS", "", "the system instructions as text (default: the built-in ordering instructions)"),
    key("AGENT_INSTRUCTIONS_FILE", "", "the path of a UTF-8 text file with the system instructions, e.g. /etc/voiceagent/instructions.md"),
    key("AGENT_GREETING", "", "what the agent says first, e.g. \"Guten Tag, hier ist die Bestellannahme.\" (default: the model greets as instructed)"),
    key("AGENT_GREETING_FILE", "", "the path of a UTF-8 text file with the greeting"),
    key("AGENT_LANGUAGE", "de", "a two-letter ISO 639-1 language code, e.g. de"),
    key("TURN_DETECTION", "server_vad", "server_vad or semantic_vad"),
    key("VAD_THRESHOLD", "0.5", "a number from 0.0 to 1.0 (server_vad speech threshold), e.g. 0.5"),
    key("VAD_PREFIX_PADDING_MS", "300", "milliseconds of audio kept before speech starts (0–2000), e.g. 300"),
    key("VAD_SILENCE_MS", "500", "milliseconds of silence that end the caller's turn (100–5000), e.g. 500"),
    key("VAD_EAGERNESS", "auto", "low, medium, high or auto (semantic_vad)"),
    key("NOISE_REDUCTION", "near_field", "near_field, far_field or off"),
    key("TRANSCRIPTION_MODEL", "gpt-4o-mini-transcribe", "a transcription model, e.g. gpt-4o-mini-transcribe, or off"),
    // Call handling.
    key("RING_DELAY_MS", "0", "milliseconds to ring before answering (0–30000), e.g. 0"),
    key("ANSWER_TIMEOUT_MS", "5000", "milliseconds to wait for the model session before giving up on a call (100–60000), e.g. 5000"),
    key("BACKEND_FAILURE", "apology", "apology (answer and play the local apology prompt) or reject (503)"),
    key("TOOL_HOLD_SOUND_MS", "1500", "milliseconds a tool may run before the hold sound plays (0 = never), e.g. 1500"),
    key("TOOL_TIMEOUT_MS", "8000", "milliseconds after which a tool call fails (100–120000), e.g. 8000"),
    key("TRANSFER_TARGET", "", "a SIP URI to transfer callers to, e.g. sip:+4930123456@sipgate.de (unset = no transfers)"),
    key("HANGUP_GRACE_MS", "3000", "milliseconds to finish tool calls and transcripts after the caller hangs up (0–60000), e.g. 3000"),
    // Data.
    key("DATA_DIR", "./data", "a directory for orders.sqlite3 and recordings, e.g. ./data"),
    key("CATALOG_DIR", "DATA_DIR/catalog", "the product catalog directory, e.g. ./data/catalog"),
    // Status and order API.
    key("API_ADDR", "127.0.0.1:8085", "an IP address and port for the HTTP API, e.g. 127.0.0.1:8085"),
    secret("API_TOKEN", "a bearer token of at least 16 characters for the HTTP API, e.g. the output of `openssl rand -hex 24`"),
    key("API_ALLOWED_HOSTS", "", "a comma list of host names (or host:port) the HTTP API answers to besides API_ADDR, e.g. voiceagent.internal,10.8.0.1:8085"),
    key("OUTBOUND_ALLOWED", "", "a comma list of destinations POST /api/calls may call: SIP URI patterns or number prefixes on the trunk, e.g. sip:*@pbx.example,+4930* (empty = outbound calls through the API are disabled)"),
    // Recording.
    key("RECORD_CALLS", "false", "true or false"),
    key("RECORDING_RETENTION_DAYS", "30", "days to keep recordings (0 = forever, at most 3650), e.g. 30"),
    key("RECORDING_NOTICE", "true", "true or false (tell callers that the call is recorded)"),
    // Logging and process.
    key("LOG_LEVEL", "info", "error, warn, info, debug, trace or a tracing filter, e.g. info,agent=debug"),
    key("LOG_FORMAT", "text", "text or json"),
    key("SHUTDOWN_TIMEOUT_MS", "5000", "milliseconds a graceful shutdown may take (100–120000), e.g. 5000"),
];

/// Prefixes that mark a variable as meant for us; unknown ones get a typo warning.
pub const OUR_PREFIXES: &[&str] = &[
    "SIP_",
    "OPENAI_",
    "AGENT_",
    "VAD_",
    "RTP_",
    "OPUS_",
    "RECORDING_",
    "VOICEAGENT_",
];

/// The key with this exact name.
pub fn find(name: &str) -> Option<&'static Key> {
    KEYS.iter().find(|k| k.name == name)
}

/// The known key closest to a misspelt one, if it is close enough to be a likely typo.
pub fn suggest(unknown: &str) -> Option<&'static str> {
    let upper = unknown.to_ascii_uppercase();
    KEYS.iter()
        .map(|k| (strsim::damerau_levenshtein(&upper, k.name), k.name))
        .filter(|(distance, name)| *distance <= (name.len() / 4).max(2))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, name)| name)
}
