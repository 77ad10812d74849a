//! Spawning `voiceagent` as a real process for end-to-end tests: free ports, a scratch data
//! directory, the repository's catalog, logs captured to a file that tests wait on.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use integration_tests::ports;
use integration_tests::process::scratch_dir;

/// A running `voiceagent run`, stopped (SIGTERM, then SIGKILL) on drop.
pub struct Voiceagent {
    child: Option<Child>,
    pub sip_port: u16,
    pub api_addr: String,
    pub log: PathBuf,
    pub data_dir: PathBuf,
    _dir: tempfile::TempDir,
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

impl Voiceagent {
    /// Starts `voiceagent <args>` in IP mode on loopback with `extra` environment on top.
    pub fn spawn_with(args: &[&str], extra: &[(&str, String)]) -> Voiceagent {
        let dir = scratch_dir("voiceagent").unwrap();
        let sip_port = ports::sip_port().unwrap();
        let api_addr = format!("127.0.0.1:{}", ports::tcp_port().unwrap());
        let log = dir.path().join("voiceagent.log");
        let data_dir = dir.path().join("data");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_voiceagent"));
        cmd.args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("SIP_BIND", "127.0.0.1")
            .env("SIP_PORT", sip_port.to_string())
            .env("SIP_TRANSPORT", "udp")
            .env("RTP_PORT_START", ports::rtp_range(40).unwrap().to_string())
            .env("RTP_PORT_RANGE", "40")
            .env("DATA_DIR", &data_dir)
            .env("CATALOG_DIR", repo_root().join("data/catalog"))
            .env("API_ADDR", &api_addr)
            .env("LOG_LEVEL", "info")
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::options().append(true).open(&log).unwrap());
        for (k, v) in extra {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("spawning voiceagent");
        Voiceagent {
            child: Some(child),
            sip_port,
            api_addr,
            log,
            data_dir,
            _dir: dir,
        }
    }

    /// `voiceagent run`, waiting until the SIP engine listens.
    pub fn run(extra: &[(&str, String)]) -> Voiceagent {
        let mut va = Self::spawn_with(&["run"], extra);
        va.wait_log("SIP engine started", Duration::from_secs(20));
        va
    }

    pub fn uri(&self) -> String {
        format!("sip:agent@127.0.0.1:{}", self.sip_port)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log contains `needle` (the process's own progress, not a fixed sleep).
    pub fn wait_log(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let text = self.log_text();
            if let Some(line) = text.lines().find(|l| l.contains(needle)) {
                return line.to_string();
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("voiceagent exited ({status}) before logging {needle:?}:\n{text}");
            }
            assert!(
                Instant::now() < deadline,
                "voiceagent did not log {needle:?} within {timeout:?}:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends SIGTERM and waits for the exit status (bounded).
    pub fn terminate(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let child = self.child.as_mut()?;
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe { libc_kill(child.id() as i32, 15) };
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Waits for the process to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let child = self.child.as_mut()?;
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

impl Drop for Voiceagent {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if child.try_wait().ok().flatten().is_none() {
                // SAFETY: kill(2) on our own child.
                unsafe { libc_kill(child.id() as i32, 15) };
                let deadline = Instant::now() + Duration::from_secs(10);
                while Instant::now() < deadline {
                    if let Ok(Some(_)) = child.try_wait() {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}
