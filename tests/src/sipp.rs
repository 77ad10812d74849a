//! SIPp 3.6 runs with the scenarios in `tests/data/sipp`.
//!
//! Scenario files are templates: `{{NAME}}` placeholders are replaced by the
//! harness before SIPp reads them, because SIPp 3.6 does not expand `-key`
//! values inside action attributes (file names, pause lengths). SIPp's own
//! `[keywords]` are left alone. Every run gets a scratch dir with the rendered
//! scenario, the error trace and the statistics CSV, and the run's verdict is
//! read from the CSV's final `SuccessfulCall(C)` / `FailedCall(C)` counters
//! and SIPp's exit code (0: all calls succeeded, 1: some failed, 97/99:
//! stopped early or no call, 255/254: fatal).
//!
//! Scenarios:
//! - `uac_g711_rtp.xml`: one call, PCMA or PCMU, streams a raw G.711 file
//!   with `rtp_stream`; SDP points the far end's RTP at the harness's
//!   [`crate::rtp::RtpListener`].
//! - `uas_registrar.xml`: 401 digest challenge, `verifyauth`, 200 with
//!   Contact and `Expires: {{EXPIRES}}` (default 3600), re-REGISTER,
//!   unregister (`Expires: 0`);
//!   `wrong credentials get 403 and count as a failed call.
//! - `uas_answer.xml`: answers an INVITE (outbound-call tests) and waits for
//!   BYE; `uas_refer.xml` additionally accepts a REFER with 202 + NOTIFY.
//! - `uac_load.xml`: the G.711 call for `-m N -l C` load runs.
//! - `uac_g711_symmetric.xml` / `uac_g711_dtmf.xml`: SIPp only signals, the
//!   harness's RTP socket sends and captures (the latter offers
//!   telephone-event, PT 101).
//! - `uac_call.xml`: a PCMA call SIPp ends after `CALL_MS`, logging when 180
//!   and 200 arrived; `uac_wait_bye.xml`: a call the far end must end;
//!   `uac_expect_reject.xml`: an INVITE that must get exactly `CODE`.
//! - `uac_malformed.xml`: garbage and malformed requests that must be answered
//!   with 4xx or ignored, never crash the server.
//! - `uac_hostile_requests.xml`: an answered caller's REFER (to `TARGET`), SUBSCRIBE,
//!   MESSAGE, PUBLISH and INVITE with Replaces, each expecting its refusal;
//!   `uac_flood_no_ack.xml`: INVITEs that are never ACKed (floods);
//!   `uac_forged_identity.xml`: a From display name holding another URI, and a
//!   P-Asserted-Identity.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::ports;
use crate::process::{data_dir, log_tail, scratch_dir, ChildGuard};

/// Path of a scenario template in `tests/data/sipp`.
pub fn scenario(name: &str) -> PathBuf {
    data_dir().join("sipp").join(name)
}

/// One SIPp invocation.
#[derive(Clone, Debug)]
pub struct SippRun {
    /// Template in `tests/data/sipp` (see [`scenario`]).
    pub scenario: PathBuf,
    /// `{{NAME}}` → value substitutions.
    pub vars: BTreeMap<String, String>,
    /// `host:port` to call (UAC scenarios); `None` for UAS scenarios.
    pub remote: Option<String>,
    /// Request-URI user (`-s`).
    pub service: Option<String>,
    /// Stop after this many calls (`-m`).
    pub calls: u32,
    /// Maximum simultaneous calls (`-l`).
    pub concurrent: Option<u32>,
    /// Calls per second (`-r`).
    pub rate: Option<u32>,
    /// Default `<pause/>` length (`-d`, ms).
    pub pause_ms: Option<u32>,
    /// Global timeout passed to SIPp (`-timeout`); the harness also kills it a
    /// little later.
    pub timeout: Duration,
    /// Extra raw arguments.
    pub extra_args: Vec<String>,
}

impl SippRun {
    pub fn new(scenario_name: &str) -> Self {
        Self {
            scenario: scenario(scenario_name),
            vars: BTreeMap::new(),
            remote: None,
            service: None,
            calls: 1,
            concurrent: None,
            rate: None,
            pause_ms: None,
            timeout: Duration::from_secs(20),
            extra_args: Vec::new(),
        }
    }

