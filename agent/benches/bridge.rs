//! Bridge benchmark: what `voiceagent run` adds between the engine's frames and the Realtime
//! WebSocket, against a scripted strict Realtime server running in this process (so its CPU is
//! not counted in voiceagent's).
//!
//! ```text
//! cargo bench -p agent --bench bridge                    # all parts
//! BENCH_ONLY=rtp cargo bench -p agent --bench bridge     # one part: baresip, rtp or load
//! ```
//!
//! 1. Turn overhead, one baresip call (PCMA): the caller speaks, the server answers at once
//!    (unpaced, no delay). Both of baresip's recordings are watched growing (every 2 ms) to put
//!    wall-clock times on the end of the caller's speech as it was encoded (RTP level) and the
//!    answer's first sample as it was decoded; overhead = that gap − VAD_SILENCE_MS.
//! 2. Turn overhead at RTP level, `RTP_TURNS` (8) calls from SIPp with the harness's symmetric
//!    G.711 peer (no jitter buffer or codec of a softphone in the path): overhead = send time
//!    of the caller's last loud RTP packet → arrival of the first loud answer packet, minus
//!    VAD_SILENCE_MS. This is the issue's definition of the figure. Each turn is split using
//!    the server's record of when every `append` arrived (aligned with what was sent).
//! 3. Load: SIPp places `BENCH_CALLS` (50) PCMA calls with a Rust RTP peer per call; CPU of the
//!    voiceagent process over a steady window, minus idle, per call, and per thread name (the
//!    tokio workers are the bridge). Every call's "bridge latency" log line gives uplink
//!    (frame captured → append sent), downlink (delta received → queued for the engine) and
//!    downlink to played (an answer's first delta → its first sample taken by PJSIP)
//!    percentiles.

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use agent::realtime::server::script::{Reply, Script};
use agent::realtime::server::Pacing;
use common::{baresip_rec_dir, find_level, first_channel, ScriptedBackend, Voiceagent};
use integration_tests::baresip::{Baresip, BaresipConfig, Codec};
use integration_tests::bench::g711_peer::G711Peer;
use integration_tests::bench::procfs;
use integration_tests::g711::Law;
use integration_tests::ports;
use integration_tests::process::scratch_dir;
use integration_tests::rtp::RtpListener;
use integration_tests::sipp::{wait_port_file, Sipp, SippRun};
use integration_tests::speech::{padded_phrase_wav, phrase_g711, Phrase};

/// The server's silence window, given to voiceagent explicitly (`VAD_SILENCE_MS`), which sends
/// it in its `session.update`, so the server's VAD and this benchmark use the same value.
const VAD_SILENCE_MS: u64 = 500;
/// Calls (one measured turn each) of the RTP-level turn overhead.
const RTP_TURNS: usize = 8;
/// A G.711 packet counts as speech (caller) or answer (agent) above this level.
const LOUD_DBFS: f64 = -40.0;

fn vad_env() -> (&'static str, String) {
    ("VAD_SILENCE_MS", VAD_SILENCE_MS.to_string())
}

/// Watches the newest file ending in `suffix` in `dir` grow: (time, length) at each change.
fn watch(
    dir: std::path::PathBuf,
    suffix: &'static str,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<Vec<(Instant, u64)>> {
    std::thread::spawn(move || {
        let mut out: Vec<(Instant, u64)> = Vec::new();
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            let newest = std::fs::read_dir(&dir).ok().and_then(|d| {
                d.filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.to_string_lossy().ends_with(suffix))
                    .max()
            });
            if let Some(len) = newest
                .and_then(|p| std::fs::metadata(p).ok())
                .map(|m| m.len())
            {
                if out.last().is_none_or(|(_, l)| *l != len) {
                    out.push((Instant::now(), len));
                }
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        out
    })
}

fn time_at(growth: &[(Instant, u64)], sample: usize) -> Instant {
    let bytes = 44 + sample as u64 * 2;
    growth
        .iter()
        .find(|(_, l)| *l >= bytes)
        .expect("position reached")
        .0
}

