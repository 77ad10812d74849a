//! Engine benchmark: our media engine (pjsip-safe's `echo` example) against PJSIP's own
//! `pjsua --auto-loop`, same PJSIP build, same settings, same load, one after the other.
//!
//! ```text
//! cargo bench -p integration-tests --bench engine_load
//! ```
//!
//! Scenarios (each run against pjsua, then against echo):
//! 1. G.711 load: SIPp places N PCMA calls (`tests/data/sipp/uac_load.xml`); a Rust peer streams
//!    symmetric RTP per call, counts loss and times clicks (`integration_tests::bench`).
//! 2. Opus load: a second engine process (`caller` example) places N Opus calls and streams a
//!    tone into each.
//! 3. Latency: one G.711 call, clicks every second, round trip at the peer's socket.
//!
//! Figures: CPU of the answering process (utime+stime over a steady window), RSS per call,
//! loss at the peer, our queue counters, media-port callback durations (from the echo's
//! `port-totals` line). Sizes: `BENCH_G711_CALLS` (100), `BENCH_OPUS_CALLS` (50),
//! `BENCH_WINDOW_S` (10). Everything runs on 127.0.0.1; every process is killed on exit.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use integration_tests::bench::answerer::{self, AnswerSpec, Answerer, Kind};
use integration_tests::bench::g711_peer::{self, G711Peer, PeerSummary};
use integration_tests::bench::procfs;
use integration_tests::g711::Law;
use integration_tests::ports;
use integration_tests::process::scratch_dir;
use integration_tests::sipp::{Sipp, SippRun};
use pjsip_safe::{CallbackTiming, PortTotals};

const CALL_RATE: u32 = 25;
const SETTLE: Duration = Duration::from_secs(3);

fn env_u32(name: &str, default: u32) -> u32 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One scenario run against one answerer.
#[derive(Debug, Default)]
struct Row {
    scenario: String,
    answerer: &'static str,
    calls: u32,
    connected: u64,
    idle_rss_kb: u64,
    load_rss_kb: u64,
    cpu_cores: f64,
    idle_cpu_cores: f64,
    /// Loss seen by the load peer: (lost, expected).
    peer_loss: (u64, u64),
    max_gap_ms: Option<f64>,
    rtt_ms: Vec<f64>,
    jb_ms: Option<f64>,
    totals: Option<PortTotals>,
    command: String,
}

impl Row {
    fn cpu_per_call_pct(&self) -> f64 {
        (self.cpu_cores - self.idle_cpu_cores) * 100.0 / self.connected.max(1) as f64
    }
    fn rss_per_call_kb(&self) -> f64 {
        self.load_rss_kb.saturating_sub(self.idle_rss_kb) as f64 / self.connected.max(1) as f64
    }
}

fn percentile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    Some(sorted[i])
}

fn spec(calls: u32, exit_after: Duration) -> Result<AnswerSpec> {
    Ok(AnswerSpec {
        sip_port: ports::sip_port()?,
        rtp_port: ports::rtp_range(u16::try_from(calls * 2 + 20)?)?,
        max_calls: calls + 2,
        exit_after,
    })
}

fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) -> Result<()> {
    let deadline = Instant::now() + limit;
    while !done() {
        if Instant::now() >= deadline {
            bail!("timed out after {limit:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// G.711 calls from SIPp with the Rust RTP peer; `window` = None for the latency run.
fn g711_run(
    kind: Kind,
    calls: u32,
    window: Option<Duration>,
    examples: &std::path::Path,
) -> Result<Row> {
    let ramp = Duration::from_millis(1000 * u64::from(calls) / u64::from(CALL_RATE));
    let steady = window.unwrap_or(Duration::from_secs(8));
    let call_len = ramp + SETTLE + steady + Duration::from_secs(2);
    let exit_after = ramp + call_len + Duration::from_secs(4);
    let spec = spec(calls, exit_after)?;
    let ans = Answerer::spawn(kind, spec, examples)?;
    let command = ans.command.clone();
    let idle = procfs::measure(ans.pid(), Duration::from_secs(1))?;

    let peer = G711Peer::bind(calls as usize, Law::A)?;
    let scratch = scratch_dir("load")?;
    let csv = scratch.path().join("ports.csv");
    std::fs::write(&csv, peer.injection_csv()?)?;
    let running = peer.start(exit_after + Duration::from_secs(5))?;
    let mut run = SippRun::new("uac_load.xml")
        .var("PT", Law::A.payload_type())
        .var("CODEC", Law::A.encoding_name())
        .var("CALL_MS", call_len.as_millis())
        .remote(format!("127.0.0.1:{}", spec.sip_port))
        .service("echo")
        .calls(calls)
        .timeout(ramp + call_len + Duration::from_secs(20));
    run.concurrent = Some(calls);
    run.rate = Some(CALL_RATE);
    run.extra_args = vec!["-inf".into(), csv.display().to_string()];
    let sipp = Sipp::spawn(&run)?;

    wait_until("every call's RTP", ramp + Duration::from_secs(15), || {
        running.latched() >= calls as usize
    })
    .with_context(|| format!("{}: {}", kind.name(), ans.log_tail(15)))?;
    std::thread::sleep(SETTLE);
    let load = if window.is_some() {
        Some(procfs::measure(ans.pid(), steady)?)
    } else {
        None
    };
    let report = sipp.wait()?;
    let reports = running.finish();
    let totals = ans.finish(Duration::from_secs(30))?;
    if report.successful < u64::from(calls) {
        eprintln!("warning: {}: {report}", kind.name());
    }
    let s: PeerSummary = g711_peer::summarize(&reports);
    let (cpu_cores, load_rss_kb) = load.map_or((0.0, 0), |w| (w.cores, w.rss_kb));
    Ok(Row {
        scenario: if window.is_some() {
            format!("G.711 PCMA x{calls}")
        } else {
            "latency, 1 PCMA call".into()
        },
        answerer: kind.name(),
        calls,
        connected: s.calls_with_audio as u64,
        idle_rss_kb: idle.rss_kb,
        load_rss_kb,
        cpu_cores,
        idle_cpu_cores: idle.cores,
        peer_loss: (s.lost, s.expected),
        max_gap_ms: Some(s.max_gap_ms),
        rtt_ms: s.rtt_ms,
        jb_ms: None,
        totals,
        command,
    })
}

/// Opus calls from the `caller` example (a second engine process).
fn opus_run(kind: Kind, calls: u32, window: Duration, examples: &std::path::Path) -> Result<Row> {
    let ramp = Duration::from_millis(1000 * u64::from(calls) / u64::from(CALL_RATE));
    let hold = SETTLE + window + Duration::from_secs(2);
    let exit_after = ramp + hold + Duration::from_secs(6);
    let spec = spec(calls, exit_after)?;
    let ans = Answerer::spawn(kind, spec, examples)?;
    let command = ans.command.clone();
    let idle = procfs::measure(ans.pid(), Duration::from_secs(1))?;
    let target = format!("sip:echo@127.0.0.1:{}", spec.sip_port);
    let (caller_sip, caller_rtp) = (
        ports::sip_port()?,
        ports::rtp_range(u16::try_from(calls * 2 + 20)?)?,
    );
    let ex = examples.to_path_buf();
    let caller = std::thread::spawn(move || {
        answerer::run_caller(
            &ex,
            &target,
            calls,
            hold,
            caller_sip,
            caller_rtp,
            ramp + hold + Duration::from_secs(40),
        )
    });
    std::thread::sleep(ramp + Duration::from_secs(1) + SETTLE);
    let load = procfs::measure(ans.pid(), window)?;
    let report = caller
        .join()
        .map_err(|_| anyhow::anyhow!("caller thread panicked"))??;
    let totals = ans.finish(Duration::from_secs(30))?;
    let get = |k: &str| report.summary.get(k).copied().unwrap_or(0.0);
    Ok(Row {
        scenario: format!("Opus x{calls}"),
        answerer: kind.name(),
        calls,
        connected: get("connected") as u64,
        idle_rss_kb: idle.rss_kb,
        load_rss_kb: load.rss_kb,
        cpu_cores: load.cores,
        idle_cpu_cores: idle.cores,
        peer_loss: (
            get("rx_lost") as u64,
            get("rx_packets") as u64 + get("rx_lost") as u64,
        ),
        max_gap_ms: None,
        rtt_ms: Vec::new(),
        jb_ms: Some(get("jb_ms_mean")),
        totals,
        command: format!("{command}\n    caller: {}", report.command),
    })
}

fn us(ns: Option<u64>) -> String {
    ns.map_or("-".into(), |n| format!("{:.1}", n as f64 / 1000.0))
}

fn timing_cell(t: &CallbackTiming) -> String {
    format!(
        "{}/{}/{}",
        us(t.quantile_upper_ns(0.5)),
        us(t.quantile_upper_ns(0.99)),
        us((t.count > 0).then_some(t.max_ns))
    )
}

fn print_tables(rows: &[Row]) {
    println!("\n### Load (CPU and RSS of the answering process)\n");
    println!("| scenario | answerer | calls with audio | CPU total % | CPU %/call | RSS idle MB | RSS/call KB | loss at peer | max gap ms |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for r in rows.iter().filter(|r| r.cpu_cores > 0.0) {
        println!(
            "| {} | {} | {}/{} | {:.1} | {:.3} | {:.1} | {:.0} | {}/{} | {} |",
            r.scenario,
            r.answerer,
            r.connected,
            r.calls,
            r.cpu_cores * 100.0,
            r.cpu_per_call_pct(),
            r.idle_rss_kb as f64 / 1024.0,
            r.rss_per_call_kb(),
            r.peer_loss.0,
            r.peer_loss.1,
            r.max_gap_ms.map_or("-".into(), |g| format!("{g:.1}"))
        );
    }
    for scenario in ["G.711", "Opus"] {
        let find = |k: &str| {
            rows.iter()
                .find(|r| r.scenario.starts_with(scenario) && r.answerer == k)
        };
        if let (Some(p), Some(e)) = (find(Kind::Pjsua.name()), find(Kind::Echo.name())) {
            println!(
                "\n{scenario}: echo/pjsua ratio: CPU per call {:.2}x, RSS per call {:.2}x",
                e.cpu_per_call_pct() / p.cpu_per_call_pct().max(1e-9),
                e.rss_per_call_kb() / p.rss_per_call_kb().max(1e-9)
            );
        }
    }
    println!("\n### Our media port (echo example, all calls of the run)\n");
    println!("| scenario | ports | put_frame µs p50/p99/max | get_frame µs p50/p99/max | late frames | uplink dropped | downlink underruns | frames up/down |");
    println!("|---|---|---|---|---|---|---|---|");
    for r in rows {
        if let Some(t) = &r.totals {
            println!(
                "| {} | {} | {} | {} | {} | {} | {} | {}/{} |",
                r.scenario,
                t.ports,
                timing_cell(&t.timing.put_frame),
                timing_cell(&t.timing.get_frame),
                t.timing.late_frames,
                t.uplink_dropped,
                t.downlink_underruns,
                t.uplink_frames,
                t.downlink_frames
            );
        }
    }
    println!("\n(p50/p99 are upper edges of log2 buckets; max is exact.)");
    println!("\n### Round trip of a click through the answerer (G.711 peer, at its socket)\n");
    println!("| scenario | answerer | clicks | RTT p50 ms | RTT p99 ms | RTT max ms |");
    println!("|---|---|---|---|---|---|");
    for r in rows.iter().filter(|r| !r.rtt_ms.is_empty()) {
        let f = |q| percentile(&r.rtt_ms, q).map_or("-".into(), |v| format!("{v:.1}"));
        println!(
            "| {} | {} | {} | {} | {} | {} |",
            r.scenario,
            r.answerer,
            r.rtt_ms.len(),
            f(0.5),
            f(0.99),
            f(1.0)
        );
    }
    let lat = |k: &str| {
        rows.iter()
            .find(|r| r.scenario.starts_with("latency") && r.answerer == k)
            .and_then(|r| percentile(&r.rtt_ms, 0.5))
    };
    if let (Some(p), Some(e)) = (lat(Kind::Pjsua.name()), lat(Kind::Echo.name())) {
        println!(
            "\nAdded one-way latency of our layer: (echo RTT − pjsua RTT)/2 = ({e:.1} − {p:.1})/2 = {:.1} ms",
            (e - p) / 2.0
        );
    }
    for r in rows.iter().filter(|r| r.jb_ms.is_some()) {
        println!(
            "{} via {}: caller-side jitter buffer (CallStats.jitter_buffer_ms, mean over calls) = {:.1} ms",
            r.scenario,
            r.answerer,
            r.jb_ms.unwrap_or(0.0)
        );
    }
    println!("\nCommands:");
    for r in rows {
        println!("  {} / {}: {}", r.scenario, r.answerer, r.command);
    }
}

fn main() -> Result<()> {
    // `cargo bench` passes `--bench`; there is nothing to filter.
    let g711_calls = env_u32("BENCH_G711_CALLS", 100);
    let opus_calls = env_u32("BENCH_OPUS_CALLS", 50);
    let window = Duration::from_secs(u64::from(env_u32("BENCH_WINDOW_S", 10)));
    let started = Instant::now();
    let examples = answerer::build_examples()?;
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
            })
        })
        .unwrap_or_default();
    println!(
        "engine_load: PJSIP {}, {} cores ({cpu})",
        pjsip_safe::pjsip_version(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let mut rows = Vec::new();
    for kind in [Kind::Pjsua, Kind::Echo] {
        eprintln!("G.711 x{g711_calls} against {} ...", kind.name());
        rows.push(g711_run(kind, g711_calls, Some(window), &examples)?);
    }
    for kind in [Kind::Pjsua, Kind::Echo] {
        eprintln!("Opus x{opus_calls} against {} ...", kind.name());
        rows.push(opus_run(kind, opus_calls, window, &examples)?);
    }
    for kind in [Kind::Pjsua, Kind::Echo] {
        eprintln!("latency against {} ...", kind.name());
        rows.push(g711_run(kind, 1, None, &examples)?);
    }
    print_tables(&rows);
    println!(
        "\nengine_load took {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
