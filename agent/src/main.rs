//! `voiceagent`: the command line of the service.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use agent::config::{Config, LogFormat, Sources};
use agent::ordering::provider::OrderingTools;
use agent::ordering::{default_instructions, OrderFilter, OrderStatus, OrderStore};
use agent::realtime::RealtimeTarget;
use agent::service::{self, Backend, RunMode, ServiceOptions};
use agent::state::Shared;
use agent::tools::ToolRegistry;
use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(
    name = "voiceagent",
    version,
    about = "Answers phone calls over SIP and lets an OpenAI Realtime model talk to the caller"
)]
struct Cli {
    /// A `.env` file to read (default: `.env` in the working directory, if present).
    #[arg(long, global = true)]
    env_file: Option<PathBuf>,
    /// A TOML configuration file (also `VOICEAGENT_CONFIG`); the environment wins over it.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Answer calls: registered to the trunk when SIP_SERVER is set, else direct calls (IP mode).
    Run,
    /// Place one call to a SIP URI, bridged to the agent; exits when the call ends.
    Call {
        /// e.g. sip:+4930123456@sipgate.de or sip:test@192.0.2.10:5060
        uri: String,
    },
    /// Validate the configuration and report transports, codecs and the Realtime endpoint.
    Check,
    /// Exit 0 if a running voiceagent answers its liveness probe (for container health checks).
    Health {
        /// The API address (default: API_ADDR from the configuration).
        #[arg(long)]
        addr: Option<String>,
    },
    /// List or export orders.
    Orders {
        #[arg(long, value_enum, default_value_t = OrdersFormat::Table)]
        format: OrdersFormat,
        /// Only orders with this status.
        #[arg(long)]
        status: Option<String>,
        /// Only orders from this caller number.
        #[arg(long)]
        caller: Option<String>,
    },
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum OrdersFormat {
    Table,
    Csv,
    Json,
}

fn load_config(cli: &Cli) -> Result<Config, ExitCode> {
    let mut sources = Sources::from_process();
    if let Some(path) = &cli.env_file {
        sources = sources.with_env_file(path);
    }
    if let Some(path) = &cli.config {
        sources = sources.with_config_file(path);
    }
    Config::load(&sources).map_err(|errors| {
        eprintln!("voiceagent: the configuration has problems:\n{errors}");
        ExitCode::from(2)
    })
}

fn init_logging(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log.filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(ansi);
    match config.log.format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
    for warning in &config.warnings {
        tracing::warn!("configuration: {warning}");
    }
}

fn options(config: &Config) -> anyhow::Result<ServiceOptions> {
    let ordering = OrderingTools::open(&config.data.catalog_dir, &config.data.data_dir)?;
    let instructions = default_instructions(ordering.catalog());
    let mut tools = ToolRegistry::new(
        config.bridge.tool_timeout,
        config.bridge.transfer_target.is_some(),
    );
    tools.register(Arc::new(ordering));
    let backend = if config.uses_local_realtime() {
        Backend::Embedded {
            model: config.realtime.model.clone(),
        }
    } else {
        Backend::External(RealtimeTarget {
            url: config.realtime.url.clone(),
            model: config.realtime.model.clone(),
            api_key: config.realtime.api_key.clone(),
        })
    };
    let mut engine = config.engine_config();
    engine.shutdown_timeout = config.shutdown_timeout;
    engine.record_calls = config.recording.enabled;
    let recordings_dir = config
        .recording
        .enabled
        .then(|| config.data.recordings_dir());
    if let (Some(dir), Some(retention)) = (&recordings_dir, config.recording.retention) {
        let dir = dir.clone();
        // Retention: purge now and then every hour, off the async runtime.
        std::thread::Builder::new()
            .name("recording-retention".into())
            .spawn(move || loop {
                let deleted = agent::recording::purge(&dir, retention);
                if deleted > 0 {
                    tracing::info!(deleted, "old recordings deleted (RECORDING_RETENTION_DAYS)");
                }
                std::thread::sleep(Duration::from_secs(3600));
            })?;
    }
    Ok(ServiceOptions {
        engine,
        backend,
        conversation: config.conversation_config(|| instructions),
        policy: config.bridge.clone(),
        recording_notice: config.recording.enabled && config.recording.notice,
        tools,
        keep_recent: 200,
        recordings_dir,
    })
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("cannot listen for SIGTERM: {e}");
            std::future::pending::<()>().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
    }
}

