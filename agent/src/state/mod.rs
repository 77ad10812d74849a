//! The running service's shared state: what the service writes and the API reads.
//!
//! It sits below both: the service fills the call book and feeds the metrics, the API reads them
//! and asks the service for work through [`Control`]. Neither imports the other for it, so there
//! is no circle between `service` and `api`.

pub mod metrics;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use pjsip_safe::{CallId, Registration};
use tokio::sync::mpsc;

use crate::call::report::CallReport;
use crate::live::LiveBus;
pub use metrics::Metrics;

/// A call in progress, as the API shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ActiveCall {
    pub call: String,
    pub direction: &'static str,
    pub from: String,
    pub to: String,
    pub source: Option<SocketAddr>,
    #[serde(skip)]
    pub since: Instant,
    pub codec: Option<String>,
    pub clock_rate: Option<u32>,
}

/// Active calls, finished calls and the registration state.
#[derive(Debug, Default)]
pub struct CallBook {
    pub active: HashMap<CallId, ActiveCall>,
    pub recent: VecDeque<CallReport>,
    pub registration: Option<Registration>,
    pub total_calls: u64,
    /// Recording files of calls, by call id (`call-7`), once written.
    pub recordings: HashMap<String, std::path::PathBuf>,
}

/// Requests to the service loop from the API.
#[derive(Debug)]
pub enum Control {
    /// Place a call to a SIP URI bridged to the agent; replies with its id.
    PlaceCall {
        uri: String,
        reply: tokio::sync::oneshot::Sender<pjsip_safe::Result<CallId>>,
    },
}

/// The running service's shared state: what the API reads and the handles it acts through.
#[derive(Debug, Clone, Default)]
pub struct Shared {
    pub book: Arc<Mutex<CallBook>>,
    pub live: LiveBus,
    /// Set once the engine runs.
    pub engine: Arc<std::sync::OnceLock<pjsip_safe::EngineHandle>>,
    /// Set once the service loop runs.
    pub control: Arc<std::sync::OnceLock<mpsc::UnboundedSender<Control>>>,
    /// Engine facts (version, transports, codecs, mode) once started.
    pub engine_info: Arc<std::sync::OnceLock<pjsip_safe::EngineInfo>>,
    /// The Realtime endpoint answered its last connection attempt.
    pub backend_ok: Arc<std::sync::atomic::AtomicBool>,
    pub started: Arc<std::sync::OnceLock<Instant>>,
    /// Prometheus metrics (`GET /metrics`).
    pub metrics: Metrics,
}
