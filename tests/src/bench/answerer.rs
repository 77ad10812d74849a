//! The processes of the benchmark: the answering side (our `echo` example or PJSIP's
//! `pjsua --auto-loop`, configured alike) and the Opus load caller (`caller` example).
//!
//! Both examples print one machine-readable line at exit (`... port-totals key=value ...`,
//! `caller: summary key=value ...`), which is how figures measured inside another process
//! (callback durations, queue counters, stream statistics) reach the benchmark.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use pjsip_safe::PortTotals;

use crate::process::{log_tail, scratch_dir, target_dir, ChildGuard};

/// Builds the `echo` and `caller` examples in release mode (a no-op when up to date) and
/// returns the directory holding them.
pub fn build_examples() -> Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--release", "-p", "pjsip-safe"])
        .args(["--example", "echo", "--example", "caller"])
        .status()
        .context("running cargo build for the examples")?;
    if !status.success() {
        bail!("building the echo and caller examples failed: {status}");
    }
    Ok(target_dir().join("release").join("examples"))
}

/// PJSIP's own `pjsua`, built with the engine's PJSIP tree.
pub fn pjsua_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../build/cache/prefix/bin/pjsua")
        .canonicalize()
        .unwrap_or_else(|_| PathBuf::from("build/cache/prefix/bin/pjsua"))
}

/// Which program answers the calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// pjsip-safe's echo example, `--delay-ms 0`.
    Echo,
    /// `pjsua --auto-loop`.
    Pjsua,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Echo => "echo (pjsip-safe)",
            Kind::Pjsua => "pjsua --auto-loop",
        }
    }
}

/// Settings both answerers get, so they do the same media work.
#[derive(Debug, Clone, Copy)]
pub struct AnswerSpec {
    pub sip_port: u16,
    pub rtp_port: u16,
    pub max_calls: u32,
    /// The echo example exits (and prints its totals) after this long; pjsua is killed.
    pub exit_after: Duration,
}

/// A running answerer.
pub struct Answerer {
    pub kind: Kind,
    child: ChildGuard,
    /// pjsua quits on EOF of its console, so its stdin stays open while it runs.
    _stdin: Option<ChildStdin>,
    log: PathBuf,
    _dir: tempfile::TempDir,
    pub command: String,
}

