//! The engine's settings, with defaults chosen for a voice bot on a SIP trunk.
//!
//! Defaults differ from PJSIP's where PJSIP's are wrong for us: 48 kHz bridge instead of 16 kHz,
//! a low-latency jitter buffer (2.12's defaults added 300–400 ms in a loopback test), Opus first,
//! continuous RTP (no VAD) so carriers' RTP timeouts and NAT bindings survive silence, and a
//! contact rewrite that follows the address the registrar saw.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;

/// SIP transports the engine listens on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
    /// SIP over TLS on [`TlsConfig::port`]; see [`TlsConfig`] for certificates.
    Tls,
}

/// SIP over TLS: what the TLS transport presents and whom it trusts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TlsConfig {
    /// Port of the TLS listener; 0 = the SIP port + 1 (5061 with the default 5060).
    pub port: u16,
    /// CA certificates (PEM) that server certificates must chain to; `None` = the system's
    /// bundle, [`SYSTEM_CA_FILE`].
    pub ca_file: Option<std::path::PathBuf>,
    /// Our certificate chain (PEM), presented to TLS callers; without it the TLS transport
    /// only connects out (registration and calls to a TLS trunk).
    pub cert_file: Option<std::path::PathBuf>,
    /// The private key (PEM) of `cert_file`.
    pub key_file: Option<std::path::PathBuf>,
}

/// Debian's CA bundle (package ca-certificates): OpenSSL in PJSIP loads no default paths.
pub const SYSTEM_CA_FILE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// SRTP (RFC 3711) with SDES key exchange (RFC 4568) for the calls' media.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SrtpMode {
    /// Plain RTP only.
    #[default]
    Off,
    /// Offer and accept SRTP, fall back to RTP when the peer has none.
    Optional,
    /// SRTP or no call (an offer without crypto is refused with 488).
    Mandatory,
}

/// A password that never appears in logs or `Debug` output.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    /// The secret itself, for handing to PJSIP.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() { "\"\"" } else { "\"***\"" })
    }
}

/// Registration with a SIP server (trunk mode). Without it the engine runs in IP mode and
/// accepts direct calls.
#[derive(Debug, Clone)]
pub struct AccountConfig {
    /// Registrar host, optionally with `:port` (e.g. `sipgate.de`).
    pub server: String,
    /// SIP user name (e.g. `1234567e0`).
    pub username: String,
    /// Digest password.
    pub password: Secret,
    /// Domain of the address-of-record; defaults to `server` without the port.
    pub domain: Option<String>,
    /// Outbound proxy URI, e.g. `sip:proxy.example.com;lr`.
    pub proxy: Option<String>,
    /// Registration interval (`Expires`), default 300 s.
    pub reg_interval: Duration,
    /// Wait between failed registrations, default 30 s (PJSIP's 300 s is too slow for a bot).
    pub retry_interval: Duration,
}

/// How the `Contact` header follows the address the registrar saw (NAT).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContactRewrite {
    /// Never rewrite.
    Off,
    /// Re-register with the new Contact without unregistering the old one first.
    NoUnregister,
    /// Unregister the old Contact first, then register the new one.
    Unregister,
    /// Always update the Contact from the `received`/`rport` of every response (default).
    Always,
}

/// How incoming calls are answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnswerMode {
    /// Send 180 Ringing and wait for [`crate::EngineHandle::answer`] or `reject`.
    Manual,
    /// Answer with 200 at once, on the pjlib thread.
    Immediate,
    /// Ring for this long, then answer with 200 on the pjlib thread.
    AfterRing(Duration),
}

/// Opus encoder parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpusConfig {
    /// Target bit rate in bit/s; `None` lets Opus choose.
    pub bitrate: Option<u32>,
    /// Encoder complexity 0..=10 (default 5).
    pub complexity: u32,
    /// In-band forward error correction (default on).
    pub fec: bool,
    /// Constant bit rate (default off).
    pub cbr: bool,
    /// Expected packet loss in percent, tunes FEC (default 10).
    pub packet_loss_percent: u32,
}

impl Default for OpusConfig {
    fn default() -> Self {
        Self {
            bitrate: None,
            complexity: 5,
            fec: true,
            cbr: false,
            packet_loss_percent: 10,
        }
    }
}

