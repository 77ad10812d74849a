//! The classic telephony echo test on the engine: answers calls in IP mode and plays every
//! caller's audio back to them after a delay.
//!
//! ```text
//! cargo run --release -p pjsip-safe --example echo -- --bind 127.0.0.1 --port 5080 --delay-ms 500
//! baresip: /dial sip:echo@127.0.0.1:5080
//! ```
//!
//! With `--delay-ms 0` the echo is as fast as the engine allows, which is how the benchmarks
//! measure its round trip.

use std::net::IpAddr;
use std::time::Duration;

use clap::Parser;
use pjsip_safe::media::{FRAME_SAMPLES, SAMPLE_RATE};
use pjsip_safe::{AnswerMode, CallMedia, Engine, EngineConfig, Event};

#[derive(Parser, Debug)]
#[command(about = "Answers SIP calls and echoes the caller's audio back")]
struct Args {
    /// SIP port to listen on (UDP and TCP).
    #[arg(long, default_value_t = 5080)]
    port: u16,
    /// Address to bind SIP and RTP to.
    #[arg(long, default_value = "0.0.0.0")]
    bind: IpAddr,
    /// Delay before the caller hears themselves, in milliseconds.
    #[arg(long, default_value_t = 500)]
    delay_ms: u32,
    /// Calls beyond this many get 486 Busy Here.
    #[arg(long, default_value_t = 16)]
    max_calls: u32,
    /// First RTP port.
    #[arg(long, default_value_t = 4000)]
    rtp_port: u16,
    /// Stop after this many seconds (0 = run until Ctrl-C / SIGTERM kills the process).
    #[arg(long, default_value_t = 0)]
    exit_after_s: u64,
}

fn echo(call: pjsip_safe::CallId, mut media: CallMedia, delay_ms: u32) {
    // Prefill the delay as silence, then play each frame as it arrives: the echo stays exactly
    // `delay_ms` behind because both directions run on the same bridge clock.
    let delay = vec![0i16; (SAMPLE_RATE / 1000 * delay_ms) as usize];
    if !delay.is_empty() && media.downlink.push(0, &delay).is_err() {
        return;
    }
    loop {
        match media.uplink.recv_timeout(Duration::from_millis(200)) {
            Ok(frame) => {
                if let Err(e) = media.downlink.push(frame.seq, &frame.samples) {
                    eprintln!("{call}: downlink: {e}");
                }
                media.downlink.forget(frame.seq.saturating_sub(10));
            }
            Err(pjsip_safe::media::RecvTimeoutError::Timeout) => continue,
            Err(_) => break,
        }
    }
    debug_assert_eq!(FRAME_SAMPLES, 960);
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    let config = EngineConfig {
        bind: args.bind,
        sip_port: args.port,
        max_calls: args.max_calls,
        rtp_port_start: args.rtp_port,
        // (benchmark addition) every call needs an RTP+RTCP pair; the default range of 100
        // ports caps the echo at about 50 calls.
        rtp_port_range: u16::try_from(args.max_calls.saturating_mul(2).saturating_add(20))
            .unwrap_or(u16::MAX)
            .max(100)
            .min(65535 - args.rtp_port),
        answer: AnswerMode::Immediate,
        ..EngineConfig::default()
    };
    let (engine, events) = Engine::start(config)?;
    let info = engine.info();
    println!(
        "echo: PJSIP {} listening on {}; codecs {}",
        info.pjsip_version,
        info.sip_addresses.join(", "),
        info.enabled_codecs().join(", ")
    );
    let deadline = (args.exit_after_s > 0)
        .then(|| std::time::Instant::now() + Duration::from_secs(args.exit_after_s));
    loop {
        if deadline.is_some_and(|d| std::time::Instant::now() >= d) {
            break;
        }
        let event = match events.recv_timeout(Duration::from_millis(200)) {
            Ok(event) => event,
            Err(flume::RecvTimeoutError::Timeout) => continue,
            Err(flume::RecvTimeoutError::Disconnected) => break,
        };
        match event {
            Event::IncomingCall { call, from, .. } => println!("echo: {call} from {from}"),
            Event::MediaActive { call, info, media } => {
                println!("echo: {call} media {}/{}", info.codec, info.clock_rate);
                if let Some(media) = media {
                    let delay = args.delay_ms;
                    std::thread::spawn(move || echo(call, media, delay));
                }
            }
            Event::Dtmf { call, digit } => println!("echo: {call} DTMF {digit}"),
            Event::CallEnded {
                call, code, reason, ..
            } => {
                println!("echo: {call} ended ({code} {reason})")
            }
            other => tracing::debug!("{other:?}"),
        }
    }
    engine.shutdown()?;
    // (benchmark addition) callback durations and queue counters of every call, one line that
    // tests/src/bench parses.
    println!("echo: port-totals {}", pjsip_safe::port_totals());
    Ok(())
}
