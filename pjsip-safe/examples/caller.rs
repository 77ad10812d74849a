//! A load caller on the engine: places N Opus calls to one target, streams a tone into each
//! call's downlink for as long as the call lasts, and prints what it measured.
//!
//! It exists for the engine benchmark (`tests/benches/engine_load.rs`): pjsua is a process-wide
//! singleton, so the Opus load on an answering engine (our echo example, or PJSIP's pjsua) has
//! to come from a second engine process. SIPp cannot speak Opus.
//!
//! ```text
//! cargo run --release -p pjsip-safe --example caller -- \
//!     --target sip:echo@127.0.0.1:5080 --calls 50 --hold-s 20
//! ```
//!
//! At the end it prints one `caller: summary key=value ...` line (calls placed and connected,
//! RTP received and lost as seen by this side's streams, frames heard back, jitter-buffer delay)
//! and one `caller: port-totals ...` line with its own media-port figures.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use pjsip_safe::media::{RecvTimeoutError, FRAME_SAMPLES, SAMPLE_RATE};
use pjsip_safe::{CallId, CallMedia, Engine, EngineConfig, Event};

#[derive(Parser, Debug)]
#[command(about = "Places N calls to a SIP target and streams a tone into each")]
struct Args {
    /// SIP URI to call, e.g. sip:echo@127.0.0.1:5080.
    #[arg(long)]
    target: String,
    /// Number of calls to place.
    #[arg(long, default_value_t = 10)]
    calls: u32,
    /// Calls placed per second.
    #[arg(long, default_value_t = 20)]
    rate: u32,
    /// How long each call lasts after the last one was placed, in seconds.
    #[arg(long, default_value_t = 10)]
    hold_s: u64,
    /// Codec to offer (PJSIP codec id prefix).
    #[arg(long, default_value = "opus/48000")]
    codec: String,
    /// Address to bind SIP and RTP to.
    #[arg(long, default_value = "127.0.0.1")]
    bind: IpAddr,
    /// Our SIP port.
    #[arg(long, default_value_t = 5090)]
    port: u16,
    /// First RTP port.
    #[arg(long, default_value_t = 20000)]
    rtp_port: u16,
}

/// Streams a 440 Hz tone into the call, one frame per frame heard (the bridge clock paces both
/// directions), and counts the frames heard.
fn stream(mut media: CallMedia, heard: Arc<AtomicU64>) {
    let tone: Vec<i16> = (0..SAMPLE_RATE as usize / 10)
        .map(|i| {
            let t = i as f64 / f64::from(SAMPLE_RATE);
            (8000.0 * (2.0 * std::f64::consts::PI * 440.0 * t).sin()) as i16
        })
        .collect();
    let mut pos = 0usize;
    let mut frame = [0i16; FRAME_SAMPLES];
    let mut seq = 0u64;
    loop {
        match media.uplink.recv_timeout(Duration::from_millis(200)) {
            Ok(_) => {
                heard.fetch_add(1, Ordering::Relaxed);
                for s in frame.iter_mut() {
                    *s = tone[pos];
                    pos = (pos + 1) % tone.len();
                }
                if media.downlink.push(seq, &frame).is_ok() {
                    media.downlink.forget(seq.saturating_sub(10));
                    seq += 1;
                }
            }
            Err(RecvTimeoutError::Timeout) => continue,
            Err(_) => break,
        }
    }
}

#[derive(Default)]
struct Summary {
    placed: u32,
    failed_to_place: u32,
    connected: u32,
    ended: u32,
    stats_read: u32,
    rx_packets: u64,
    rx_lost: u64,
    tx_packets: u64,
    jb_ms_sum: u64,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let args = Args::parse();
    let config = EngineConfig {
        bind: args.bind,
        sip_port: args.port,
        max_calls: args.calls.max(1),
        rtp_port_start: args.rtp_port,
        rtp_port_range: u16::try_from(args.calls.saturating_mul(2).saturating_add(20))
            .unwrap_or(u16::MAX)
            .max(100)
            .min(65535 - args.rtp_port),
        codecs: vec![args.codec.clone()],
        log_level: 1,
        ..EngineConfig::default()
    };
    let (engine, events) = Engine::start(config)?;
    let handle = engine.handle();
    println!("caller: ready on port {}", args.port);

    let heard = Arc::new(AtomicU64::new(0));
    let mut summary = Summary::default();
    let mut active: HashMap<CallId, bool> = HashMap::new();
    let gap = Duration::from_secs_f64(1.0 / f64::from(args.rate.max(1)));
    let start = Instant::now();
    let mut next_call = start;
    let mut placed_all_at: Option<Instant> = None;
    // Hard bound for the whole run, whatever the peer does.
    let give_up = start + gap * args.calls + Duration::from_secs(args.hold_s + 30);

    loop {
        let now = Instant::now();
        if now >= give_up {
            eprintln!("caller: giving up after {:?}", now - start);
            break;
        }
        if summary.placed + summary.failed_to_place < args.calls && now >= next_call {
            match handle.make_call(args.target.clone()).wait() {
                Ok(call) => {
                    summary.placed += 1;
                    active.insert(call, false);
                }
                Err(e) => {
                    summary.failed_to_place += 1;
                    eprintln!("caller: make_call: {e}");
                }
            }
            next_call += gap;
            if summary.placed + summary.failed_to_place == args.calls {
                placed_all_at = Some(Instant::now());
            }
        }
        if placed_all_at.is_some_and(|t| now >= t + Duration::from_secs(args.hold_s)) {
            break;
        }
        match events.recv_timeout(Duration::from_millis(5)) {
            Ok(Event::MediaActive { call, media, .. }) => {
                if let Some(media) = media {
                    summary.connected += 1;
                    active.insert(call, true);
                    let heard = heard.clone();
                    std::thread::spawn(move || stream(media, heard));
                }
            }
            Ok(Event::CallEnded {
                call, code, reason, ..
            }) => {
                summary.ended += 1;
                if active.remove(&call).is_some() {
                    eprintln!("caller: {call} ended early ({code} {reason})");
                }
            }
            Ok(_) | Err(flume::RecvTimeoutError::Timeout) => {}
            Err(flume::RecvTimeoutError::Disconnected) => break,
        }
    }

    // Stream statistics of every call still up, then hang up.
    for (&call, &connected) in &active {
        if !connected {
            continue;
        }
        if let Ok(stats) = handle.stats(call).wait() {
            summary.stats_read += 1;
            summary.rx_packets += u64::from(stats.rx_packets);
            summary.rx_lost += u64::from(stats.rx_lost);
            summary.tx_packets += u64::from(stats.tx_packets);
            summary.jb_ms_sum += u64::from(stats.jitter_buffer_ms);
        }
    }
    for &call in active.keys() {
        let _ = handle.hangup(call, 200).wait();
    }
    engine.shutdown()?;
    println!(
        "caller: summary placed={} failed_to_place={} connected={} ended_early={} stats={} \
         rx_packets={} rx_lost={} tx_packets={} jb_ms_mean={:.1} frames_heard={}",
        summary.placed,
        summary.failed_to_place,
        summary.connected,
        summary.ended,
        summary.stats_read,
        summary.rx_packets,
        summary.rx_lost,
        summary.tx_packets,
        summary.jb_ms_sum as f64 / f64::from(summary.stats_read.max(1)),
        heard.load(Ordering::Relaxed)
    );
    println!("caller: port-totals {}", pjsip_safe::port_totals());
    Ok(())
}