fn spawn_logged(name: &str, mut cmd: Command, dir: &Path, keep_stdin: bool) -> Result<Child> {
    let log = std::fs::File::create(dir.join(format!("{name}.log")))?;
    cmd.stdout(log.try_clone()?)
        .stderr(log)
        .stdin(if keep_stdin {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .spawn()
        .with_context(|| format!("spawning {name}"))
}

/// The command line as text, for the docs.
fn describe(cmd: &Command) -> String {
    let mut s = Path::new(cmd.get_program())
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

impl Answerer {
    pub fn spawn(kind: Kind, spec: AnswerSpec, examples: &Path) -> Result<Self> {
        let dir = scratch_dir("answerer")?;
        let mut cmd = match kind {
            Kind::Echo => {
                let mut c = Command::new(examples.join("echo"));
                c.args(["--bind", "127.0.0.1", "--delay-ms", "0"])
                    .args(["--port", &spec.sip_port.to_string()])
                    .args(["--rtp-port", &spec.rtp_port.to_string()])
                    .args(["--max-calls", &spec.max_calls.to_string()])
                    .args(["--exit-after-s", &spec.exit_after.as_secs().to_string()])
                    .env("RUST_LOG", "warn");
                c
            }
            Kind::Pjsua => {
                let mut c = Command::new(pjsua_path());
                // The echo's engine settings, in pjsua's words: 48 kHz bridge, null audio,
                // no VAD, no echo canceller, resampling quality 4, UDP on loopback.
                c.args([
                    "--null-audio",
                    "--clock-rate",
                    "48000",
                    "--auto-answer",
                    "200",
                ])
                .args([
                    "--auto-loop",
                    "--no-vad",
                    "--ec-tail",
                    "0",
                    "--quality",
                    "4",
                ])
                .args([
                    "--no-tcp",
                    "--ip-addr",
                    "127.0.0.1",
                    "--bound-addr",
                    "127.0.0.1",
                ])
                .args(["--snd-auto-close", "-1"])
                .arg(format!("--local-port={}", spec.sip_port))
                .arg(format!("--rtp-port={}", spec.rtp_port))
                .arg(format!("--max-calls={}", spec.max_calls.min(255)))
                .args(["--log-level", "2", "--app-log-level", "2"]);
                c
            }
        };
        let command = describe(&cmd);
        cmd.current_dir(dir.path());
        let name = match kind {
            Kind::Echo => "echo",
            Kind::Pjsua => "pjsua",
        };
        let mut child = spawn_logged(name, cmd, dir.path(), kind == Kind::Pjsua)?;
        let stdin = child.stdin.take();
        let me = Self {
            kind,
            child: ChildGuard::new(name, child),
            _stdin: stdin,
            log: dir.path().join(format!("{name}.log")),
            _dir: dir,
            command,
        };
        me.wait_ready(spec.sip_port)?;
        Ok(me)
    }

    pub fn pid(&self) -> u32 {
        self.child.id().unwrap_or(0)
    }

    /// Waits until the SIP port is taken by the answerer (bounded).
    fn wait_ready(&self, sip_port: u16) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let ready = match self.kind {
                Kind::Echo => std::fs::read_to_string(&self.log)
                    .unwrap_or_default()
                    .contains("echo: PJSIP"),
                Kind::Pjsua => std::net::UdpSocket::bind(("127.0.0.1", sip_port)).is_err(),
            };
            if ready {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "{} did not start within 15 s:\n{}",
                    self.kind.name(),
                    log_tail(&self.log, 20)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log_tail(&self, n: usize) -> String {
        log_tail(&self.log, n)
    }

    /// Ends the answerer. The echo example is left to exit on its own (`--exit-after-s`, then a
    /// graceful shutdown) and its `port-totals` line is returned; pjsua is killed.
    pub fn finish(mut self, timeout: Duration) -> Result<Option<PortTotals>> {
        match self.kind {
            Kind::Pjsua => {
                self.child.kill();
                Ok(None)
            }
            Kind::Echo => {
                self.child.wait_timeout(timeout)?;
                let log = std::fs::read_to_string(&self.log)?;
                let line = log
                    .lines()
                    .find_map(|l| l.strip_prefix("echo: port-totals "))
                    .context("the echo example printed no port-totals line")?;
                line.parse()
                    .map(Some)
                    .map_err(|e| anyhow::anyhow!("port-totals: {e}"))
            }
        }
    }
}

/// What the Opus caller reported.
#[derive(Debug, Clone)]
pub struct CallerReport {
    pub summary: BTreeMap<String, f64>,
    pub totals: PortTotals,
    pub command: String,
}

/// Runs the `caller` example to completion (bounded by `timeout`).
pub fn run_caller(
    examples: &Path,
    target: &str,
    calls: u32,
    hold: Duration,
    sip_port: u16,
    rtp_port: u16,
    timeout: Duration,
) -> Result<CallerReport> {
    let dir = scratch_dir("caller")?;
    let mut cmd = Command::new(examples.join("caller"));
    cmd.args(["--target", target, "--calls", &calls.to_string()])
        .args(["--rate", "25", "--hold-s", &hold.as_secs().to_string()])
        .args(["--port", &sip_port.to_string()])
        .args(["--rtp-port", &rtp_port.to_string()])
        .env("RUST_LOG", "warn");
    let command = describe(&cmd);
    let child = spawn_logged("caller", cmd, dir.path(), false)?;
    let mut guard = ChildGuard::new("caller", child);
    let status = guard.wait_timeout(timeout)?;
    let log_path = dir.path().join("caller.log");
    let log = std::fs::read_to_string(&log_path)?;
    if !status.success() {
        bail!("caller failed ({status}):\n{}", log_tail(&log_path, 20));
    }
    let summary_line = log
        .lines()
        .find_map(|l| l.strip_prefix("caller: summary "))
        .context("the caller printed no summary")?;
    let summary = summary_line
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .filter_map(|(k, v)| Some((k.to_owned(), v.parse().ok()?)))
        .collect();
    let totals = log
        .lines()
        .find_map(|l| l.strip_prefix("caller: port-totals "))
        .context("the caller printed no port-totals")?
        .parse()
        .map_err(|e| anyhow::anyhow!("caller port-totals: {e}"))?;
    Ok(CallerReport {
        summary,
        totals,
        command,
    })
}
