//! What the engine tells the application. Events are produced on the pjlib thread (DTMF on
//! PJSIP's media thread) and delivered through a channel that sync and async code can read.

use std::fmt;
use std::net::SocketAddr;

use crate::media::{DownlinkApi, RecordingTap, UplinkApi};

/// Our id for a call. Unlike pjsua's call index, which is reused as soon as a call ends, it is
/// never reused within a process, so a late command cannot hit the wrong call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallId(pub u64);

impl fmt::Display for CallId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "call-{}", self.0)
    }
}

/// Direction of a call, seen from us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Incoming,
    Outgoing,
}

impl Direction {
    /// `incoming` or `outgoing`, as logs and the API spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Incoming => "incoming",
            Direction::Outgoing => "outgoing",
        }
    }
}

/// The SIP state of a call (PJSIP's invite session states).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallState {
    Calling,
    Incoming,
    Early,
    Connecting,
    Confirmed,
    Disconnected,
}

/// Media state of a call after an (re)negotiation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaStatus {
    Active,
    LocalHold,
    RemoteHold,
    None,
    Error,
}

/// The negotiated audio stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaInfo {
    /// Encoding name as in SDP, e.g. `opus`, `PCMA`.
    pub codec: String,
    /// RTP clock rate of the codec, e.g. 48000 or 8000.
    pub clock_rate: u32,
    /// Channels of the codec.
    pub channels: u32,
    /// Where the peer's RTP comes from (as negotiated).
    pub remote_rtp: String,
}

/// The application's ends of a call's audio: 20 ms frames from the caller (`uplink`) and PCM to
/// play to the caller (`downlink`), both 48 kHz mono. Handed over once per call.
pub struct CallMedia {
    pub uplink: UplinkApi,
    pub downlink: DownlinkApi,
    /// Both directions, tick by tick, for a recorder (when `EngineConfig::record_calls`).
    pub recording: Option<RecordingTap>,
}

impl fmt::Debug for CallMedia {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallMedia").finish_non_exhaustive()
    }
}

/// Registration state of the trunk account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Registration {
    /// Registered; the registrar granted this many seconds.
    Registered { expires: u32 },
    /// Unregistered (e.g. on shutdown).
    Unregistered,
    /// Registration failed, e.g. 401/403 for wrong credentials or 408 for no answer.
    Failed { code: u16, reason: String },
}

/// Why an INVITE was refused without bothering the application.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectReason {
    /// The source address is outside `allowed_sources` (403).
    NotAllowed,
    /// `max_calls` is reached (486).
    Busy,
    /// The engine is shutting down (503).
    ShuttingDown,
    /// The source sent more new INVITEs than `invite_rate` allows (503).
    RateLimited,
}

/// Something that happened in the engine.
#[derive(Debug)]
#[non_exhaustive]
pub enum Event {
    /// An INVITE arrived and was accepted for consideration; it is ringing.
    IncomingCall {
        call: CallId,
        /// `From` URI (the caller), as PJSIP prints it: display name included, for people.
        from: String,
        /// `To` URI (the number called).
        to: String,
        /// Where the INVITE came from.
        source: Option<SocketAddr>,
        /// The caller's number as PJSIP parsed it: the user part of the `From` URI, or of
        /// `P-Asserted-Identity` when the INVITE came from the trunk (only the trunk may assert
        /// an identity). Never taken from the display name, which callers write freely. Empty
        /// when the URI has no user part.
        caller: String,
    },
    /// An INVITE was refused by policy.
    IncomingRejected {
        from: String,
        source: Option<SocketAddr>,
        reason: RejectReason,
        code: u16,
    },
    /// The SIP state of a call changed.
    CallState {
        call: CallId,
        state: CallState,
        code: u16,
        reason: String,
    },
    /// Media is (again) flowing; `media` carries the audio ends the first time.
    MediaActive {
        call: CallId,
        info: MediaInfo,
        media: Option<CallMedia>,
    },
    /// Media changed to something other than active (hold, error).
    MediaChanged { call: CallId, status: MediaStatus },
    /// The call ended; no more events for it follow.
    CallEnded {
        call: CallId,
        direction: Direction,
        code: u16,
        reason: String,
    },
    /// A DTMF digit (RFC 2833 or SIP INFO) from the peer.
    Dtmf { call: CallId, digit: char },
    /// Progress of a blind transfer (NOTIFY sipfrag); `last` is the final one.
    TransferStatus {
        call: CallId,
        code: u16,
        reason: String,
        last: bool,
    },
    /// The trunk registration changed.
    Registration(Registration),
    /// A panic was caught in an engine callback; the affected call (if any) is hung up.
    InternalError {
        call: Option<CallId>,
        message: String,
    },
}

/// Receives the engine's events; usable from sync code (`recv`, `recv_timeout`) and from async
/// code (`recv_async`).
pub type EventReceiver = flume::Receiver<Event>;