fn turn_overhead() -> (f64, Vec<String>) {
    let backend = ScriptedBackend::start(
        Script::new()
            .reply(Reply::long(Duration::from_millis(500), "hi"))
            .then(Reply::long(Duration::from_secs(2), "answer")),
        Pacing::Unpaced,
    );
    let mut env = backend.env();
    env.push(vad_env());
    let mut va = Voiceagent::run(&env);
    let mut caller = Baresip::spawn(
        &BaresipConfig::new(
            "caller",
            &padded_phrase_wav(Phrase::GermanOrder, 48000, 3000, 20_000).unwrap(),
        )
        .codecs(&[Codec::Pcma]),
    )
    .unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let rec = baresip_rec_dir(&caller.log_path());
    let enc = watch(rec.clone(), "-enc.wav", stop.clone());
    let dec = watch(rec, "-dec.wav", stop.clone());
    caller.dial(&va.uri()).unwrap();
    caller.wait_established().unwrap();
    backend.wait_for("the answer", Duration::from_secs(30), |s| {
        s.first().and_then(|s| s.audio_sent.get(1)).map(|_| ())
    });
    caller
        .wait_received_audio(Duration::from_secs(12), Duration::from_secs(30))
        .unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (enc, dec) = (enc.join().unwrap(), dec.join().unwrap());
    caller.hangup().unwrap();
    caller.wait_closed().unwrap();
    va.wait_log("bridge latency", Duration::from_secs(10));
    let files = caller.finish().unwrap();
    let (rate, sent) = first_channel(files.sent.last().unwrap());
    let (drate, heard) = first_channel(files.received.last().unwrap());
    let win = rate as usize / 100;
    // End of the caller's speech: the last loud 10 ms window.
    let start = find_level(&sent, 0, win, -40.0, true).expect("caller speech");
    let mut end = start;
    let mut i = start;
    while i + win <= sent.len() {
        if common::rms_dbfs(&sent, i, i + win) > -40.0 {
            end = i + win;
        }
        i += win;
    }
    let t_end = time_at(&enc, end);
    // The answer: the first loud window after the caller's speech ended.
    let dwin = drate as usize / 200;
    let t_answer = (0..heard.len().saturating_sub(dwin))
        .step_by(dwin)
        .filter(|p| common::rms_dbfs(&heard, *p, p + dwin) > -30.0)
        .map(|p| time_at(&dec, p))
        .find(|t| *t > t_end)
        .expect("an answer after the speech");
    let gap = t_answer.duration_since(t_end).as_secs_f64() * 1000.0;
    let lines = latency_lines(&va.log_text());
    drop(va);
    (gap - VAD_SILENCE_MS as f64, lines)
}

/// Level of one G.711 payload in dBFS.
fn g711_dbfs(law: Law, payload: &[u8]) -> f64 {
    if payload.is_empty() {
        return -120.0;
    }
    let e = law
        .decode_all(payload)
        .iter()
        .map(|s| (f64::from(*s) / 32768.0).powi(2))
        .sum::<f64>()
        / payload.len() as f64;
    10.0 * e.max(1e-12).log10()
}

/// Per-millisecond RMS envelope of `samples` at `rate`.
fn envelope(samples: &[i16], rate: usize) -> Vec<f64> {
    samples
        .chunks(rate / 1000)
        .map(|c| (c.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / c.len() as f64).sqrt())
        .collect()
}

/// When the end of the caller's last loud packet reached the server, found by aligning what the
/// server received (24 kHz) with what was sent (G.711) on their 1 ms envelopes; also the lag in
/// ms of stream between the two. `None` if the server's record is too short to align.
fn uplink_path(
    g711: &[u8],
    law: Law,
    last_loud: usize,
    record: &agent::realtime::server::SessionRecord,
) -> Option<(Instant, usize)> {
    let tx = envelope(&law.decode_all(g711), 8000);
    let rx = envelope(&record.input_audio, 24000);
    // rx[i + lag] ≈ tx[i]; search the lag with the best correlation.
    let lag = (0..rx.len().checked_sub(tx.len() / 2)?)
        .map(|lag| {
            let dot: f64 = tx.iter().zip(rx.iter().skip(lag)).map(|(a, b)| a * b).sum();
            (lag, dot)
        })
        .max_by(|a, b| a.1.total_cmp(&b.1))?
        .0;
    let end_sample = ((last_loud + 1) * 20 + lag) * 24;
    let at = record
        .input_arrivals
        .iter()
        .find(|(_, len)| *len >= end_sample)?
        .0;
    Some((at, lag))
}