    pub fn var(mut self, name: &str, value: impl ToString) -> Self {
        self.vars.insert(name.to_owned(), value.to_string());
        self
    }

    pub fn remote(mut self, host_port: impl Into<String>) -> Self {
        self.remote = Some(host_port.into());
        self
    }

    pub fn service(mut self, user: impl Into<String>) -> Self {
        self.service = Some(user.into());
        self
    }

    pub fn calls(mut self, n: u32) -> Self {
        self.calls = n;
        self
    }

    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = t;
        self
    }
}

/// Replaces `{{NAME}}` placeholders; fails on any left unreplaced.
pub fn render_template(text: &str, vars: &BTreeMap<String, String>) -> Result<String> {
    let mut out = text.to_owned();
    for (k, v) in vars {
        out = out.replace(&format!("{{{{{k}}}}}"), v);
    }
    if let Some(start) = out.find("{{") {
        let name: String = out[start..].chars().take(40).collect();
        bail!("scenario placeholder {name}... has no value");
    }
    Ok(out)
}

/// A running SIPp; killed on drop.
pub struct Sipp {
    child: ChildGuard,
    dir: tempfile::TempDir,
    port: u16,
    timeout: Duration,
}

/// What a finished SIPp run reports.
#[derive(Clone, Debug)]
pub struct SippReport {
    pub status: ExitStatus,
    pub successful: u64,
    pub failed: u64,
    /// Content of the `-trace_err` file (unexpected messages), may be empty.
    pub errors: String,
    /// SIPp's screen output (last lines).
    pub screen_tail: String,
}

impl SippReport {
    /// Exit code 0 and every call successful.
    pub fn all_succeeded(&self, expected_calls: u64) -> bool {
        self.status.code() == Some(0) && self.successful == expected_calls && self.failed == 0
    }
}

impl std::fmt::Display for SippReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "sipp {}: {} successful, {} failed\nerrors:\n{}\nscreen:\n{}",
            self.status, self.successful, self.failed, self.errors, self.screen_tail
        )
    }
}

impl Sipp {
    /// Renders the scenario and starts SIPp on 127.0.0.1 at a free port.
    pub fn spawn(run: &SippRun) -> Result<Self> {
        let dir = scratch_dir("sipp")?;
        let port = ports::sip_port()?;
        let media = ports::rtp_range(16)?;
        let template = std::fs::read_to_string(&run.scenario)
            .with_context(|| format!("reading scenario {}", run.scenario.display()))?;
        let mut vars = run.vars.clone();
        vars.entry("PAUSE_MS".into())
            .or_insert_with(|| run.pause_ms.unwrap_or(1000).to_string());
        // uas_registrar.xml: the lifetime the registrar grants, unless a test wants a short one.
        vars.entry("EXPIRES".into())
            .or_insert_with(|| "3600".to_string());
        let rendered = render_template(&template, &vars)?;
        let sf = dir.path().join(
            run.scenario
                .file_name()
                .context("scenario path has no file name")?,
        );
        std::fs::write(&sf, rendered)?;

        let mut cmd = Command::new("sipp");
        cmd.arg("-sf")
            .arg(&sf)
            .args(["-i", "127.0.0.1", "-mi", "127.0.0.1"])
            .args(["-p", &port.to_string(), "-mp", &media.to_string()])
            .args(["-m", &run.calls.to_string()])
            .args(["-nostdin", "-trace_err", "-trace_stat", "-fd", "1"])
            .arg("-error_file")
            .arg(dir.path().join("errors.log"))
            .arg("-stf")
            .arg(dir.path().join("stat.csv"))
            .args(["-timeout", &format!("{}s", run.timeout.as_secs().max(1))])
            .args(["-timeout_error"]);
        if let Some(s) = &run.service {
            cmd.args(["-s", s]);
        }
        if let Some(l) = run.concurrent {
            cmd.args(["-l", &l.to_string()]);
        }
        if let Some(r) = run.rate {
            cmd.args(["-r", &r.to_string()]);
        }
        if let Some(d) = run.pause_ms {
            cmd.args(["-d", &d.to_string()]);
        }
        cmd.args(&run.extra_args);
        if let Some(r) = &run.remote {
            cmd.arg(r);
        }
        let screen = std::fs::File::create(dir.path().join("screen.log"))?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(screen.try_clone()?)
            .stderr(screen)
            .spawn()
            .context("spawning sipp (apt-get install sip-tester)")?;
        Ok(Self {
            child: ChildGuard::new("sipp", child),
            dir,
            port,
            timeout: run.timeout,
        })
    }