async fn serve(config: Config, mode: RunMode) -> ExitCode {
    let options = match options(&config) {
        Ok(o) => o,
        Err(e) => {
            tracing::error!("{e:#}");
            return ExitCode::from(2);
        }
    };
    tracing::info!(config = %config.summary(), "voiceagent {} starting", env!("CARGO_PKG_VERSION"));
    let shared = Shared::default();
    let api_settings = agent::api::ApiSettings {
        token: config.api.token.clone(),
        data_dir: Some(config.data.data_dir.clone()),
        recording_enabled: config.recording.enabled,
        config_summary: config.summary(),
        hosts: agent::api::guard::HostPolicy {
            bind: None,
            allowed: config.api.allowed_hosts.clone(),
        },
        outbound: config.api.outbound.clone(),
    };
    let api = match agent::api::serve(config.api.addr, api_settings, shared.clone()).await {
        Ok(task) => task,
        Err(e) => {
            tracing::error!("{e:#}");
            return ExitCode::from(2);
        }
    };
    let result = service::run(options, mode, shared, shutdown_signal()).await;
    api.abort();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn check(config: Config) -> ExitCode {
    let mut ok = true;
    println!("configuration: valid");
    for warning in &config.warnings {
        println!("  warning: {warning}");
    }
    println!(
        "SIP: {} mode, port {} ({}), RTP {}-{}",
        if config.is_trunk_mode() {
            "trunk"
        } else {
            "IP"
        },
        config.sip.port,
        config
            .sip
            .transports
            .iter()
            .map(|t| format!("{t:?}").to_lowercase())
            .collect::<Vec<_>>()
            .join(","),
        config.sip.rtp_port_start,
        u32::from(config.sip.rtp_port_start) + u32::from(config.sip.rtp_port_range)
    );
    let engine_config = config.engine_config();
    match tokio::task::spawn_blocking(move || pjsip_safe::Engine::start(engine_config)).await {
        Ok(Ok((engine, _events))) => {
            let info = engine.info().clone();
            println!(
                "SIP engine: PJSIP {} ({} build) listening on {}",
                info.pjsip_version,
                pjsip_safe::pjsip_flavor(),
                info.sip_addresses.join(", ")
            );
            println!("codecs offered: {}", info.enabled_codecs().join(", "));
            if let Some(line) = stun_report(&config, &info) {
                println!("{line}");
            }
            let _ = tokio::task::spawn_blocking(move || engine.shutdown()).await;
            let tls_config = config.clone();
            if let Ok(lines) = tokio::task::spawn_blocking(move || tls_report(&tls_config)).await {
                for (fine, line) in lines {
                    ok &= fine;
                    println!("{line}");
                }
            }
        }
        Ok(Err(e)) => {
            ok = false;
            println!("SIP engine: FAILED: {e}");
        }
        Err(e) => {
            ok = false;
            println!("SIP engine: FAILED: {e}");
        }
    }
    match OrderingTools::open(&config.data.catalog_dir, &config.data.data_dir) {
        Ok(tools) => println!(
            "catalog: {} products from {}",
            tools.catalog().products().len(),
            config.data.catalog_dir.display()
        ),
        Err(e) => {
            ok = false;
            println!("catalog: FAILED: {e:#}");
        }
    }
    if config.uses_local_realtime() {
        println!("Realtime: the built-in local echo agent (OPENAI_API_KEY is not set)");
    } else {
        let target = RealtimeTarget {
            url: config.realtime.url.clone(),
            model: config.realtime.model.clone(),
            api_key: config.realtime.api_key.clone(),
        };
        match tokio::time::timeout(Duration::from_secs(10), agent::realtime::probe(&target)).await {
            Ok(Ok(())) => println!(
                "Realtime: {} accepted the key (session.created received)",
                target.url
            ),
            Ok(Err(e)) => {
                ok = false;
                println!("Realtime: FAILED: {e:#}");
            }
            Err(_) => {
                ok = false;
                println!(
                    "Realtime: FAILED: no answer from {} within 10 s",
                    target.url
                );
            }
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// `check`'s STUN line: what STUN did for the SIP transport, `None` without STUN servers.
///
/// A configured STUN server that nobody answers is a warning, not a failure: the engine runs
/// on with its local address (`stun_ignore_failure`, as `run` does), which is right on a LAN
/// or with a registrar that fixes Contact addresses, and a STUN server can be down for a while.
fn stun_report(config: &Config, info: &pjsip_safe::EngineInfo) -> Option<String> {
    let servers = &config.sip.stun_servers;
    if servers.is_empty() {
        return None;
    }
    let tried = servers.join(", ");
    Some(if let Some(public) = config.sip.public_ip {
        format!(
            "STUN: not used for SIP: SIP_PUBLIC_IP={public} is advertised as configured \
             (STUN servers: {tried})"
        )
    } else if let (Some(server), Some(mapped)) = (&info.stun_server, &info.stun_mapped) {
        format!("STUN: {server} mapped the SIP transport to {mapped}")
    } else if let Some(local) = &info.udp_published {
        format!(
            "STUN: no server answered (tried {tried}); the SIP transport advertises its local \
             address {local} — set SIP_PUBLIC_IP or check the STUN servers"
        )
    } else {
        format!("STUN: not used: STUN maps only UDP and SIP_TRANSPORT has no udp ({tried})")
    })
}

/// `check`'s TLS lines: the certificate we present, and a real handshake with the trunk's
/// registrar (the same verification PJSIP does: the chain against SIP_TLS_CA_FILE or the system
/// CAs, the name against SIP_SERVER's host, sent as SNI). A failed handshake fails `check`:
/// registration would fail the same way.
fn tls_report(config: &Config) -> Vec<(bool, String)> {
    use openssl::ssl::{SslConnector, SslMethod, SslVersion};
    let mut lines = Vec::new();
    if !config.sip.transports.contains(&pjsip_safe::Transport::Tls) {
        return lines;
    }
    let tls = &config.sip.tls;
    if let Some(cert) = &tls.cert_file {
        let line = std::fs::read(cert)
            .ok()
            .and_then(|pem| openssl::x509::X509::from_pem(&pem).ok())
            .map(|x| (true, format!("TLS: presenting {}", describe(&x))))
            .unwrap_or_else(|| {
                (
                    false,
                    format!("TLS: {} holds no PEM certificate", cert.display()),
                )
            });
        lines.push(line);
    }
    let Some(trunk) = &config.sip.trunk else {
        return lines;
    };
    let (host, port) = match trunk.server.rsplit_once(':') {
        Some((h, p)) if p.parse::<u16>().is_ok() => {
            (h.to_string(), p.parse::<u16>().unwrap_or(5061))
        }
        _ => (trunk.server.clone(), 5061),
    };
    let ca = tls
        .ca_file
        .clone()
        .unwrap_or_else(|| pjsip_safe::SYSTEM_CA_FILE.into());
    let attempt = || -> Result<String, String> {
        let mut builder =
            SslConnector::builder(SslMethod::tls_client()).map_err(|e| e.to_string())?;
        builder
            .set_min_proto_version(Some(SslVersion::TLS1_2))
            .map_err(|e| e.to_string())?;
        builder
            .set_ca_file(&ca)
            .map_err(|e| format!("cannot read {}: {e}", ca.display()))?;
        let connector = builder.build();
        let addr = std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), port))
            .map_err(|e| format!("cannot resolve {host}: {e}"))?
            .next()
            .ok_or_else(|| format!("{host} has no address"))?;
        let tcp = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))
            .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
        tcp.set_read_timeout(Some(Duration::from_secs(5))).ok();
        let stream = connector.connect(&host, tcp).map_err(|e| e.to_string())?;
        let ssl = stream.ssl();
        let cert = ssl
            .peer_certificate()
            .map(|c| describe(&c))
            .unwrap_or_else(|| "no certificate".into());
        Ok(format!("{} with {cert}", ssl.version_str()))
    };
    lines.push(match attempt() {
        Ok(what) => (
            true,
            format!("TLS: handshake with {host}:{port} OK: {what}"),
        ),
        Err(e) => (
            false,
            format!(
                "TLS: handshake with {host}:{port} FAILED: {e} — check SIP_TLS_CA_FILE (default: \
                 the system CAs) and that SIP_SERVER names the host its certificate is for"
            ),
        ),
    });
    lines
}

