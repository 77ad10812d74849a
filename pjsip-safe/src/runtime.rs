//! The pjlib thread: it creates pjsua, runs its event loop, executes commands from other threads
//! and destroys pjsua. It is the only thread of ours that calls pjlib.
//!
//! One loop iteration: run pending commands, handle the records the callbacks left (see
//! `callbacks.rs`), answer calls whose ring delay is over, then let pjsua poll its sockets and
//! timers for up to [`POLL`]. A command therefore waits at most one poll interval.

use std::collections::HashMap;
use std::ffi::CString;
use std::mem::MaybeUninit;
use std::net::IpAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use pjsip_sys as sys;

use crate::admission::{refusal_code, Admission, AdmissionConfig, TRUNK_REFRESH};
use crate::callbacks::{self, Record};
use crate::config::{AccountConfig, AnswerMode, ContactRewrite, EngineConfig, Transport};
use crate::engine::{CallStats, CodecInfo, Command, EngineInfo};
use crate::error::{check, check_bind, Error, Result};
use crate::event::{
    CallId, CallMedia, CallState, Direction, Event, MediaInfo, MediaStatus, Registration,
    RejectReason,
};
use crate::log_limit::LogLimiter;
use crate::media::{downlink_channel, tap_channel, uplink_channel, DownlinkRt, TapRt, UplinkRt};
use crate::pjstr::{self, cstring};
use crate::port::PortHandle;

/// How long one `pjsua_handle_events` may block: the upper bound of command latency.
const POLL: Duration = Duration::from_millis(5);
/// How often queue high-water marks are checked (to log one warning, not one per frame).
const HOUSEKEEPING: Duration = Duration::from_millis(500);

struct CallRecord {
    id: CallId,
    direction: Direction,
    /// The RT halves wait here until media is active and the port is created.
    pending_rt: Option<(UplinkRt, DownlinkRt, Option<TapRt>)>,
    /// The application's halves, handed over with the first `MediaActive`.
    pending_api: Option<CallMedia>,
    port: Option<PortHandle>,
    /// The call's stream slot our port is connected to.
    connected_to: Option<sys::pjsua_conf_port_id>,
    answer_at: Option<Instant>,
    warned_high_water: bool,
    /// When we sent 200 to an incoming call; the ACK must follow within `confirm_timeout`.
    answered_at: Option<Instant>,
    /// The INVITE transaction is complete (ACK received or sent).
    confirmed: bool,
    /// RTP packets received at the last check, and when that count last grew.
    rx_packets: u32,
    rx_seen_at: Instant,
}

struct State {
    config: EngineConfig,
    events: flume::Sender<Event>,
    calls: HashMap<sys::pjsua_call_id, CallRecord>,
    next_id: u64,
    accepting: bool,
    trunk_acc: Option<sys::pjsua_acc_id>,
    default_acc: sys::pjsua_acc_id,
    info: EngineInfo,
    last_housekeeping: Instant,
    /// The trunk account holds a registration (so shutdown waits for its removal).
    registered: bool,
    /// Who may start a call (source policy, per-source INVITE rate).
    admission: Admission,
    /// Resolutions of the trunk's host names running off this thread (see `housekeeping`).
    trunk_lookup: Option<crossbeam_channel::Receiver<Vec<IpAddr>>>,
    last_trunk_lookup: Instant,
    /// What the trunk's host names resolved to last.
    trunk_resolved: Vec<IpAddr>,
    /// The address the trunk's registrar last answered from (admitted in trunk mode).
    registrar_address: Option<IpAddr>,
    /// Log lines about refused INVITEs, per reason, under a budget.
    refusal_log: LogLimiter<RejectReason>,
    /// pjsua calls we refused or hung up as unknown, until they are disconnected.
    refused: std::collections::HashSet<sys::pjsua_call_id>,
    /// Calls PJSIP created that the engine never started or accepted (see `unknown_call_state`).
    unknown_calls_hung_up: u64,
}

/// Marks the process-wide engine slot free again when the thread ends, however it ends.
struct RunningGuard;

impl Drop for RunningGuard {
    fn drop(&mut self) {
        if let Ok(mut sink) = callbacks::DTMF_SINK.lock() {
            *sink = None;
        }
        crate::engine::RUNNING.store(false, std::sync::atomic::Ordering::Release);
    }
}

/// Body of the pjlib thread.
pub(crate) fn run(
    config: EngineConfig,
    commands: Receiver<Command>,
    events: flume::Sender<Event>,
    ready: flume::Sender<Result<EngineInfo>>,
) {
    let _guard = RunningGuard;
    callbacks::clear_records();
    // SAFETY: both only store a value in pjlib's logging globals (no pjlib state needed yet).
    // pjsua_create logs before pjsua_init installs our callback; without this, those lines
    // would go to stdout past `tracing`.
    unsafe {
        sys::pj_log_set_log_func(Some(callbacks::on_log));
        sys::pj_log_set_level(config.log_level as i32);
    }
    // SAFETY: pjsua_create registers this thread with pjlib; every later pjsua call of ours is
    // made from this thread.
    if let Err(e) = check(unsafe { sys::pjsua_create() }, "pjsua_create") {
        let _ = ready.send(Err(e));
        return;
    }
    let mut state = match init(config, events.clone()) {
        Ok(state) => state,
        Err(e) => {
            // SAFETY: pjsua was created above on this thread; destroy undoes a partial init.
            unsafe { sys::pjsua_destroy() };
            let _ = ready.send(Err(e));
            return;
        }
    };
    if let Ok(mut sink) = callbacks::DTMF_SINK.lock() {
        *sink = Some(events);
    }
    let _ = ready.send(Ok(state.info.clone()));

    let mut shutdown_reply = None;
    loop {
        loop {
            match commands.try_recv() {
                Ok(Command::Shutdown { reply }) => {
                    shutdown_reply = Some(reply);
                    break;
                }
                Ok(cmd) => state.command(cmd),
                Err(crossbeam_channel::TryRecvError::Empty) => break,
                // Every handle is gone: nobody can use the engine any more.
                Err(crossbeam_channel::TryRecvError::Disconnected) => {
                    shutdown_reply = Some(flume::bounded(1).0);
                    break;
                }
            }
        }
        if shutdown_reply.is_some() {
            break;
        }
        state.handle_records();
        state.answer_due_calls();
        state.housekeeping();
        // SAFETY: on the pjlib thread; the timeout is a plain value.
        unsafe { sys::pjsua_handle_events(POLL.as_millis() as u32) };
        state.handle_records();
    }
    let result = state.shutdown();
    if let Some(reply) = shutdown_reply {
        let _ = reply.send(result);
    }
}

fn pj_bool(b: bool) -> sys::pj_bool_t {
    sys::pj_bool_t::from(b)
}

fn jb(value: Option<u32>) -> i32 {
    value.map_or(-1, |v| v as i32)
}