/// The RTP-level turn overhead of `turns` calls, in ms: per call, the send time of the
/// caller's last loud packet → the arrival of the first loud packet from voiceagent after it,
/// minus VAD_SILENCE_MS. Each call is a new session: a 500 ms greeting (answered to
/// voiceagent's `response.create` at call start, over before the caller speaks), then the
/// caller's sentence, then the measured answer.
fn rtp_turn_overhead(turns: usize) -> Vec<f64> {
    const LEAD_MS: u32 = 1500;
    const TAIL_MS: u32 = 3000;
    let law = Law::A;
    let backend = ScriptedBackend::start(
        Script::new()
            .reply(Reply::long(Duration::from_millis(500), "hi"))
            .then(Reply::long(Duration::from_secs(1), "answer")),
        Pacing::Unpaced,
    );
    let mut env = backend.env();
    env.push(vad_env());
    let va = Voiceagent::run(&env);
    let g711 =
        std::fs::read(phrase_g711(Phrase::GermanOrder, law, LEAD_MS, TAIL_MS).unwrap()).unwrap();
    let loud: Vec<bool> = g711
        .chunks(160)
        .map(|c| g711_dbfs(law, c) > LOUD_DBFS)
        .collect();
    let last_loud = loud
        .iter()
        .rposition(|l| *l)
        .expect("the phrase is audible");
    let call_ms = g711.len() as u64 / 8 + 1000;
    let mut overheads = Vec::with_capacity(turns);
    for turn in 0..turns {
        let peer = RtpListener::bind().unwrap();
        let scratch = scratch_dir("bridge-rtp-turn").unwrap();
        let port_file = scratch.path().join("agent-rtp-port");
        let run = SippRun::new("uac_g711_symmetric.xml")
            .var("RTP_LISTEN_PORT", peer.port())
            .var("PT", law.payload_type())
            .var("CODEC", law.encoding_name())
            .var("PORT_FILE", port_file.display())
            .var("CALL_MS", call_ms)
            .remote(format!("127.0.0.1:{}", va.sip_port))
            .service("agent")
            .timeout(Duration::from_millis(call_ms) + Duration::from_secs(15));
        let sipp = Sipp::spawn(&run).unwrap();
        let agent_rtp = wait_port_file(&port_file, Duration::from_secs(10)).unwrap();
        let sender = peer
            .stream_g711_timed(
                std::net::SocketAddr::from(([127, 0, 0, 1], agent_rtp)),
                g711.clone(),
                law.payload_type(),
            )
            .unwrap();
        // The server runs in this process: its commit and its first answer audio are timed
        // here as its records change, to split the figure into uplink and downlink.
        let t_commit = backend.wait_instant("the turn's commit", Duration::from_secs(20), |s| {
            s.get(turn).is_some_and(|s| {
                s.server_event_types
                    .iter()
                    .any(|t| t == "input_audio_buffer.committed")
            })
        });
        let t_answer_sent = backend.wait_instant("the answer", Duration::from_secs(10), |s| {
            s.get(turn).is_some_and(|s| s.audio_sent.len() > 1)
        });
        let sent = sender.join().unwrap();
        let report = sipp.wait().unwrap();
        assert!(report.all_succeeded(1), "call {turn}: {report}");
        let packets = peer.finish().unwrap();
        let speech_end = sent[last_loud];
        let answer = packets
            .iter()
            .filter(|p| p.payload_type == law.payload_type() && p.at > speech_end)
            .find(|p| g711_dbfs(law, &p.payload) > LOUD_DBFS)
            .unwrap_or_else(|| panic!("call {turn}: no loud packet after the caller's speech"));
        let ms = |from: Instant, to: Instant| to.duration_since(from).as_secs_f64() * 1000.0;
        let gap = ms(speech_end, answer.at);
        let record = &backend.sessions()[turn];
        let path = uplink_path(&g711, law, last_loud, record);
        eprintln!(
            "call {turn}: speech end → first answer packet {gap:.1} ms: → server commit {:.1} ms \
             (incl. {VAD_SILENCE_MS} ms VAD silence; the speech's last packet reached the server \
             after {}), → first answer audio sent {:.1} ms, → first loud packet in {:.1} ms",
            ms(speech_end, t_commit),
            path.map_or("?".into(), |(at, _)| format!(
                "{:.1} ms",
                ms(speech_end, at)
            )),
            ms(t_commit, t_answer_sent),
            ms(t_answer_sent, answer.at),
        );
        if let Some((_, lag)) = path {
            eprintln!("call {turn}: stream alignment: received audio lags the sent audio by {lag} ms of stream");
        }
        overheads.push(gap - VAD_SILENCE_MS as f64);
    }
    drop(va);
    overheads
}