/// A certificate's subject and issuer, one line.
fn describe(cert: &openssl::x509::X509Ref) -> String {
    let name = |n: &openssl::x509::X509NameRef| {
        n.entries()
            .filter_map(|e| {
                let key = e.object().nid().short_name().ok()?;
                let value = e.data().as_slice();
                Some(format!("{key}={}", String::from_utf8_lossy(value)))
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "certificate subject {}, issuer {}",
        name(cert.subject_name()),
        name(cert.issuer_name())
    )
}

async fn health(addr: String) -> ExitCode {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let attempt = async {
        let mut stream = tokio::net::TcpStream::connect(&addr).await?;
        stream
            .write_all(
                format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            )
            .await?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await?;
        Ok::<_, std::io::Error>(String::from_utf8_lossy(&response).into_owned())
    };
    match tokio::time::timeout(Duration::from_secs(3), attempt).await {
        Ok(Ok(response)) if response.starts_with("HTTP/1.1 200") => {
            println!("healthy");
            ExitCode::SUCCESS
        }
        Ok(Ok(response)) => {
            eprintln!(
                "unhealthy: {}",
                response.lines().next().unwrap_or("empty answer")
            );
            ExitCode::FAILURE
        }
        Ok(Err(e)) => {
            eprintln!("unhealthy: cannot reach {addr}: {e}");
            ExitCode::FAILURE
        }
        Err(_) => {
            eprintln!("unhealthy: {addr} did not answer within 3 s");
            ExitCode::FAILURE
        }
    }
}

fn orders(
    config: &Config,
    format: OrdersFormat,
    status: Option<String>,
    caller: Option<String>,
) -> ExitCode {
    let store = match OrderStore::open_in(&config.data.data_dir) {
        Ok(s) => s,
        Err(e) => {
            eprintln!(
                "cannot open the order database in {}: {e}",
                config.data.data_dir.display()
            );
            return ExitCode::FAILURE;
        }
    };
    let status = match status.as_deref() {
        None => None,
        Some("confirmed") => Some(OrderStatus::Confirmed),
        Some("abandoned") => Some(OrderStatus::Abandoned),
        Some(other) => {
            eprintln!("--status {other}: unknown status; use confirmed or abandoned");
            return ExitCode::from(2);
        }
    };
    let filter = OrderFilter {
        status,
        caller,
        ..OrderFilter::default()
    };
    let list = match store.list(&filter) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("reading orders failed: {e}");
            return ExitCode::FAILURE;
        }
    };
    match format {
        OrdersFormat::Json => {
            println!(
                "{}",
                serde_json::to_string_pretty(&agent::ordering::store::export_json(&list))
                    .unwrap_or_default()
            );
        }
        OrdersFormat::Csv => {
            if let Err(e) = agent::ordering::store::export_csv(&list, std::io::stdout()) {
                eprintln!("export failed: {e}");
                return ExitCode::FAILURE;
            }
        }
        OrdersFormat::Table => {
            for o in &list {
                println!(
                    "{:<16} {:<10} {:<20} {:>10.2} EUR  {} items",
                    o.order_no.as_deref().unwrap_or("-"),
                    o.status.as_str(),
                    o.caller,
                    o.total_net_cents as f64 / 100.0,
                    o.items.len()
                );
            }
            println!("{} orders", list.len());
        }
    }
    ExitCode::SUCCESS
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match load_config(&cli) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("voiceagent: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match cli.command {
        Command::Run => {
            init_logging(&config);
            runtime.block_on(serve(config, RunMode::Serve))
        }
        Command::Call { uri } => {
            init_logging(&config);
            runtime.block_on(serve(config, RunMode::Call(uri)))
        }
        Command::Check => runtime.block_on(check(config)),
        Command::Health { addr } => {
            let addr = addr.unwrap_or_else(|| config.api.addr.to_string());
            runtime.block_on(health(addr))
        }
        Command::Orders {
            format,
            status,
            caller,
        } => orders(&config, format, status, caller),
    }
}