fn init(config: EngineConfig, events: flume::Sender<Event>) -> Result<State> {
    // Each call takes an RTP and an RTCP port; a range smaller than that refuses calls late.
    let rtp_calls = u32::from(config.rtp_port_range) / 2;
    if rtp_calls < config.max_calls {
        tracing::warn!(
            rtp_port_start = config.rtp_port_start,
            rtp_port_range = config.rtp_port_range,
            max_calls = config.max_calls,
            "the RTP port range holds only {rtp_calls} calls (2 ports each), fewer than max_calls; \
             widen RTP_PORT_RANGE to at least {}",
            2 * config.max_calls
        );
    }
    // Strings handed to pjsua_init must live until it returns (it duplicates them).
    let user_agent = cstring("user_agent", &config.user_agent)?;
    let stun: Vec<CString> = config
        .stun_servers
        .iter()
        .map(|s| cstring("stun_servers", s))
        .collect::<Result<_>>()?;
    if stun.len() > 8 {
        return Err(Error::Config {
            key: "stun_servers",
            problem: format!("{} servers given, PJSIP takes at most 8", stun.len()),
        });
    }

    // SAFETY: the *_default functions fill the whole struct; all fields are plain data.
    let mut ua = unsafe {
        let mut c = MaybeUninit::<sys::pjsua_config>::uninit();
        sys::pjsua_config_default(c.as_mut_ptr());
        c.assume_init()
    };
    // Headroom above our own cap: pjsua answers INVITEs beyond its `max_calls` with 486 by
    // itself, before `on_incoming_call`, so the application would never hear of them
    // (no `IncomingRejected`). Our cap is enforced in `State::incoming` / `make_call` instead.
    ua.max_calls =
        (config.max_calls + config.max_calls.div_ceil(4).max(4)).min(sys::PJSUA_MAX_CALLS);
    ua.thread_cnt = 0; // all SIP work and callbacks on this thread
    ua.user_agent = pjstr::borrow(&user_agent);
    ua.nat_type_in_sdp = 0;
    ua.stun_srv_cnt = stun.len() as u32;
    for (slot, server) in ua.stun_srv.iter_mut().zip(&stun) {
        *slot = pjstr::borrow(server);
    }
    ua.stun_ignore_failure = pj_bool(true);
    ua.cb.on_stun_resolution_complete = Some(on_stun_resolved);
    set_stun_resolved(None);
    ua.cb.on_incoming_call = Some(callbacks::on_incoming_call);
    ua.cb.on_call_state = Some(callbacks::on_call_state);
    ua.cb.on_call_media_state = Some(callbacks::on_call_media_state);
    ua.cb.on_reg_state2 = Some(callbacks::on_reg_state2);
    ua.cb.on_dtmf_digit2 = Some(callbacks::on_dtmf_digit2);
    ua.cb.on_call_transfer_status = Some(callbacks::on_call_transfer_status);
    ua.cb.on_call_transfer_request2 = Some(callbacks::on_call_transfer_request2);
    ua.cb.on_call_replace_request2 = Some(callbacks::on_call_replace_request2);

    // SAFETY: as above.
    let mut log = unsafe {
        let mut c = MaybeUninit::<sys::pjsua_logging_config>::uninit();
        sys::pjsua_logging_config_default(c.as_mut_ptr());
        c.assume_init()
    };
    log.level = config.log_level;
    log.console_level = config.log_level;
    log.msg_logging = pj_bool(config.log_level >= 5);
    log.cb = Some(callbacks::on_log);

    // SAFETY: as above.
    let mut med = unsafe {
        let mut c = MaybeUninit::<sys::pjsua_media_config>::uninit();
        sys::pjsua_media_config_default(c.as_mut_ptr());
        c.assume_init()
    };
    med.clock_rate = crate::media::SAMPLE_RATE;
    med.snd_clock_rate = 0;
    med.channel_count = 1;
    med.audio_frame_ptime = crate::media::FRAME_MS;
    med.max_media_ports = (2 * config.max_calls + 8).min(sys::PJSUA_MAX_CONF_PORTS);
    med.quality = config.resample_quality;
    med.no_vad = pj_bool(true); // continuous RTP: NAT bindings and carrier timeouts
    med.ec_tail_len = 0;
    med.snd_auto_close_time = -1; // keep the null clock (our bridge's heartbeat) running
    med.jb_init = jb(config.jitter.init_ms);
    med.jb_min_pre = jb(config.jitter.min_prefetch_ms);
    med.jb_max_pre = jb(config.jitter.max_prefetch_ms);
    med.jb_max = jb(config.jitter.max_ms);

    // SAFETY: the configs are fully initialised; pjsua copies what it keeps.
    check(unsafe { sys::pjsua_init(&ua, &log, &med) }, "pjsua_init")?;
    // Before any transport exists: no request reaches pjsua unfiltered.
    crate::edge::install(config.inbound_auth.as_ref())?;
    // SAFETY: after pjsua_init, on this thread.
    check(
        unsafe { sys::pjsua_set_null_snd_dev() },
        "pjsua_set_null_snd_dev",
    )?;
    configure_codecs(&config)?;

    // Blocks while pjsua waits for the STUN servers (about 8 s for each that does not answer).
    let (transports, sip_addresses, udp_published) = create_transports(&config)?;
    // One local account per transport: pjsua binds a local account's dialogs to its transport,
    // so a call that arrives over TLS needs the TLS transport's account (its Contact, ACK and
    // BYE go over TLS). The first is the default for outgoing calls in IP mode.
    let mut local_accounts = Vec::new();
    for &transport in &transports {
        local_accounts.push(add_local_account(&config, transport)?);
    }
    let default_acc = local_accounts[0];
    let trunk_acc = match &config.account {
        Some(_) => Some(add_trunk_account(&config)?),
        None => None,
    };
    // SAFETY: after init and transport creation, on this thread.
    check(unsafe { sys::pjsua_start() }, "pjsua_start")?;

    let mut admission = Admission::new(
        AdmissionConfig {
            allowed_sources: config.allowed_sources.clone(),
            trunk_sources_only: config.trunk_sources_only,
            invite_rate: config.invite_rate,
        },
        trunk_acc.is_some(),
    );
    let trunk_resolved = config
        .account
        .as_ref()
        .map(resolve_trunk)
        .unwrap_or_default();
    admission.set_trunk_addresses(trunk_resolved.clone());
    if let Some(account) = &config.account {
        if config.trunk_sources_only && admission.trunk_addresses().is_empty() {
            tracing::warn!(
                server = %account.server,
                "the trunk's host name did not resolve: until it does (or its registrar answers), \
                 only SIP_ALLOWED_SOURCES may call in"
            );
        }
    }

    let codecs = list_codecs();
    let info = EngineInfo {
        pjsip_version: pjsip_version(),
        sip_addresses,
        codecs,
        trunk_mode: trunk_acc.is_some(),
        stun_server: stun_server(&config),
        stun_mapped: stun_mapped(&config, udp_published.as_deref()),
        udp_published,
    };
    Ok(State {
        config,
        events,
        calls: HashMap::new(),
        next_id: 1,
        accepting: true,
        trunk_acc,
        default_acc: trunk_acc.unwrap_or(default_acc),
        info,
        last_housekeeping: Instant::now(),
        registered: false,
        refused: Default::default(),
        unknown_calls_hung_up: 0,
        admission,
        trunk_lookup: None,
        trunk_resolved,
        last_trunk_lookup: Instant::now(),
        registrar_address: None,
        refusal_log: LogLimiter::new(5, Duration::from_secs(60)),
    })
}

pub(crate) fn pjsip_version() -> String {
    // SAFETY: returns a pointer to a static NUL-terminated string.
    unsafe { std::ffi::CStr::from_ptr(sys::voiceagent_pj_version()) }
        .to_string_lossy()
        .into_owned()
}

