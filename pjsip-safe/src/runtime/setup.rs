//! Bringing pjsua up: the engine's configuration translated into pjsua's (UA, logging, media),
//! codec priorities and Opus settings, SIP transports, the STUN callback and its verdict, and
//! the local and trunk accounts. Runs once, on the pjlib thread, before the loop starts.
//!
//! Everything here is configuration: no call exists yet, so nothing in this module touches the
//! call table.

use std::ffi::CString;
use std::net::IpAddr;

use pjsip_sys as sys;

use crate::admission::{Admission, AdmissionConfig};
use crate::callbacks;
use crate::config::{ContactRewrite, EngineConfig, Transport};
use crate::error::{check, Error, Result};
use crate::info::{CodecInfo, EngineInfo};
use crate::pjstr::{self, cstring};
use crate::pjsua::{self, Pjsua};

fn pj_bool(b: bool) -> sys::pj_bool_t {
    sys::pj_bool_t::from(b)
}

fn jb(value: Option<u32>) -> i32 {
    value.map_or(-1, |v| v as i32)
}

/// pjsua as the engine runs it: initialised, edge filter installed, transports listening,
/// accounts added, started.
pub(super) struct Setup {
    /// The account outgoing calls use: the trunk's, or the local one in IP mode.
    pub(super) default_acc: sys::pjsua_acc_id,
    pub(super) trunk_acc: Option<sys::pjsua_acc_id>,
    pub(super) info: EngineInfo,
    /// Who may start a call, with the trunk's addresses as resolved at start-up.
    pub(super) admission: Admission,
    /// What the trunk's host names resolved to at start-up.
    pub(super) trunk_resolved: Vec<IpAddr>,
}

/// Brings pjsua up from the engine's configuration. On error the caller destroys pjsua.
pub(super) fn init(pj: Pjsua, config: &EngineConfig) -> Result<Setup> {
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
    // (no `IncomingRejected`). Our cap is enforced by the call table's admission (`calls.rs`) instead.
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
    crate::edge::install(pj, config.inbound_auth.as_ref())?;
    pj.set_null_snd_dev()?;
    configure_codecs(pj, config)?;

    // Blocks while pjsua waits for the STUN servers (about 8 s for each that does not answer).
    let (transports, sip_addresses, udp_published) = create_transports(pj, config)?;
    // One local account per transport: pjsua binds a local account's dialogs to its transport,
    // so a call that arrives over TLS needs the TLS transport's account (its Contact, ACK and
    // BYE go over TLS). The first is the default for outgoing calls in IP mode.
    let mut local_accounts = Vec::new();
    for &transport in &transports {
        local_accounts.push(add_local_account(pj, config, transport)?);
    }
    let default_acc = local_accounts[0];
    let trunk_acc = match &config.account {
        Some(_) => Some(add_trunk_account(pj, config)?),
        None => None,
    };
    pj.start()?;

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
        .map(super::trunk::resolve_trunk)
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

    let codecs = list_codecs(pj);
    let info = EngineInfo {
        pjsip_version: pjsua::pjsip_version(),
        sip_addresses,
        codecs,
        trunk_mode: trunk_acc.is_some(),
        stun_server: stun_server(config),
        stun_mapped: stun_mapped(config, udp_published.as_deref()),
        udp_published,
    };
    Ok(Setup {
        default_acc: trunk_acc.unwrap_or(default_acc),
        trunk_acc,
        info,
        admission,
        trunk_resolved,
    })
}

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
    let tls_files = TlsFiles::new(&config.tls)?;
    for transport in &config.transports {
        let (kind, name) = match transport {
            Transport::Udp => (sys::PJSIP_TRANSPORT_UDP, "SIP UDP"),
            Transport::Tcp => (sys::PJSIP_TRANSPORT_TCP, "SIP TCP"),
            Transport::Tls => (sys::PJSIP_TRANSPORT_TLS, "SIP TLS"),
        };
        let mut cfg = transport_config(pj, config, &public, &bound);
        if *transport == Transport::Tls {
            cfg.port = u32::from(tls_port(config));
            tls_files.apply(&mut cfg.tls_setting);
        }
        let port = cfg.port as u16;
        let id = pj.transport_create(kind, &cfg, name, port)?;
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
    crate::panics::guard("on_stun_resolution_complete", (), || {
        // SAFETY: pjsua passes a result valid for the duration of the call (null is checked).
        if let Some(r) = unsafe { result.as_ref() } {
            set_stun_resolved(Some((r.status, r.index)));
        }
    });
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