/// Jitter buffer settings in milliseconds (`None` = PJSIP's default for that field).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JitterConfig {
    pub init_ms: Option<u32>,
    pub min_prefetch_ms: Option<u32>,
    pub max_prefetch_ms: Option<u32>,
    pub max_ms: Option<u32>,
}

impl Default for JitterConfig {
    /// Measured on PJSIP 2.12 to give about 40 ms instead of 300–400 ms (shared reference
    /// pjsip.md §10.3); enough for loopback and ordinary trunks, raise `max_ms` for bad networks.
    fn default() -> Self {
        Self {
            init_ms: Some(0),
            min_prefetch_ms: Some(20),
            max_prefetch_ms: Some(40),
            max_ms: Some(120),
        }
    }
}

/// Everything the engine needs to start.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Address to bind SIP and RTP sockets to (`0.0.0.0` = all).
    pub bind: IpAddr,
    /// SIP port (default 5060).
    pub sip_port: u16,
    /// SIP transports to listen on (default UDP and TCP).
    pub transports: Vec<Transport>,
    /// The public address to advertise in Via/Contact and SDP (behind 1:1 NAT).
    pub public_address: Option<String>,
    /// First RTP port (default 4000); RTCP uses RTP+1.
    pub rtp_port_start: u16,
    /// Size of the RTP port range (default 100).
    pub rtp_port_range: u16,
    /// Registration; `None` = IP mode.
    pub account: Option<AccountConfig>,
    /// STUN servers (`host[:port]`); one failing is tolerated.
    pub stun_servers: Vec<String>,
    /// Contact rewrite method (default [`ContactRewrite::Always`]).
    pub contact_rewrite: ContactRewrite,
    /// Put the address learnt from the registrar into SDP when no public address is set.
    pub sdp_nat_rewrite: bool,
    /// SIP keep-alive interval towards the registrar (default 15 s; zero disables).
    pub sip_keepalive: Duration,
    /// Codecs in order of preference, as PJSIP names them (prefixes match).
    pub codecs: Vec<String>,
    /// Opus parameters.
    pub opus: OpusConfig,
    /// Jitter buffer.
    pub jitter: JitterConfig,
    /// Conference-bridge resampling quality 1..=10 (default 4: small filter, ample for 8 kHz).
    pub resample_quality: u32,
    /// Maximum concurrent calls; INVITEs beyond get 486 Busy Here (at most `PJSUA_MAX_CALLS`).
    pub max_calls: u32,
    /// Source networks allowed to send INVITEs; in IP mode an empty list admits everyone.
    /// Others get 403.
    pub allowed_sources: Vec<IpNet>,
    /// In trunk mode, admit INVITEs only from the trunk (its registrar and proxy addresses,
    /// resolved at start and every 5 minutes, and the address its registrar answered from) and
    /// `allowed_sources`. Default true.
    pub trunk_sources_only: bool,
    /// New INVITEs per source address (the trunk is exempt); beyond, 503. `None` = unlimited.
    pub invite_rate: Option<crate::InviteRate>,
    /// An answered call whose ACK has not arrived after this long is hung up (it holds a call
    /// slot, and the application's resources, for nothing). Default 8 s.
    pub confirm_timeout: Duration,
    /// A call that received no RTP for this long is hung up (the peer is gone without a BYE).
    /// Zero disables it. Default 60 s.
    pub rtp_timeout: Duration,
    /// How incoming calls are answered.
    pub answer: AnswerMode,
    /// Capacity of each per-call media queue in 20 ms frames (default 500 = 10 s).
    pub queue_frames: usize,
    /// Give every call a recording tap ([`crate::CallMedia::recording`]): a copy of both
    /// directions for a recorder off the real-time path.
    pub record_calls: bool,
    /// PJSIP log verbosity 0..=6 (default 3: warnings and notable events).
    pub log_level: u32,
    /// `User-Agent` header.
    pub user_agent: String,
    /// SIP over TLS settings (used when `transports` has [`Transport::Tls`]).
    pub tls: TlsConfig,
    /// SRTP for the calls' media.
    pub srtp: SrtpMode,
    /// How long a graceful shutdown may take before pjsua is destroyed regardless.
    pub shutdown_timeout: Duration,
}

