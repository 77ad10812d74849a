//! The pjlib thread: it creates pjsua, runs its event loop, executes commands from other threads
//! and destroys pjsua. It is the only thread of ours that calls pjlib.
//!
//! One loop iteration: run pending commands, handle the records the callbacks left (see
//! `callbacks.rs`), answer calls whose ring delay is over, then let pjsua poll its sockets and
//! timers for up to [`POLL`]. A command therefore waits at most one poll interval.

use std::collections::HashMap;
use std::ffi::CString;
use std::net::IpAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use pjsip_sys as sys;

use crate::callbacks::{self, Record};
use crate::config::{AnswerMode, ContactRewrite, EngineConfig, Transport};
use crate::engine::{CallStats, CodecInfo, Command, EngineInfo};
use crate::error::{check, Error, Result};
use crate::event::{
    CallId, CallMedia, CallState, Direction, Event, MediaInfo, MediaStatus, Registration,
    RejectReason,
};
use crate::media::{downlink_channel, tap_channel, uplink_channel, DownlinkRt, TapRt, UplinkRt};
use crate::pjstr::{self, cstring};
use crate::pjsua::{self, Pjsua};
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
}

struct State {
    pj: Pjsua,
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
    // pjsua_create logs before pjsua_init installs our callback; without this, those lines
    // would go to stdout past `tracing`.
    pjsua::set_log_func(callbacks::on_log, config.log_level as i32);
    let pj = match Pjsua::create() {
        Ok(pj) => pj,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let mut state = match init(pj, config, events.clone()) {
        Ok(state) => state,
        Err(e) => {
            // Undoes a partial init; the start-up error is the one worth reporting.
            let _ = pj.destroy();
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
        state.pj.handle_events(POLL.as_millis() as u32);
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

fn init(pj: Pjsua, config: EngineConfig, events: flume::Sender<Event>) -> Result<State> {
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

    let mut ua = pj.default_config();
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

    let mut log = pj.default_logging_config();
    log.level = config.log_level;
    log.console_level = config.log_level;
    log.msg_logging = pj_bool(config.log_level >= 5);
    log.cb = Some(callbacks::on_log);

    let mut med = pj.default_media_config();
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

    pj.init(&ua, &log, &med)?;
    // Before any transport exists: no request reaches pjsua unfiltered.
    crate::edge::install(pj)?;
    pj.set_null_snd_dev()?;
    configure_codecs(pj, &config)?;

    // Blocks while pjsua waits for the STUN servers (about 8 s for each that does not answer).
    let (transports, sip_addresses, udp_published) = create_transports(pj, &config)?;
    let default_acc = add_local_account(pj, &config, transports[0])?;
    let trunk_acc = match &config.account {
        Some(_) => Some(add_trunk_account(pj, &config)?),
        None => None,
    };
    pj.start()?;

    let codecs = list_codecs(pj);
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
        pj,
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
    })
}

pub(crate) use pjsua::pjsip_version;

fn configure_codecs(pj: Pjsua, config: &EngineConfig) -> Result<()> {
    let available = list_codecs(pj);
    // "" matches every codec: disable all first.
    pj.codec_set_priority(c"", 0)?;
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
        pj.codec_set_priority(&id, priority)?;
    }
    configure_opus(pj, config)
}

fn configure_opus(pj: Pjsua, config: &EngineConfig) -> Result<()> {
    let Ok(mut param) = pj.codec_get_param(c"opus/48000/2") else {
        return Ok(()); // no Opus in this build: nothing to configure
    };
    let mut opus = pj.opus_get_config()?;
    opus.sample_rate = 48000;
    opus.channel_cnt = 1;
    opus.bit_rate = config.opus.bitrate.unwrap_or(0);
    opus.complexity = config.opus.complexity;
    opus.cbr = pj_bool(config.opus.cbr);
    opus.packet_loss = config.opus.packet_loss_percent;
    param.setting.set_plc(u32::from(config.opus.fec));
    param.setting.set_vad(0);
    pj.opus_set_default_param(&opus, &mut param)
}

/// The codec manager's codecs; none when PJSIP cannot list them.
fn list_codecs(pj: Pjsua) -> Vec<CodecInfo> {
    let infos = pj.enum_codecs().unwrap_or_default();
    infos
        .iter()
        .map(|c| CodecInfo {
            id: pjstr::to_string(&c.codec_id),
            priority: c.priority,
        })
        .collect()
}

fn transport_config(
    pj: Pjsua,
    config: &EngineConfig,
    public: &Option<CString>,
    bound: &Option<CString>,
) -> sys::pjsua_transport_config {
    let mut t = pj.transport_config_default();
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

fn create_transports(pj: Pjsua, config: &EngineConfig) -> Result<Transports> {
    let (public, bound) = nat_addresses(config)?;
    let mut ids = Vec::new();
    let mut addresses = Vec::new();
    let mut udp_published = None;
    for transport in &config.transports {
        let (kind, name) = match transport {
            Transport::Udp => (sys::PJSIP_TRANSPORT_UDP, "SIP UDP"),
            Transport::Tcp => (sys::PJSIP_TRANSPORT_TCP, "SIP TCP"),
        };
        let cfg = transport_config(pj, config, &public, &bound);
        let id = pj.transport_create(kind, &cfg, name, config.sip_port)?;
        if let Ok(info) = pj.transport_get_info(id) {
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
        Some((status, index)) if check(status, "STUN resolution").is_ok() => {
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
    acc.lock_codec = 1;
}

fn add_local_account(
    pj: Pjsua,
    config: &EngineConfig,
    transport: sys::pjsua_transport_id,
) -> Result<sys::pjsua_acc_id> {
    let acc_id = pj.acc_add_local(transport)?;
    // Holds the config's strings while we modify it; released when this function returns.
    let pool = pj.pool_create(c"va-acc")?;
    let mut acc = pj.acc_get_config(acc_id, &pool)?;
    let (public, bound) = nat_addresses(config)?;
    apply_account_media(config, &mut acc, &public, &bound);
    let contact = public_contact(config, None)?;
    if let Some(c) = &contact {
        acc.force_contact = pjstr::borrow(c);
    }
    pj.acc_modify(acc_id, &acc)?;
    Ok(acc_id)
}

fn add_trunk_account(pj: Pjsua, config: &EngineConfig) -> Result<sys::pjsua_acc_id> {
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
    let reg_uri = cstring("account.server", &format!("sip:{host}"))?;
    let realm = c"*";
    let scheme = c"digest";
    let username = cstring("account.username", &account.username)?;
    let password = cstring("account.password", account.password.expose())?;
    let proxy = account
        .proxy
        .as_deref()
        .map(|p| cstring("account.proxy", p))
        .transpose()?;
    let (public, bound) = nat_addresses(config)?;
    let contact = public_contact(config, Some(&account.username))?;

    let mut acc = pj.acc_config_default();
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

    pj.acc_add(&acc)
}

/// Ends a call we are giving up on: `code` is the final response of an unanswered incoming
/// call (0: pjsua picks). A call that is already gone is no error here, so it is only logged.
fn hangup(pj: Pjsua, idx: sys::pjsua_call_id, code: u16) {
    if let Err(e) = pj.call_hangup(idx, code) {
        tracing::debug!(pjsua_call = idx, "hang-up: {e}");
    }
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
                let result = self
                    .pj_index(call)
                    .and_then(|idx| self.pj.call_hangup(idx, code));
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
                    self.pj.call_xfer(idx, &target)
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
        }
        let opt = self.pj.call_setting_audio_only();
        self.pj.call_answer(idx, &opt, 200)
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
        if self.pj.verify_sip_url(&c_uri).is_err() {
            return Err(Error::Config {
                key: "uri",
                problem: format!("`{uri}` is not a valid SIP URI (e.g. sip:100@192.0.2.10:5060)"),
            });
        }
        let opt = self.pj.call_setting_audio_only();
        let idx = self.pj.call_make_call(self.default_acc, &c_uri, &opt)?;
        Ok(self.new_record(idx, Direction::Outgoing))
    }

    fn stats(&self, idx: sys::pjsua_call_id) -> Result<CallStats> {
        let info = self.pj.call_get_info(idx)?;
        let med = audio_media_index(&info).ok_or(Error::InvalidCallState {
            call: self.calls[&idx].id,
            problem: "no audio stream",
        })?;
        let media = media_info(self.pj, idx, med);
        let stat = self.pj.call_get_stream_stat(idx, med)?;
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
                    hangup(self.pj, idx, 500);
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
            } => self.incoming(call, from, to, source),
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
            } => {
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
        hangup(self.pj, idx, code);
    }

    fn incoming(
        &mut self,
        idx: sys::pjsua_call_id,
        from: String,
        to: String,
        source: Option<std::net::SocketAddr>,
    ) {
        let refuse = |reason| {
            let code = match reason {
                RejectReason::NotAllowed => 403,
                RejectReason::Busy => 486,
                RejectReason::ShuttingDown => 503,
            };
            (reason, code)
        };
        let allowed = self.config.allowed_sources.is_empty()
            || source.is_some_and(|s| {
                let ip = match s.ip() {
                    IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
                    v4 => v4,
                };
                self.config
                    .allowed_sources
                    .iter()
                    .any(|net| net.contains(&ip))
            });
        // Active calls, not counting this one.
        let active = self.calls.len() as u32;
        let decision = if !self.accepting {
            Some(refuse(RejectReason::ShuttingDown))
        } else if !allowed {
            Some(refuse(RejectReason::NotAllowed))
        } else if active >= self.config.max_calls {
            Some(refuse(RejectReason::Busy))
        } else {
            None
        };
        if let Some((reason, code)) = decision {
            tracing::info!(%from, ?source, ?reason, "refusing INVITE with {code}");
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
        let opt = self.pj.call_setting_audio_only();
        if let Err(e) = self.pj.call_answer(idx, &opt, 180) {
            // The INVITE may already be cancelled; its state change will end the record.
            tracing::warn!(call = %id, "sending 180 Ringing failed: {e}");
        }
        self.emit(Event::IncomingCall {
            call: id,
            from,
            to,
            source,
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
        self.emit(Event::CallState {
            call: id,
            state,
            code,
            reason: reason.clone(),
        });
        if state == CallState::Disconnected {
            let mut record = self.calls.remove(&idx).expect("looked up above");
            callbacks::set_call_id(idx, None);
            detach_port(self.pj, &mut record);
            self.emit(Event::CallEnded {
                call: id,
                direction: record.direction,
                code,
                reason,
            });
        }
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
        hangup(self.pj, idx, 0);
    }

    fn media_state(&mut self, idx: sys::pjsua_call_id) {
        let Some(record) = self.calls.get_mut(&idx) else {
            return;
        };
        let id = record.id;
        let Ok(info) = self.pj.call_get_info(idx) else {
            return;
        };
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
        if let Err(e) = attach_port(self.pj, record, slot) {
            tracing::error!(call = %id, "cannot connect the call's audio: {e}");
            hangup(self.pj, idx, 500);
            return;
        }
        let media = audio_media_index(&info)
            .map(|m| media_info(self.pj, idx, m))
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
            // Unregister first so the registrar stops sending new INVITEs.
            Some(acc) if self.registered => self.pj.acc_set_registration(acc, false).is_ok(),
            _ => false,
        };
        self.pj.call_hangup_all();
        // Wait for the BYEs' and the unregistration's answers here rather than inside
        // pjsua_destroy, so their events (CallEnded, Registration::Unregistered) still reach
        // the application.
        while (!self.calls.is_empty() || (unregistering && self.registered))
            && Instant::now() < deadline
        {
            self.pj.handle_events(10);
            self.handle_records();
        }
        for (idx, mut record) in self.calls.drain() {
            callbacks::set_call_id(idx, None);
            detach_port(self.pj, &mut record);
        }
        // Nothing of ours refers to pjsua state after this (ports are destroyed, records
        // drained).
        let result = self.pj.destroy();
        callbacks::clear_records();
        result
    }
}

fn media_info(pj: Pjsua, idx: sys::pjsua_call_id, med: u32) -> MediaInfo {
    let none = MediaInfo {
        codec: String::new(),
        clock_rate: 0,
        channels: 0,
        remote_rtp: String::new(),
    };
    let Ok(si) = pj.call_get_stream_info(idx, med) else {
        return none;
    };
    if si.type_ != sys::PJMEDIA_TYPE_AUDIO {
        return none;
    }
    // SAFETY: type_ is AUDIO, so the `aud` member of the union is the valid one.
    let aud = unsafe { &si.info.aud };
    MediaInfo {
        codec: pjstr::to_string(&aud.fmt.encoding_name),
        clock_rate: aud.fmt.clock_rate,
        channels: aud.fmt.channel_cnt,
        remote_rtp: pjsua::sockaddr_string(&aud.rem_addr),
    }
}

/// Creates the call's port on first use and connects it both ways to `slot`.
fn attach_port(pj: Pjsua, record: &mut CallRecord, slot: sys::pjsua_conf_port_id) -> Result<()> {
    if record.port.is_none() {
        let (uplink, downlink, tap) = record
            .pending_rt
            .take()
            .ok_or_else(|| Error::Internal("media queues already used".into()))?;
        // A per-call pool, released with the port in on_destroy.
        let pool = pj.pool_create(c"va-call")?;
        let mut port = PortHandle::new(uplink, downlink, tap, pool)?;
        match pj.conf_add_port(port.pool(), port.as_pjmedia_port()) {
            Ok(port_slot) => port.slot = Some(port_slot),
            Err(e) => {
                port.destroy();
                return Err(e);
            }
        }
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
    // Both slots are live: the call's was just read from pjsua_call_get_info, ours is added.
    pj.conf_connect(slot, port_slot)?;
    pj.conf_connect(port_slot, slot)?;
    record.connected_to = Some(slot);
    Ok(())
}

/// Removes the call's port from the bridge and destroys it (freed in on_destroy).
fn detach_port(pj: Pjsua, record: &mut CallRecord) {
    if let Some(port) = record.port.take() {
        if let Some(slot) = port.slot {
            if let Err(e) = pj.conf_remove_port(slot) {
                tracing::warn!(call = %record.id, "{e}");
            }
        }
        port.destroy();
    }
    record.connected_to = None;
}