fn configure_codecs(config: &EngineConfig) -> Result<()> {
    let available = list_codecs();
    let all = CString::default();
    // SAFETY: on the pjlib thread after init; "" matches every codec (disable all first).
    check(
        unsafe { sys::pjsua_codec_set_priority(&pjstr::borrow(&all), 0) },
        "pjsua_codec_set_priority",
    )?;
    for (rank, name) in config.codecs.iter().enumerate() {
        if !available
            .iter()
            .any(|c| c.id.to_lowercase().starts_with(&name.to_lowercase()))
        {
            return Err(Error::Config {
                key: "codecs",
                problem: format!(
                    "`{name}` is not offered by this PJSIP build (available: {})",
                    available
                        .iter()
                        .map(|c| c.id.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
        }
        let id = cstring("codecs", name)?;
        let priority = (sys::PJMEDIA_CODEC_PRIO_HIGHEST as usize)
            .saturating_sub(rank)
            .max(1) as u8;
        // SAFETY: as above; the id is only read during the call.
        check(
            unsafe { sys::pjsua_codec_set_priority(&pjstr::borrow(&id), priority) },
            "pjsua_codec_set_priority",
        )?;
    }
    configure_opus(config)
}

fn configure_opus(config: &EngineConfig) -> Result<()> {
    let id = c"opus/48000/2";
    let mut param = sys::pjmedia_codec_param::default();
    // SAFETY: on the pjlib thread after init; `param` is writable.
    let status = unsafe { sys::pjsua_codec_get_param(&pjstr::borrow(id), &mut param) };
    if status != sys::PJ_SUCCESS as sys::pj_status_t {
        return Ok(()); // no Opus in this build: nothing to configure
    }
    let mut opus = sys::pjmedia_codec_opus_config::default();
    // SAFETY: as above.
    check(
        unsafe { sys::pjmedia_codec_opus_get_config(&mut opus) },
        "pjmedia_codec_opus_get_config",
    )?;
    opus.sample_rate = 48000;
    opus.channel_cnt = 1;
    opus.bit_rate = config.opus.bitrate.unwrap_or(0);
    opus.complexity = config.opus.complexity;
    opus.cbr = pj_bool(config.opus.cbr);
    opus.packet_loss = config.opus.packet_loss_percent;
    param.setting.set_plc(u32::from(config.opus.fec));
    param.setting.set_vad(0);
    // SAFETY: as above; both structs are initialised.
    check(
        unsafe { sys::pjmedia_codec_opus_set_default_param(&opus, &mut param) },
        "pjmedia_codec_opus_set_default_param",
    )
}

fn list_codecs() -> Vec<CodecInfo> {
    let mut infos: Vec<sys::pjsua_codec_info> = (0..64).map(|_| Default::default()).collect();
    let mut count = infos.len() as u32;
    // SAFETY: `infos` has room for `count` entries.
    let status = unsafe { sys::pjsua_enum_codecs(infos.as_mut_ptr(), &mut count) };
    if status != sys::PJ_SUCCESS as sys::pj_status_t {
        return Vec::new();
    }
    infos[..count as usize]
        .iter()
        .map(|c| CodecInfo {
            id: pjstr::to_string(&c.codec_id),
            priority: c.priority,
        })
        .collect()
}

fn transport_config(
    config: &EngineConfig,
    public: &Option<CString>,
    bound: &Option<CString>,
) -> sys::pjsua_transport_config {
    let mut t = sys::pjsua_transport_config::default();
    // SAFETY: fills the struct.
    unsafe { sys::pjsua_transport_config_default(&mut t) };
    t.port = u32::from(config.sip_port);
    if let Some(p) = public {
        t.public_addr = pjstr::borrow(p);
    }
    if let Some(b) = bound {
        t.bound_addr = pjstr::borrow(b);
    }
    t
}

/// The advertised public address and the bind address, as PJSIP wants them (C strings that
/// must outlive the call that takes them).
fn nat_addresses(config: &EngineConfig) -> Result<(Option<CString>, Option<CString>)> {
    let public = config
        .public_address
        .as_deref()
        .map(|p| cstring("public_address", p))
        .transpose()?;
    let bound = if config.bind.is_unspecified() {
        None
    } else {
        Some(cstring("bind", &config.bind.to_string())?)
    };
    Ok((public, bound))
}

/// The transports' ids, their descriptions (`UDP host:port`) and the UDP transport's published
/// address (`host:port`).
type Transports = (Vec<sys::pjsua_transport_id>, Vec<String>, Option<String>);

fn create_transports(config: &EngineConfig) -> Result<Transports> {
    let (public, bound) = nat_addresses(config)?;
    let mut ids = Vec::new();
    let mut addresses = Vec::new();
    let mut udp_published = None;
    let tls_files = TlsFiles::new(&config.tls)?;
    for transport in &config.transports {
        let (kind, name) = match transport {
            Transport::Udp => (sys::PJSIP_TRANSPORT_UDP, "SIP UDP"),
            Transport::Tcp => (sys::PJSIP_TRANSPORT_TCP, "SIP TCP"),
            Transport::Tls => (sys::PJSIP_TRANSPORT_TLS, "SIP TLS"),
        };
        let mut cfg = transport_config(config, &public, &bound);
        if *transport == Transport::Tls {
            cfg.port = u32::from(tls_port(config));
            tls_files.apply(&mut cfg.tls_setting);
        }
        let port = cfg.port as u16;
        let mut id = 0;
        // SAFETY: on the pjlib thread; `cfg` and its strings are valid for the call (copied).
        let status = unsafe { sys::pjsua_transport_create(kind, &cfg, &mut id) };
        check_bind(status, "pjsua_transport_create", name, port)?;
        let mut info = sys::pjsua_transport_info::default();
        // SAFETY: `id` is a transport we just created.
        if unsafe { sys::pjsua_transport_get_info(id, &mut info) } == sys::PJ_SUCCESS as i32 {
            // local_name is the published address (public, STUN-mapped or local).
            let published = format!(
                "{}:{}",
                pjstr::to_string(&info.local_name.host),
                info.local_name.port
            );
            addresses.push(format!("{} {published}", pjstr::to_string(&info.type_name)));
            if matches!(transport, Transport::Udp) {
                udp_published = Some(published);
            }
        }
        ids.push(id);
    }
    Ok((ids, addresses, udp_published))
}

/// The TLS listener's port.
pub(crate) fn tls_port(config: &EngineConfig) -> u16 {
    match config.tls.port {
        0 => config.sip_port.saturating_add(1),
        p => p,
    }
}

/// The TLS transport's file names as C strings that outlive `pjsua_transport_create`.
struct TlsFiles {
    ca: CString,
    cert: Option<CString>,
    key: Option<CString>,
}

impl TlsFiles {
    fn new(tls: &crate::TlsConfig) -> Result<Self> {
        let path = |key, p: &std::path::Path| cstring(key, &p.to_string_lossy());
        Ok(Self {
            ca: match &tls.ca_file {
                Some(p) => path("tls.ca_file", p)?,
                None => cstring("tls.ca_file", crate::SYSTEM_CA_FILE)?,
            },
            cert: tls
                .cert_file
                .as_deref()
                .map(|p| path("tls.cert_file", p))
                .transpose()?,
            key: tls
                .key_file
                .as_deref()
                .map(|p| path("tls.key_file", p))
                .transpose()?,
        })
    }

    /// Verify servers against the CA file (PJSIP checks the chain and that the certificate
    /// names the host we connected to, which it also sends as SNI), TLS 1.2 or newer only.
    fn apply(&self, t: &mut sys::pjsip_tls_setting) {
        t.ca_list_file = pjstr::borrow(&self.ca);
        if let (Some(cert), Some(key)) = (&self.cert, &self.key) {
            t.cert_file = pjstr::borrow(cert);
            t.privkey_file = pjstr::borrow(key);
        }
        t.verify_server = pj_bool(true);
        t.verify_client = pj_bool(false);
        t.proto = sys::PJ_SSL_SOCK_PROTO_TLS1_2 | sys::PJ_SSL_SOCK_PROTO_TLS1_3;
    }
}

/// PJSIP's verdict on the STUN servers, `(status, index of the server that answered)`, set by
/// [`on_stun_resolved`]. pjsua runs that callback on the pjlib thread (inside `pjsua_init` or the
/// wait in `pjsua_transport_create`); a process-wide slot rather than a thread-local keeps the
/// verdict even if an ioqueue worker thread ever delivered it. One engine per process.
static STUN_RESOLVED: std::sync::Mutex<Option<(sys::pj_status_t, u32)>> =
    std::sync::Mutex::new(None);

fn set_stun_resolved(verdict: Option<(sys::pj_status_t, u32)>) {
    *STUN_RESOLVED.lock().unwrap_or_else(|e| e.into_inner()) = verdict;
}

/// pjsua's `on_stun_resolution_complete`: remembers whether a STUN server answered.
unsafe extern "C" fn on_stun_resolved(result: *const sys::pj_stun_resolve_result) {
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: pjsua passes a result valid for the duration of the call (null is checked).
        if let Some(r) = unsafe { result.as_ref() } {
            set_stun_resolved(Some((r.status, r.index)));
        }
    }));
}

/// The configured STUN server that answered PJSIP, if one did.
fn stun_server(config: &EngineConfig) -> Option<String> {
    let verdict = *STUN_RESOLVED.lock().unwrap_or_else(|e| e.into_inner());
    match verdict {
        Some((status, index)) if status == sys::PJ_SUCCESS as sys::pj_status_t => {
            config.stun_servers.get(index as usize).cloned()
        }
        _ => None,
    }
}

/// The UDP transport's published address when STUN mapped it (see
/// [`EngineInfo::stun_mapped`] for how that is decided).
fn stun_mapped(config: &EngineConfig, udp_published: Option<&str>) -> Option<String> {
    if config.public_address.is_some() {
        return None; // pjsua publishes the configured address and skips STUN
    }
    stun_server(config).and(udp_published.map(str::to_owned))
}

/// The Contact to advertise behind 1:1 NAT, `<sip:[user@]PUBLIC:PORT>`. PJSIP 2.12 builds a
/// UDP account's Contact from the local interface that routes to the peer and ignores the
/// transport's published address (`local_if` in `pjsua_acc_create_uas_contact`), so the peer's
/// ACK and BYE would go to the private address. `None` without a public address.
fn public_contact(config: &EngineConfig, user: Option<&str>) -> Result<Option<CString>> {
    let Some(public) = config.public_address.as_deref() else {
        return Ok(None);
    };
    let user = user.map(|u| format!("{u}@")).unwrap_or_default();
    let transport = match config.transports.first() {
        Some(Transport::Tcp) => ";transport=tcp",
        _ => "",
    };
    cstring(
        "public_address",
        &format!("<sip:{user}{public}:{}{transport}>", config.sip_port),
    )
    .map(Some)
}

/// Media and NAT settings shared by the local (IP mode) and the trunk account.
fn apply_account_media(
    config: &EngineConfig,
    acc: &mut sys::pjsua_acc_config,
    public: &Option<CString>,
    bound: &Option<CString>,
) {
    acc.rtp_cfg.port = u32::from(config.rtp_port_start);
    acc.rtp_cfg.port_range = u32::from(config.rtp_port_range);
    if let Some(p) = public {
        acc.rtp_cfg.public_addr = pjstr::borrow(p);
    }
    if let Some(b) = bound {
        acc.rtp_cfg.bound_addr = pjstr::borrow(b);
    }
    acc.use_stream_ka = pj_bool(true);
    acc.ipv6_media_use = sys::PJSUA_IPV6_DISABLED;
    acc.use_srtp = match config.srtp {
        crate::SrtpMode::Off => sys::PJMEDIA_SRTP_DISABLED,
        crate::SrtpMode::Optional => sys::PJMEDIA_SRTP_OPTIONAL,
        crate::SrtpMode::Mandatory => sys::PJMEDIA_SRTP_MANDATORY,
    };
    // SDES keys travel in the SDP: only TLS keeps them secret, but whether SIP runs over TLS is
    // the operator's choice (SIP_TRANSPORT); refusing SRTP over UDP would only leave RTP plain.
    acc.srtp_secure_signaling = 0;
    acc.lock_codec = 1;
}

fn add_local_account(
    config: &EngineConfig,
    transport: sys::pjsua_transport_id,
) -> Result<sys::pjsua_acc_id> {
    let mut acc_id = 0;
    // SAFETY: on the pjlib thread; the transport exists.
    check(
        unsafe { sys::pjsua_acc_add_local(transport, pj_bool(true), &mut acc_id) },
        "pjsua_acc_add_local",
    )?;
    // SAFETY: a temporary pool for reading the account config; released below.
    let pool = unsafe { sys::pjsua_pool_create(c"va-acc".as_ptr(), 1024, 1024) };
    if pool.is_null() {
        return Err(Error::Internal("pjsua_pool_create returned null".into()));
    }
    let result = (|| {
        let mut acc = sys::pjsua_acc_config::default();
        // SAFETY: `acc_id` is valid; pjsua copies the config's strings into `pool`.
        check(
            unsafe { sys::pjsua_acc_get_config(acc_id, pool, &mut acc) },
            "pjsua_acc_get_config",
        )?;
        let (public, bound) = nat_addresses(config)?;
        apply_account_media(config, &mut acc, &public, &bound);
        let contact = public_contact(config, None)?;
        if let Some(c) = &contact {
            acc.force_contact = pjstr::borrow(c);
        }
        // SAFETY: `acc` is fully initialised; pjsua duplicates what it keeps.
        check(
            unsafe { sys::pjsua_acc_modify(acc_id, &acc) },
            "pjsua_acc_modify",
        )
    })();
    // SAFETY: the pool was created above and nothing refers to it after pjsua_acc_modify.
    unsafe { sys::pj_pool_release(pool) };
    result.map(|()| acc_id)
}

fn add_trunk_account(config: &EngineConfig) -> Result<sys::pjsua_acc_id> {
    let Some(account) = &config.account else {
        return Err(Error::Internal("no account configured".into()));
    };
    let host = account
        .server
        .trim_start_matches("sip:")
        .trim_start_matches("sips:");
    let domain = account
        .domain
        .clone()
        .unwrap_or_else(|| host.split(':').next().unwrap_or(host).to_string());
    let id = cstring("account", &format!("sip:{}@{}", account.username, domain))?;
    // With TLS among the transports, the trunk is reached over TLS (sipgate and most EU
    // carriers offer it on 5061; the server's certificate must name `host`).
    let reg_uri = if config.transports.contains(&Transport::Tls) {
        format!("sip:{host};transport=tls")
    } else {
        format!("sip:{host}")
    };
    let reg_uri = cstring("account.server", &reg_uri)?;
    let realm = c"*";
    let scheme = c"digest";
    let username = cstring("account.username", &account.username)?;
    let password = cstring("account.password", account.password.expose())?;
    // Over TLS every request of the account (calls too, not only REGISTER) goes to the trunk
    // through its TLS transport: an explicit proxy, or the registrar itself as one.
    let proxy = match (&account.proxy, config.transports.contains(&Transport::Tls)) {
        (Some(p), _) => Some(p.clone()),
        (None, true) => Some(format!("sip:{host};transport=tls;lr")),
        (None, false) => None,
    };
    let proxy = proxy
        .as_deref()
        .map(|p| cstring("account.proxy", p))
        .transpose()?;
    let (public, bound) = nat_addresses(config)?;
    let contact = public_contact(config, Some(&account.username))?;

    let mut acc = sys::pjsua_acc_config::default();
    // SAFETY: after pjsua_init (so timer/100rel defaults are copied from the UA config).
    unsafe { sys::pjsua_acc_config_default(&mut acc) };
    acc.id = pjstr::borrow(&id);
    acc.reg_uri = pjstr::borrow(&reg_uri);
    acc.reg_timeout = account.reg_interval.as_secs() as u32;
    acc.reg_retry_interval = account.retry_interval.as_secs() as u32;
    acc.reg_first_retry_interval = account.retry_interval.as_secs().min(10) as u32;
    acc.unreg_timeout = 2000;
    acc.cred_count = 1;
    acc.cred_info[0].realm = pjstr::borrow(realm);
    acc.cred_info[0].scheme = pjstr::borrow(scheme);
    acc.cred_info[0].username = pjstr::borrow(&username);
    acc.cred_info[0].data_type = sys::PJSIP_CRED_DATA_PLAIN_PASSWD as i32;
    acc.cred_info[0].data = pjstr::borrow(&password);
    if let Some(p) = &proxy {
        acc.proxy_cnt = 1;
        acc.proxy[0] = pjstr::borrow(p);
    }
    let (allow, method) = match config.contact_rewrite {
        ContactRewrite::Off => (false, 0),
        ContactRewrite::NoUnregister => (true, sys::PJSUA_CONTACT_REWRITE_NO_UNREG),
        ContactRewrite::Unregister => (true, sys::PJSUA_CONTACT_REWRITE_UNREGISTER),
        ContactRewrite::Always => (
            true,
            sys::PJSUA_CONTACT_REWRITE_NO_UNREG | sys::PJSUA_CONTACT_REWRITE_ALWAYS_UPDATE,
        ),
    };
    acc.allow_contact_rewrite = pj_bool(allow);
    acc.contact_rewrite_method = method as i32;
    acc.allow_via_rewrite = pj_bool(allow);
    acc.allow_sdp_nat_rewrite = pj_bool(config.sdp_nat_rewrite && config.public_address.is_none());
    acc.ka_interval = config.sip_keepalive.as_secs() as u32;
    apply_account_media(config, &mut acc, &public, &bound);
    if let Some(c) = &contact {
        // A configured public address wins over what REGISTER responses suggest.
        acc.force_contact = pjstr::borrow(c);
    }

    let mut acc_id = 0;
    // SAFETY: `acc` and all strings it points to are valid for the call; pjsua duplicates them.
    check(
        unsafe { sys::pjsua_acc_add(&acc, pj_bool(true), &mut acc_id) },
        "pjsua_acc_add",
    )?;
    Ok(acc_id)
}

fn call_setting() -> sys::pjsua_call_setting {
    let mut opt = sys::pjsua_call_setting::default();
    // SAFETY: fills the struct.
    unsafe { sys::pjsua_call_setting_default(&mut opt) };
    // SAFETY: `opt` is initialised; the shim sets the counts, including 2.16+'s text stream.
    unsafe { sys::voiceagent_call_setting_audio_only(&mut opt) };
    opt
}

/// RTP packets received on the call's audio stream so far.
fn rx_packets(idx: sys::pjsua_call_id) -> Option<u32> {
    let mut info = Box::<sys::pjsua_call_info>::default();
    // SAFETY: on the pjlib thread; `info` is writable.
    let ok = unsafe { sys::pjsua_call_get_info(idx, &mut *info) } == sys::PJ_SUCCESS as i32;
    let med = audio_media_index(&info).filter(|_| ok)?;
    let mut stat = Box::<sys::pjsua_stream_stat>::default();
    // SAFETY: as above.
    let ok = unsafe { sys::pjsua_call_get_stream_stat(idx, med, &mut *stat) };
    (ok == sys::PJ_SUCCESS as i32).then_some(stat.rtcp.rx.pkt)
}

/// Resolves the trunk's registrar and proxy host names (blocking DNS: at start-up, or on the
/// `trunk-dns` thread). Failures give fewer (or no) addresses.
fn resolve_trunk(account: &AccountConfig) -> Vec<IpAddr> {
    use std::net::ToSocketAddrs;
    let mut out = Vec::new();
    for uri in std::iter::once(account.server.as_str()).chain(account.proxy.as_deref()) {
        let Some((host, port)) = crate::sip_uri::host_port(uri) else {
            continue;
        };
        match (host.as_str(), port).to_socket_addrs() {
            Ok(addrs) => out.extend(addrs.map(|a| a.ip())),
            Err(e) => tracing::warn!(%host, "cannot resolve the trunk's host: {e}"),
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Ends a call: `code` is the final response of an unanswered incoming call (0: pjsua picks).
fn hangup(idx: sys::pjsua_call_id, code: u16) {
    // SAFETY: on the pjlib thread; hanging up an id that is already gone just fails.
    unsafe { sys::pjsua_call_hangup(idx, code.into(), ptr::null(), ptr::null()) };
}

fn map_state(state: sys::pjsip_inv_state) -> CallState {
    match state {
        sys::PJSIP_INV_STATE_CALLING => CallState::Calling,
        sys::PJSIP_INV_STATE_INCOMING => CallState::Incoming,
        sys::PJSIP_INV_STATE_EARLY => CallState::Early,
        sys::PJSIP_INV_STATE_CONNECTING => CallState::Connecting,
        sys::PJSIP_INV_STATE_CONFIRMED => CallState::Confirmed,
        _ => CallState::Disconnected,
    }
}

fn audio_media_index(info: &sys::pjsua_call_info) -> Option<u32> {
    info.media[..(info.media_cnt as usize).min(info.media.len())]
        .iter()
        .position(|m| m.type_ == sys::PJMEDIA_TYPE_AUDIO)
        .map(|i| i as u32)
}

impl State {
    fn emit(&self, event: Event) {
        let _ = self.events.send(event);
    }

    fn pj_index(&self, call: CallId) -> Result<sys::pjsua_call_id> {
        self.calls
            .iter()
            .find(|(_, r)| r.id == call)
            .map(|(&idx, _)| idx)
            .ok_or(Error::NoSuchCall(call))
    }

    fn new_record(&mut self, idx: sys::pjsua_call_id, direction: Direction) -> CallId {
        let id = CallId(self.next_id);
        self.next_id += 1;
        let frames = std::num::NonZeroUsize::new(self.config.queue_frames)
            .unwrap_or(std::num::NonZeroUsize::MIN);
        let (up_rt, up_api) = uplink_channel(frames);
        let (down_rt, down_api) = downlink_channel(frames);
        let (tap_rt, tap) = match self.config.record_calls {
            true => {
                let (rt, tap) = tap_channel();
                (Some(rt), Some(tap))
            }
            false => (None, None),
        };
        callbacks::set_call_id(idx, Some(id));
        self.calls.insert(
            idx,
            CallRecord {
                id,
                direction,
                pending_rt: Some((up_rt, down_rt, tap_rt)),
                pending_api: Some(CallMedia {
                    uplink: up_api,
                    downlink: down_api,
                    recording: tap,
                }),
                port: None,
                connected_to: None,
                answer_at: None,
                warned_high_water: false,
                answered_at: None,
                confirmed: false,
                rx_packets: 0,
                rx_seen_at: Instant::now(),
            },
        );
        id
    }

    fn command(&mut self, cmd: Command) {
        match cmd {
            Command::Answer { call, reply } => {
                let _ = reply.send(self.answer(call));
            }
            Command::Hangup { call, code, reply } => {
                let result = self.pj_index(call).and_then(|idx| {
                    // SAFETY: on the pjlib thread; `idx` is a live call of ours.
                    check(
                        unsafe {
                            sys::pjsua_call_hangup(idx, code.into(), ptr::null(), ptr::null())
                        },
                        "pjsua_call_hangup",
                    )
                });
                let _ = reply.send(result);
            }
            Command::MakeCall { uri, reply } => {
                let _ = reply.send(self.make_call(&uri));
            }
            Command::Transfer {
                call,
                target,
                reply,
            } => {
                let result = self.pj_index(call).and_then(|idx| {
                    let target = cstring("transfer target", &target)?;
                    // SAFETY: on the pjlib thread; the target is valid during the call (copied).
                    check(
                        unsafe { sys::pjsua_call_xfer(idx, &pjstr::borrow(&target), ptr::null()) },
                        "pjsua_call_xfer",
                    )
                });
                let _ = reply.send(result);
            }
            Command::Stats { call, reply } => {
                let _ = reply.send(self.pj_index(call).and_then(|idx| self.stats(idx)));
            }
            Command::Info { reply } => {
                let _ = reply.send(Ok(self.info.clone()));
            }
            Command::Shutdown { .. } => unreachable!("handled by the loop"),
        }
    }

    fn answer(&mut self, call: CallId) -> Result<()> {
        let idx = self.pj_index(call)?;
        if let Some(r) = self.calls.get_mut(&idx) {
            r.answer_at = None;
            r.answered_at.get_or_insert_with(Instant::now);
        }
        let opt = call_setting();
        // SAFETY: on the pjlib thread; `idx` is a live incoming call.
        check(
            unsafe { sys::pjsua_call_answer2(idx, &opt, 200, ptr::null(), ptr::null()) },
            "pjsua_call_answer2",
        )
    }

    fn make_call(&mut self, uri: &str) -> Result<CallId> {
        if !self.accepting {
            return Err(Error::Stopped);
        }
        // Our calls only: INVITEs being refused also hold a pjsua call slot for a moment.
        if self.calls.len() as u32 >= self.config.max_calls {
            return Err(Error::TooManyCalls(self.config.max_calls));
        }
        let c_uri = cstring("uri", uri)?;
        // SAFETY: a NUL-terminated string.
        if unsafe { sys::pjsua_verify_sip_url(c_uri.as_ptr()) } != sys::PJ_SUCCESS as i32 {
            return Err(Error::Config {
                key: "uri",
                problem: format!("`{uri}` is not a valid SIP URI (e.g. sip:100@192.0.2.10:5060)"),
            });
        }
        let opt = call_setting();
        let mut idx = sys::PJSUA_INVALID_ID;
        // SAFETY: on the pjlib thread; the URI is copied by pjsua.
        check(
            unsafe {
                sys::pjsua_call_make_call(
                    self.default_acc,
                    &pjstr::borrow(&c_uri),
                    &opt,
                    ptr::null_mut(),
                    ptr::null(),
                    &mut idx,
                )
            },
            "pjsua_call_make_call",
        )?;
        Ok(self.new_record(idx, Direction::Outgoing))
    }

    fn stats(&self, idx: sys::pjsua_call_id) -> Result<CallStats> {
        let mut info = Box::<sys::pjsua_call_info>::default();
        // SAFETY: on the pjlib thread; `info` is writable.
        check(
            unsafe { sys::pjsua_call_get_info(idx, &mut *info) },
            "pjsua_call_get_info",
        )?;
        let med = audio_media_index(&info).ok_or(Error::InvalidCallState {
            call: self.calls[&idx].id,
            problem: "no audio stream",
        })?;
        let media = media_info(idx, med);
        let mut stat = Box::<sys::pjsua_stream_stat>::default();
        // SAFETY: as above.
        check(
            unsafe { sys::pjsua_call_get_stream_stat(idx, med, &mut *stat) },
            "pjsua_call_get_stream_stat",
        )?;
        let queues = self.calls[&idx].port.as_ref().map(|p| p.stats());
        Ok(CallStats {
            media,
            rx_packets: stat.rtcp.rx.pkt,
            rx_lost: stat.rtcp.rx.loss,
            rx_jitter_ms: stat.rtcp.rx.jitter.mean as f64 / 1000.0,
            tx_packets: stat.rtcp.tx.pkt,
            rtt_ms: (stat.rtcp.rtt.n > 0).then(|| stat.rtcp.rtt.mean as f64 / 1000.0),
            jitter_buffer_ms: stat.jbuf.avg_delay,
            queues,
            callback_timing: self.calls[&idx].port.as_ref().map(|p| p.timing()),
        })
    }

    fn handle_records(&mut self) {
        while let Some(record) = callbacks::next_record() {
            let call = match &record {
                Record::Incoming { call, .. }
                | Record::State { call, .. }
                | Record::Media { call }
                | Record::Transfer { call, .. } => Some(*call),
                Record::Registration { .. } => None,
            };
            let outcome = catch_unwind(AssertUnwindSafe(|| self.handle(record)));
            if let Err(panic) = outcome {
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".into());
                tracing::error!("panic in the engine while handling a callback: {message}");
                let id = call.and_then(|c| self.calls.get(&c)).map(|r| r.id);
                if let Some(idx) = call {
                    // SAFETY: on the pjlib thread; hanging up an unknown id just fails.
                    unsafe { sys::pjsua_call_hangup(idx, 500, ptr::null(), ptr::null()) };
                }
                self.emit(Event::InternalError { call: id, message });
            }
        }
    }

    fn handle(&mut self, record: Record) {
        match record {
            Record::Incoming {
                call,
                from,
                to,
                source,
                caller_from,
                caller_asserted,
            } => {
                let from_trunk = source.is_some_and(|s| self.admission.is_trunk(s.ip()));
                let caller = match caller_asserted {
                    Some(asserted) if from_trunk => asserted,
                    _ => caller_from,
                };
                self.incoming(call, from, to, source, caller)
            }
            Record::State {
                call,
                state,
                code,
                reason,
            } => self.call_state(call, state, code, reason),
            Record::Media { call } => self.media_state(call),
            Record::Registration {
                code,
                reason,
                expires,
                unregistering,
                source,
            } => {
                if let Some(ip) = source.filter(|_| (200..300).contains(&code)) {
                    if self.registrar_address != Some(ip) {
                        self.registrar_address = Some(ip);
                        self.refresh_trunk_addresses(Vec::new());
                    }
                }
                let reg = if (200..300).contains(&code) {
                    if unregistering || expires == 0 {
                        Registration::Unregistered
                    } else {
                        Registration::Registered { expires }
                    }
                } else {
                    Registration::Failed { code, reason }
                };
                self.registered = matches!(reg, Registration::Registered { .. });
                tracing::info!("registration: {reg:?}");
                self.emit(Event::Registration(reg));
            }
            Record::Transfer {
                call,
                code,
                reason,
                last,
            } => {
                if let Some(r) = self.calls.get(&call) {
                    self.emit(Event::TransferStatus {
                        call: r.id,
                        code,
                        reason,
                        last,
                    });
                }
            }
        }
    }

    fn reject(&mut self, idx: sys::pjsua_call_id, code: u16) {
        self.refused.insert(idx);
        hangup(idx, code);
    }

    fn incoming(
        &mut self,
        idx: sys::pjsua_call_id,
        from: String,
        to: String,
        source: Option<std::net::SocketAddr>,
        caller: String,
    ) {
        // Active calls, not counting this one.
        let active = self.calls.len() as u32;
        let verdict = self.admission.decide(
            source.map(|s| s.ip()),
            active,
            self.config.max_calls,
            self.accepting,
            Instant::now(),
        );
        if let Err(reason) = verdict {
            let code = refusal_code(reason);
            if self.refusal_log.admit(reason, Instant::now()) {
                tracing::info!(%from, ?source, ?reason, "refusing INVITE with {code}");
            }
            self.reject(idx, code);
            self.emit(Event::IncomingRejected {
                from,
                source,
                reason,
                code,
            });
            return;
        }
        let id = self.new_record(idx, Direction::Incoming);
        let opt = call_setting();
        // SAFETY: on the pjlib thread; `idx` is the incoming call.
        unsafe { sys::pjsua_call_answer2(idx, &opt, 180, ptr::null(), ptr::null()) };
        self.emit(Event::IncomingCall {
            call: id,
            from,
            to,
            source,
            caller,
        });
        match self.config.answer {
            AnswerMode::Manual => {}
            AnswerMode::Immediate => {
                if let Err(e) = self.answer(id) {
                    tracing::warn!(call = %id, "answering failed: {e}");
                }
            }
            AnswerMode::AfterRing(delay) => {
                if let Some(r) = self.calls.get_mut(&idx) {
                    r.answer_at = Some(Instant::now() + delay);
                }
            }
        }
    }

    fn answer_due_calls(&mut self) {
        let now = Instant::now();
        let due: Vec<CallId> = self
            .calls
            .values()
            .filter(|r| r.answer_at.is_some_and(|t| t <= now))
            .map(|r| r.id)
            .collect();
        for id in due {
            if let Err(e) = self.answer(id) {
                tracing::warn!(call = %id, "answering after the ring delay failed: {e}");
            }
        }
    }

    fn call_state(
        &mut self,
        idx: sys::pjsua_call_id,
        state: sys::pjsip_inv_state,
        code: u16,
        reason: String,
    ) {
        let Some(record) = self.calls.get(&idx) else {
            self.unknown_call_state(idx, state, code);
            return;
        };
        let id = record.id;
        let state = map_state(state);
        if state == CallState::Confirmed {
            if let Some(r) = self.calls.get_mut(&idx) {
                r.confirmed = true;
                r.rx_seen_at = Instant::now();
            }
        }
        self.emit(Event::CallState {
            call: id,
            state,
            code,
            reason: reason.clone(),
        });
        if state == CallState::Disconnected {
            let mut record = self.calls.remove(&idx).expect("looked up above");
            callbacks::set_call_id(idx, None);
            detach_port(&mut record);
            self.emit(Event::CallEnded {
                call: id,
                direction: record.direction,
                code,
                reason,
            });
        }
    }

    /// Hangs up calls that hold resources for nothing: answered but never confirmed (no ACK:
    /// a flood of INVITEs that never complete), or confirmed with active media but no RTP for
    /// `rtp_timeout` (the peer vanished without a BYE).
    fn expire_calls(&mut self) {
        let now = Instant::now();
        let confirm_timeout = self.config.confirm_timeout;
        let rtp_timeout = self.config.rtp_timeout;
        let mut expired = Vec::new();
        for (&idx, record) in self.calls.iter_mut() {
            if !record.confirmed {
                if record
                    .answered_at
                    .is_some_and(|t| now.duration_since(t) >= confirm_timeout)
                {
                    expired.push((idx, record.id, "no ACK for the answer"));
                }
                continue;
            }
            if rtp_timeout.is_zero() || record.connected_to.is_none() {
                // On hold or without media the peer may rightly send nothing.
                record.rx_seen_at = now;
                continue;
            }
            let packets = rx_packets(idx).unwrap_or(record.rx_packets);
            if packets != record.rx_packets {
                record.rx_packets = packets;
                record.rx_seen_at = now;
            } else if now.duration_since(record.rx_seen_at) >= rtp_timeout {
                expired.push((idx, record.id, "no RTP received"));
            }
        }
        for (idx, id, why) in expired {
            tracing::warn!(call = %id, "hanging up: {why}");
            if let Some(r) = self.calls.get_mut(&idx) {
                // Once: the BYE or 408 takes a moment.
                r.answered_at = None;
                r.confirmed = false;
            }
            hangup(idx, if why.starts_with("no ACK") { 408 } else { 0 });
        }
    }

    /// Starts a resolution of the trunk's host names off this thread when one is due, and
    /// takes the result of the last one.
    fn poll_trunk_lookup(&mut self) {
        let Some(account) = self.config.account.clone() else {
            return;
        };
        if let Some(rx) = &self.trunk_lookup {
            match rx.try_recv() {
                Ok(addresses) => {
                    self.trunk_lookup = None;
                    // A failed lookup keeps the last good addresses.
                    if !addresses.is_empty() {
                        self.refresh_trunk_addresses(addresses);
                    }
                }
                Err(crossbeam_channel::TryRecvError::Empty) => {}
                Err(crossbeam_channel::TryRecvError::Disconnected) => self.trunk_lookup = None,
            }
            return;
        }
        if self.last_trunk_lookup.elapsed() < TRUNK_REFRESH {
            return;
        }
        self.last_trunk_lookup = Instant::now();
        let (tx, rx) = crossbeam_channel::bounded(1);
        let spawned = std::thread::Builder::new()
            .name("trunk-dns".into())
            .spawn(move || {
                let _ = tx.send(resolve_trunk(&account));
            });
        if spawned.is_ok() {
            self.trunk_lookup = Some(rx);
        }
    }

    /// The trunk's admitted addresses: what its names resolved to (`resolved`, or the last
    /// resolution when empty) plus the address its registrar answered from.
    fn refresh_trunk_addresses(&mut self, resolved: Vec<IpAddr>) {
        if !resolved.is_empty() {
            self.trunk_resolved = resolved;
        }
        let mut all = self.trunk_resolved.clone();
        all.extend(self.registrar_address);
        if all != self.admission.trunk_addresses() {
            tracing::info!(addresses = ?all, "trunk addresses admitted for INVITEs");
        }
        self.admission.set_trunk_addresses(all);
    }

    /// A state change of a call our table does not hold: a call we refused (ignored), one
    /// whose `on_incoming_call` record is still queued (ignored), or a call PJSIP created on its
    /// own, e.g. by following a REFER or a Replaces the edge filter should have stopped. The last
    /// kind could spend the trunk's money unseen, so it is hung up at once and logged as a
    /// security event.
    fn unknown_call_state(
        &mut self,
        idx: sys::pjsua_call_id,
        state: sys::pjsip_inv_state,
        code: u16,
    ) {
        if state == sys::PJSIP_INV_STATE_DISCONNECTED {
            self.refused.remove(&idx);
            return;
        }
        if state == sys::PJSIP_INV_STATE_INCOMING || self.refused.contains(&idx) {
            return;
        }
        self.unknown_calls_hung_up += 1;
        tracing::error!(
            pjsua_call = idx,
            state = ?map_state(state),
            code,
            "security: PJSIP has a call the engine did not start or accept; hanging it up"
        );
        self.refused.insert(idx);
        hangup(idx, 0);
    }

    fn media_state(&mut self, idx: sys::pjsua_call_id) {
        let Some(record) = self.calls.get_mut(&idx) else {
            return;
        };
        let id = record.id;
        let mut info = Box::<sys::pjsua_call_info>::default();
        // SAFETY: on the pjlib thread; `info` is writable.
        if unsafe { sys::pjsua_call_get_info(idx, &mut *info) } != sys::PJ_SUCCESS as i32 {
            return;
        }
        let status = match info.media_status {
            sys::PJSUA_CALL_MEDIA_ACTIVE => MediaStatus::Active,
            sys::PJSUA_CALL_MEDIA_LOCAL_HOLD => MediaStatus::LocalHold,
            sys::PJSUA_CALL_MEDIA_REMOTE_HOLD => MediaStatus::RemoteHold,
            sys::PJSUA_CALL_MEDIA_ERROR => MediaStatus::Error,
            _ => MediaStatus::None,
        };
        let slot = info.conf_slot;
        if status != MediaStatus::Active || slot == sys::PJSUA_INVALID_ID {
            // The old stream (and its slot) is gone or paused; reconnect when it is back.
            record.connected_to = None;
            let _ = self.events.send(Event::MediaChanged { call: id, status });
            return;
        }
        if let Err(e) = attach_port(record, slot) {
            tracing::error!(call = %id, "cannot connect the call's audio: {e}");
            hangup(idx, 500);
            return;
        }
        let media = audio_media_index(&info)
            .map(|m| media_info(idx, m))
            .unwrap_or_else(|| MediaInfo {
                codec: String::new(),
                clock_rate: 0,
                channels: 0,
                remote_rtp: String::new(),
            });
        tracing::info!(call = %id, codec = %media.codec, clock_rate = media.clock_rate, remote = %media.remote_rtp, "media active");
        let handed_over = record.pending_api.take();
        self.emit(Event::MediaActive {
            call: id,
            info: media,
            media: handed_over,
        });
    }

    fn housekeeping(&mut self) {
        if self.last_housekeeping.elapsed() < HOUSEKEEPING {
            return;
        }
        self.last_housekeeping = Instant::now();
        self.expire_calls();
        self.poll_trunk_lookup();
        for (kind, suppressed) in self.refusal_log.summaries(Instant::now()) {
            tracing::info!(reason = ?kind, suppressed, "refused more INVITEs than were logged");
        }
        for record in self.calls.values_mut() {
            let Some(port) = &record.port else { continue };
            let stats = port.stats();
            let high = stats.uplink.high_water_tripped || stats.downlink.high_water_tripped;
            if high && !record.warned_high_water {
                tracing::warn!(
                    call = %record.id,
                    uplink = stats.uplink.depth,
                    downlink = stats.downlink.depth,
                    capacity = stats.uplink.capacity,
                    "a media queue passed 50% of its capacity: the application is not keeping up"
                );
            }
            record.warned_high_water = high;
        }
    }

    fn shutdown(&mut self) -> Result<()> {
        self.accepting = false;
        let deadline = Instant::now() + self.config.shutdown_timeout;
        let unregistering = match self.trunk_acc {
            Some(acc) if self.registered => {
                // SAFETY: on the pjlib thread; `acc` is our account. Unregister first so the
                // registrar stops sending new INVITEs.
                let status = unsafe { sys::pjsua_acc_set_registration(acc, pj_bool(false)) };
                status == sys::PJ_SUCCESS as sys::pj_status_t
            }
            _ => false,
        };
        // SAFETY: on the pjlib thread.
        unsafe { sys::pjsua_call_hangup_all() };
        // Wait for the BYEs' and the unregistration's answers here rather than inside
        // pjsua_destroy, so their events (CallEnded, Registration::Unregistered) still reach
        // the application.
        while (!self.calls.is_empty() || (unregistering && self.registered))
            && Instant::now() < deadline
        {
            // SAFETY: as above.
            unsafe { sys::pjsua_handle_events(10) };
            self.handle_records();
        }
        for (idx, mut record) in self.calls.drain() {
            callbacks::set_call_id(idx, None);
            detach_port(&mut record);
        }
        // SAFETY: on the pjlib thread that created pjsua; nothing of ours refers to pjsua state
        // after this (ports are destroyed, records drained). It unregisters remaining accounts
        // (bounded by unreg_timeout) and shuts pjlib down.
        let status = unsafe { sys::pjsua_destroy() };
        callbacks::clear_records();
        check(status, "pjsua_destroy")
    }
}

fn media_info(idx: sys::pjsua_call_id, med: u32) -> MediaInfo {
    let mut si = Box::<sys::pjsua_stream_info>::default();
    // SAFETY: on the pjlib thread; `si` is writable.
    let ok =
        unsafe { sys::pjsua_call_get_stream_info(idx, med, &mut *si) } == sys::PJ_SUCCESS as i32;
    if !ok || si.type_ != sys::PJMEDIA_TYPE_AUDIO {
        return MediaInfo {
            codec: String::new(),
            clock_rate: 0,
            channels: 0,
            remote_rtp: String::new(),
        };
    }
    // SAFETY: type_ is AUDIO, so the `aud` member of the union is the valid one.
    let aud = unsafe { &si.info.aud };
    let mut addr = [0 as std::ffi::c_char; 64];
    // SAFETY: writes at most addr.len() bytes including the NUL.
    unsafe {
        sys::pj_sockaddr_print(
            &aud.rem_addr as *const _ as *const _,
            addr.as_mut_ptr(),
            addr.len() as i32,
            3,
        )
    };
    MediaInfo {
        codec: pjstr::to_string(&aud.fmt.encoding_name),
        clock_rate: aud.fmt.clock_rate,
        channels: aud.fmt.channel_cnt,
        remote_rtp: pjstr::from_c_array(&addr),
    }
}

/// Creates the call's port on first use and connects it both ways to `slot`.
fn attach_port(record: &mut CallRecord, slot: sys::pjsua_conf_port_id) -> Result<()> {
    if record.port.is_none() {
        let (uplink, downlink, tap) = record
            .pending_rt
            .take()
            .ok_or_else(|| Error::Internal("media queues already used".into()))?;
        // SAFETY: a per-call pool, released with the port in on_destroy.
        let pool = unsafe { sys::pjsua_pool_create(c"va-call".as_ptr(), 1024, 1024) };
        if pool.is_null() {
            return Err(Error::Internal("pjsua_pool_create returned null".into()));
        }
        let mut port = PortHandle::new(uplink, downlink, tap, pool)?;
        let mut port_slot = sys::PJSUA_INVALID_ID;
        // SAFETY: on the pjlib thread; the port and pool live until on_destroy.
        let status =
            unsafe { sys::pjsua_conf_add_port(pool, port.as_pjmedia_port(), &mut port_slot) };
        if let Err(e) = check(status, "pjsua_conf_add_port") {
            port.destroy();
            return Err(e);
        }
        port.slot = Some(port_slot);
        record.port = Some(port);
    }
    let port_slot = record
        .port
        .as_ref()
        .and_then(|p| p.slot)
        .ok_or_else(|| Error::Internal("port without slot".into()))?;
    if record.connected_to == Some(slot) {
        return Ok(());
    }
    // SAFETY: on the pjlib thread; both slots are live (the call's slot was just read from
    // pjsua_call_get_info, ours is added).
    unsafe {
        check(
            sys::pjsua_conf_connect(slot, port_slot),
            "pjsua_conf_connect",
        )?;
        check(
            sys::pjsua_conf_connect(port_slot, slot),
            "pjsua_conf_connect",
        )?;
    }
    record.connected_to = Some(slot);
    Ok(())
}

/// Removes the call's port from the bridge and destroys it (freed in on_destroy).
fn detach_port(record: &mut CallRecord) {
    if let Some(port) = record.port.take() {
        if let Some(slot) = port.slot {
            // SAFETY: on the pjlib thread; our slot is live until removed here.
            unsafe { sys::pjsua_conf_remove_port(slot) };
        }
        port.destroy();
    }
    record.connected_to = None;
}
