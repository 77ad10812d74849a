//! Child processes that cannot outlive a test, and scratch directories.
//!
//! A test that panics half-way must not leave a baresip or SIPp running: it
//! would hold ports and keep sending RTP into the next test. [`ChildGuard`]
//! kills its process on drop. Scratch directories live under
//! `target/integration-tests/tmp` so they are easy to find and never in the
//! source tree; set `HARNESS_KEEP_TMP=1` to keep them for debugging.

use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

/// A spawned process that is killed and reaped when dropped.
#[derive(Debug)]
pub struct ChildGuard {
    child: Option<Child>,
    name: String,
}

impl ChildGuard {
    pub fn new(name: impl Into<String>, child: Child) -> Self {
        Self {
            child: Some(child),
            name: name.into(),
        }
    }

    pub fn id(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The exit status if the process has ended, without blocking.
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>> {
        match self.child.as_mut() {
            Some(c) => c
                .try_wait()
                .with_context(|| format!("polling {}", self.name)),
            None => Ok(None),
        }
    }

    /// Waits for the process to exit on its own; kills it and fails after `timeout`.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Result<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_wait()? {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                self.kill();
                anyhow::bail!("{} did not exit within {:?}; killed", self.name, timeout);
            }
            // Polling a child's exit has no blocking-with-timeout form in std;
            // this short poll is not synchronisation with the peer's protocol.
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills and reaps the process (no-op if it already ended).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The cargo target directory (`CARGO_TARGET_DIR`, else `<workspace>/target`).
pub fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(|p| p.join("target"))
        .unwrap_or_else(|| PathBuf::from("target"))
}

/// `tests/data` of this crate.
pub fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data")
}

/// A fresh, uniquely named scratch directory; removed on drop unless
/// `HARNESS_KEEP_TMP=1`.
pub fn scratch_dir(prefix: &str) -> Result<tempfile::TempDir> {
    let root = target_dir().join("integration-tests").join("tmp");
    std::fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
    let mut dir = tempfile::Builder::new()
        .prefix(&format!("{prefix}-"))
        .tempdir_in(&root)
        .with_context(|| format!("creating a scratch dir in {}", root.display()))?;
    if std::env::var_os("HARNESS_KEEP_TMP").is_some_and(|v| v == "1") {
        dir.disable_cleanup(true);
    }
    Ok(dir)
}

/// The last `n` lines of a log file, for error messages.
pub fn log_tail(path: &Path, n: usize) -> String {
    let text = match std::fs::read(path) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) => return format!("<cannot read {}: {e}>", path.display()),
    };
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