fn latency_lines(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains("bridge latency"))
        .map(str::to_owned)
        .collect()
}

fn field(line: &str, key: &str) -> Option<u64> {
    let at = line.find(&format!("{key}="))? + key.len() + 1;
    line[at..]
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

fn load(calls: u32) -> (f64, f64, Vec<String>, u64, BTreeMap<String, f64>) {
    let backend = ScriptedBackend::start(
        Script::new().reply(Reply::long(Duration::from_secs(2), "hi")),
        Pacing::Speedup(2.0),
    );
    let mut env = backend.env();
    env.push((
        "RTP_PORT_START",
        ports::rtp_range(4 * calls as u16 + 8).unwrap().to_string(),
    ));
    env.push(("RTP_PORT_RANGE", (4 * calls + 8).to_string()));
    env.push(("MAX_CALLS", (calls + 8).to_string()));
    // The load ramps at 25 calls/s from one address: past the default per-source INVITE limit.
    env.push(("SIP_INVITE_RATE", "0".to_string()));
    let va = Voiceagent::run(&env);
    let pid = va_pid(&va);
    let idle = procfs::measure(pid, Duration::from_secs(2)).unwrap();
    let ramp = Duration::from_millis(1000 * u64::from(calls) / 25);
    let window = Duration::from_secs(10);
    let call_len = ramp + window + Duration::from_secs(8);
    let peer = G711Peer::bind(calls as usize, Law::A).unwrap();
    let scratch = scratch_dir("bridge-load").unwrap();
    let csv = scratch.path().join("ports.csv");
    std::fs::write(&csv, peer.injection_csv().unwrap()).unwrap();
    let running = peer
        .start(ramp + call_len + Duration::from_secs(10))
        .unwrap();
    let mut run = SippRun::new("uac_load.xml")
        .var("PT", Law::A.payload_type())
        .var("CODEC", Law::A.encoding_name())
        .var("CALL_MS", call_len.as_millis())
        .remote(format!("127.0.0.1:{}", va.sip_port))
        .service("agent")
        .calls(calls)
        .timeout(ramp + call_len + Duration::from_secs(30));
    run.concurrent = Some(calls);
    run.rate = Some(25);
    run.extra_args = vec!["-inf".into(), csv.display().to_string()];
    let sipp = Sipp::spawn(&run).unwrap();
    let deadline = Instant::now() + ramp + Duration::from_secs(20);
    while running.latched() < calls as usize {
        assert!(
            Instant::now() < deadline,
            "only {} calls latched",
            running.latched()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_secs(3)); // settle: greetings done
    let (busy, threads) = procfs::measure_by_thread(pid, window).unwrap();
    let report = sipp.wait().unwrap();
    let _ = running.finish();
    let deadline = Instant::now() + Duration::from_secs(20);
    while (latency_lines(&va.log_text()).len() as u32) < calls && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let lines = latency_lines(&va.log_text());
    drop(va);
    eprintln!("sipp: {report}");
    (idle.cores, busy.cores, lines, busy.rss_kb, threads)
}

fn va_pid(va: &Voiceagent) -> u32 {
    va.pid()
}

fn summarize(lines: &[String]) -> String {
    let get = |k: &str| -> Vec<u64> { lines.iter().filter_map(|l| field(l, k)).collect() };
    let (up99, down99) = (get("uplink_p99_us"), get("downlink_p99_us"));
    let (up50, down50) = (get("uplink_p50_us"), get("downlink_p50_us"));
    let (upmax, downmax) = (get("uplink_max_us"), get("downlink_max_us"));
    let (play50, play99, playmax) = (
        get("downlink_play_p50_us"),
        get("downlink_play_p99_us"),
        get("downlink_play_max_us"),
    );
    let med = |v: &[u64]| {
        let mut v = v.to_vec();
        v.sort_unstable();
        v.get(v.len() / 2).copied().unwrap_or(0)
    };
    let max = |v: &[u64]| v.iter().copied().max().unwrap_or(0);
    format!(
        "{} calls: uplink p50 {} µs (median of calls), p99 median {} µs / worst call {} µs, max {} µs; \
         downlink (delta → queued) p50 {} µs, p99 median {} µs / worst call {} µs, max {} µs; \
         downlink (answer's first delta → first sample played) p50 {} µs, p99 median {} µs / \
         worst call {} µs, max {} µs",
        lines.len(),
        med(&up50),
        med(&up99),
        max(&up99),
        max(&upmax),
        med(&down50),
        med(&down99),
        max(&down99),
        max(&downmax),
        med(&play50),
        med(&play99),
        max(&play99),
        max(&playmax)
    )
}

fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return; // `cargo test --benches` probes; the benchmark runs only under `cargo bench`.
    }
    let calls: u32 = std::env::var("BENCH_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    // BENCH_ONLY=baresip|rtp|load runs one part; all three by default.
    let only = std::env::var("BENCH_ONLY").ok();
    let part = |name: &str| only.as_deref().is_none_or(|o| o == name);
    if part("baresip") {
        let (overhead, lines) = turn_overhead();
        println!("turn overhead (speech end at RTP → first answer sample decoded, − {VAD_SILENCE_MS} ms VAD silence): {overhead:.0} ms");
        println!("single call: {}", summarize(&lines));
    }
    if part("rtp") {
        let mut rtp = rtp_turn_overhead(RTP_TURNS);
        rtp.sort_by(f64::total_cmp);
        println!(
            "turn overhead at RTP level ({RTP_TURNS} SIPp PCMA calls, last loud packet sent → first loud answer packet received, − {VAD_SILENCE_MS} ms VAD silence): p50 {:.1} ms, max {:.1} ms (all: {})",
            rtp[rtp.len() / 2],
            rtp[rtp.len() - 1],
            rtp.iter().map(|v| format!("{v:.1}")).collect::<Vec<_>>().join(", ")
        );
    }
    if part("load") {
        let (idle, busy, lines, rss, threads) = load(calls);
        println!(
            "load: {calls} PCMA calls: voiceagent CPU {:.1} % of a core (idle {:.1} %), {:.3} % per call, RSS {} MB",
            busy * 100.0,
            idle * 100.0,
            (busy - idle) * 100.0 / f64::from(calls),
            rss / 1024
        );
        let per_call =
            |name: &str| threads.get(name).copied().unwrap_or(0.0) * 100.0 / f64::from(calls);
        // tokio's workers run every call's bridge (resampling, JSON, base64, WebSocket) and
        // the API; PJSIP's media runs on its own threads ("pjsua", its clock and ioqueue).
        println!(
            "load: per thread, % of a core per call: {}",
            threads
                .iter()
                .filter(|(_, cores)| **cores > 0.0)
                .map(|(name, _)| format!("{name} {:.3}", per_call(name)))
                .collect::<Vec<_>>()
                .join(", ")
        );
        println!(
            "load: bridge (tokio workers) {:.3} % of a core per call",
            per_call("tokio-rt-worker")
        );
        println!("load: {}", summarize(&lines));
    }
}
