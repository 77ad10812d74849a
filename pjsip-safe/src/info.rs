//! What the engine reports about itself and its calls: the data the commands return.

use crate::event::MediaInfo;
use crate::media::MediaStats;

/// A codec as PJSIP offers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodecInfo {
    /// PJSIP's codec id, e.g. `opus/48000/2`, `PCMA/8000/1`.
    pub id: String,
    /// 0 = disabled, 255 = most preferred.
    pub priority: u8,
}

/// What the engine started with.
#[derive(Debug, Clone)]
pub struct EngineInfo {
    /// Version of the PJSIP tree we are linked with.
    pub pjsip_version: String,
    /// Listening SIP transports, e.g. `UDP 192.0.2.10:5060`.
    pub sip_addresses: Vec<String>,
    /// Codecs in PJSIP's codec manager with their priorities.
    pub codecs: Vec<CodecInfo>,
    /// Registered to a trunk (true) or IP mode (false).
    pub trunk_mode: bool,
    /// The address the SIP UDP transport advertises in Via and Contact (`host:port`): the
    /// configured public address, the STUN-mapped one, or the local one. `None` without UDP.
    pub udp_published: Option<String>,
    /// The STUN server (as configured) that answered PJSIP, when STUN servers are configured.
    pub stun_server: Option<String>,
    /// The address STUN mapped the SIP UDP transport to (`host:port`, equal to
    /// [`udp_published`](Self::udp_published)); `None` when no STUN server is configured, a
    /// public address is configured (it wins over STUN), there is no UDP transport, or no STUN
    /// server answered (PJSIP then advertises the local address: `stun_ignore_failure`).
    ///
    /// How "mapped" is told from "fell back to the local address": by PJSIP's own verdict, the
    /// `on_stun_resolution_complete` callback, which reports success only after a server
    /// answered a Binding request; only then does pjsua ask that server again for the SIP
    /// socket's mapping and publish it (`create_sip_udp_sock`). Comparing the published with
    /// the local address cannot tell them apart: on a host with a public address and no NAT,
    /// a correct mapping equals the local address. One corner stays invisible to the
    /// application: if the server answers the first request but all four retransmissions of
    /// the second (2 s) are lost, pjsua falls back to the host address and only logs
    /// "Error contacting STUN server"; this field then holds that host address.
    pub stun_mapped: Option<String>,
}

impl EngineInfo {
    /// Enabled codecs, most preferred first.
    pub fn enabled_codecs(&self) -> Vec<&str> {
        let mut enabled: Vec<&CodecInfo> = self.codecs.iter().filter(|c| c.priority > 0).collect();
        enabled.sort_by_key(|c| std::cmp::Reverse(c.priority));
        enabled.into_iter().map(|c| c.id.as_str()).collect()
    }
}

/// Quality figures of a call's audio stream.
#[derive(Debug, Clone)]
pub struct CallStats {
    pub media: MediaInfo,
    pub rx_packets: u32,
    pub rx_lost: u32,
    /// Mean interarrival jitter of received RTP.
    pub rx_jitter_ms: f64,
    pub tx_packets: u32,
    /// Round-trip time from RTCP, once known.
    pub rtt_ms: Option<f64>,
    /// Average delay the jitter buffer adds.
    pub jitter_buffer_ms: u32,
    /// Our media queues' counters (drops, underruns, flushes).
    pub queues: Option<MediaStats>,
    /// How long this call's media-port callbacks took (the real-time budget is 20 µs).
    pub callback_timing: Option<crate::port::PortTiming>,
}