    /// The port SIPp listens on (UAS scenarios: where peers send to).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:<port>`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Waits for SIPp to end (its own `-timeout` plus a grace period) and
    /// reads its verdict.
    pub fn wait(mut self) -> Result<SippReport> {
        let status = self
            .child
            .wait_timeout(self.timeout + Duration::from_secs(5))?;
        let errors =
            std::fs::read_to_string(self.dir.path().join("errors.log")).unwrap_or_default();
        let screen_tail = log_tail(&self.dir.path().join("screen.log"), 25);
        let csv = std::fs::read_to_string(self.dir.path().join("stat.csv")).unwrap_or_default();
        let (successful, failed) = parse_stat_csv(&csv).unwrap_or((0, 0));
        Ok(SippReport {
            status,
            successful,
            failed,
            errors,
            screen_tail,
        })
    }
}

/// The final cumulative `SuccessfulCall(C)` and `FailedCall(C)` of a
/// `-trace_stat` CSV (`;`-separated, header first).
pub fn parse_stat_csv(csv: &str) -> Option<(u64, u64)> {
    let mut lines = csv.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<&str> = lines.next()?.split(';').collect();
    let last: Vec<&str> = lines.next_back()?.split(';').collect();
    let col = |name: &str| -> Option<u64> {
        let i = header.iter().position(|h| h.trim() == name)?;
        last.get(i)?.trim().parse().ok()
    };
    Some((col("SuccessfulCall(C)")?, col("FailedCall(C)")?))
}

/// Waits for the media port a scenario wrote with `<exec command="echo [$rport] > FILE"/>`
/// (from the SDP answer it received). `echo` writes "PORT\n" at once: the newline says the
/// write is complete.
pub fn wait_port_file(path: &Path, timeout: Duration) -> Result<u16> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Ok(text) = std::fs::read_to_string(path) {
            if let Some(port) = text.strip_suffix('\n').and_then(|t| t.trim().parse().ok()) {
                return Ok(port);
            }
        }
        if std::time::Instant::now() >= deadline {
            anyhow::bail!(
                "SIPp wrote no media port to {} within {timeout:?}",
                path.display()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_fail_on_missing_values() {
        let mut vars = BTreeMap::new();
        vars.insert("A".to_owned(), "1".to_owned());
        assert_eq!(
            render_template("x {{A}} [call_id]", &vars).unwrap(),
            "x 1 [call_id]"
        );
        assert!(render_template("{{A}} {{B}}", &vars).is_err());
    }

    #[test]
    fn stat_csv_counters_are_read_from_the_last_row() {
        let csv = "StartTime;SuccessfulCall(P);SuccessfulCall(C);FailedCall(P);FailedCall(C);\n\
                   t;0;0;0;0;\n\
                   t;1;3;0;1;\n";
        assert_eq!(parse_stat_csv(csv), Some((3, 1)));
        assert_eq!(parse_stat_csv(""), None);
    }

    #[test]
    fn every_scenario_renders_and_is_xml_shaped() {
        let mut vars = BTreeMap::new();
        for k in [
            "RTP_LISTEN_PORT",
            "PT",
            "CODEC",
            "AUDIO_FILE",
            "CALL_MS",
            "USER",
            "PASSWORD",
            "PAUSE_MS",
            "REFER_TO",
            "PORT_FILE",
            "ADDR_FILE",
            "EXPIRES",
            "CODE",
            "EVENTS_FILE",
            "WAIT_MS",
            "PHASE_MS",
            "TARGET",
        ] {
            vars.insert(k.to_owned(), "1".to_owned());
        }
        for entry in std::fs::read_dir(data_dir().join("sipp")).unwrap() {
            let p = entry.unwrap().path();
            if p.extension().is_some_and(|e| e == "xml") {
                let text = render_template(&std::fs::read_to_string(&p).unwrap(), &vars)
                    .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
                assert!(
                    text.contains("<scenario") && text.contains("</scenario>"),
                    "{}",
                    p.display()
                );
            }
        }
    }
}