/// The codec order we want: Opus (wideband, trunks like sipgate), G.722, then G.711 for PSTN.
pub const DEFAULT_CODECS: [&str; 4] = ["opus/48000", "G722/16000", "PCMA/8000", "PCMU/8000"];

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            bind: IpAddr::from([0, 0, 0, 0]),
            sip_port: 5060,
            transports: vec![Transport::Udp, Transport::Tcp],
            public_address: None,
            rtp_port_start: 4000,
            rtp_port_range: 100,
            account: None,
            stun_servers: Vec::new(),
            contact_rewrite: ContactRewrite::Always,
            sdp_nat_rewrite: true,
            sip_keepalive: Duration::from_secs(15),
            codecs: DEFAULT_CODECS.iter().map(|c| c.to_string()).collect(),
            opus: OpusConfig::default(),
            jitter: JitterConfig::default(),
            resample_quality: 4,
            max_calls: 50,
            allowed_sources: Vec::new(),
            trunk_sources_only: true,
            invite_rate: None,
            confirm_timeout: Duration::from_secs(8),
            rtp_timeout: Duration::from_secs(60),
            answer: AnswerMode::Manual,
            queue_frames: 500,
            record_calls: false,
            log_level: 3,
            // No version: a `Server`/`User-Agent` that names it tells scanners what to try.
            user_agent: "voiceagent".into(),
            tls: TlsConfig::default(),
            srtp: SrtpMode::Off,
            shutdown_timeout: Duration::from_secs(5),
        }
    }
}

impl EngineConfig {
    /// Checks what PJSIP would reject later with a less helpful message.
    pub fn validate(&self) -> crate::Result<()> {
        let err = |key, problem: String| Err(crate::Error::Config { key, problem });
        if self.transports.is_empty() {
            return err("transports", "at least one SIP transport is needed".into());
        }
        if self.max_calls == 0 || self.max_calls > pjsip_sys::PJSUA_MAX_CALLS {
            return err(
                "max_calls",
                format!(
                    "{} is out of range 1..={} (PJSUA_MAX_CALLS in build/config_site.h)",
                    self.max_calls,
                    pjsip_sys::PJSUA_MAX_CALLS
                ),
            );
        }
        if self.rtp_port_range < 2 {
            return err(
                "rtp_port_range",
                "needs at least 2 ports (RTP and RTCP)".into(),
            );
        }
        if u32::from(self.rtp_port_start) + u32::from(self.rtp_port_range) > 65535 {
            return err(
                "rtp_port_range",
                format!(
                    "{}+{} goes past port 65535",
                    self.rtp_port_start, self.rtp_port_range
                ),
            );
        }
        if self.codecs.is_empty() {
            return err("codecs", "at least one codec is needed".into());
        }
        if self.opus.complexity > 10 {
            return err(
                "opus.complexity",
                format!("{} is out of range 0..=10", self.opus.complexity),
            );
        }
        if let Some(b) = self.opus.bitrate {
            if !(6000..=510_000).contains(&b) {
                return err(
                    "opus.bitrate",
                    format!("{b} is out of range 6000..=510000 bit/s"),
                );
            }
        }
        if !(1..=10).contains(&self.resample_quality) {
            return err(
                "resample_quality",
                format!("{} is out of range 1..=10", self.resample_quality),
            );
        }
        if let Some(rate) = self.invite_rate {
            if !(rate.per_second > 0.0 && rate.per_second.is_finite()) || rate.burst == 0 {
                return err(
                    "invite_rate",
                    format!(
                        "{} per second with a burst of {} admits nothing; use a positive rate and a burst of at least 1",
                        rate.per_second, rate.burst
                    ),
                );
            }
        }
        if self.tls.cert_file.is_some() != self.tls.key_file.is_some() {
            return err(
                "tls.cert_file",
                "a TLS certificate needs its private key and the other way round".into(),
            );
        }
        for (key, path) in [
            ("tls.ca_file", &self.tls.ca_file),
            ("tls.cert_file", &self.tls.cert_file),
            ("tls.key_file", &self.tls.key_file),
        ] {
            if let Some(p) = path {
                if !p.is_file() {
                    return err(key, format!("{} is not a readable file", p.display()));
                }
            }
        }
        if self.confirm_timeout.is_zero() {
            return err("confirm_timeout", "must be longer than zero".into());
        }
        if self.queue_frames < 2 {
            return err("queue_frames", "needs at least 2 frames".into());
        }
        if let Some(acc) = &self.account {
            if acc.server.trim().is_empty() {
                return err("account.server", "is empty".into());
            }
            if acc.username.trim().is_empty() {
                return err("account.username", "is empty".into());
            }
        }
        Ok(())
    }
}
