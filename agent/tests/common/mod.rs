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

// ---- Scripted Realtime backends and recording clocks (bridge tests) ----

use agent::realtime::server::script::Script;
use agent::realtime::server::{
    LocalRealtimeServer, Pacing, ServerConfig, ServerHandle, SessionRecord,
};

/// The API key the scripted backend requires (a dummy; the server refuses any other).
pub const TEST_API_KEY: &str = "sk-test-bridge-0123456789";

/// A strict local Realtime server with a test's own script, running in the test process so the
/// test can read what each session received. Shut down on drop.
pub struct ScriptedBackend {
    pub rt: tokio::runtime::Runtime,
    server: Option<ServerHandle>,
}

impl ScriptedBackend {
    pub fn start(script: Script, pacing: Pacing) -> ScriptedBackend {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let server = rt
            .block_on(LocalRealtimeServer::start(ServerConfig {
                required_api_key: Some(TEST_API_KEY.into()),
                script,
                pacing,
                ..ServerConfig::default()
            }))
            .unwrap();
        ScriptedBackend {
            rt,
            server: Some(server),
        }
    }

    fn server(&self) -> &ServerHandle {
        self.server.as_ref().expect("running")
    }

    /// Environment that points `voiceagent run` at this server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("OPENAI_API_KEY", TEST_API_KEY.to_string()),
            ("OPENAI_REALTIME_URL", self.server().url()),
        ]
    }

    pub fn sessions(&self) -> Vec<SessionRecord> {
        self.server().sessions()
    }

    /// Waits (on record changes, no polling sleeps) until `check` holds for some session.
    pub fn wait_for<T>(
        &self,
        what: &str,
        timeout: Duration,
        check: impl FnMut(&[SessionRecord]) -> Option<T>,
    ) -> T {
        self.rt
            .block_on(self.server().wait_for(timeout, check))
            .unwrap_or_else(|e| panic!("{what}: {e:#}\nsessions: {:#?}", summary(&self.sessions())))
    }

    /// The time at which `check` first holds, taken in this process right when the record
    /// changed (the server runs here, so this is the moment the server acted).
    pub fn wait_instant(
        &self,
        what: &str,
        timeout: Duration,
        mut check: impl FnMut(&[SessionRecord]) -> bool,
    ) -> Instant {
        self.wait_for(what, timeout, |s| check(s).then(Instant::now))
    }
}

impl Drop for ScriptedBackend {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            self.rt.block_on(server.shutdown());
        }
    }
}

/// A short description of sessions for failure messages (no audio).
pub fn summary(sessions: &[SessionRecord]) -> Vec<String> {
    sessions
        .iter()
        .map(|s| {
            let kinds: Vec<&str> = s
                .client_events
                .iter()
                .map(|e| e.kind.as_str())
                .filter(|k| *k != "input_audio_buffer.append")
                .collect();
            format!(
                "{}: client {:?}; {} ms input; truncates {:?}; errors {:?}; end {:?}",
                s.session_id,
                kinds,
                s.input_audio.len() / 24,
                s.truncates,
                s.errors,
                s.end
            )
        })
        .collect()
}

/// A phrase as PCM16 at 24 kHz without padding (what a scripted reply speaks).
pub fn phrase_24k(phrase: integration_tests::speech::Phrase) -> Vec<i16> {
    let path = integration_tests::speech::padded_phrase_wav(phrase, 24000, 0, 0).unwrap();
    integration_tests::audio::Audio::read_wav(&path)
        .unwrap()
        .to_i16()
}

/// Watches baresip's decoder recording grow, to map positions in it to wall-clock time.
///
/// baresip writes each decoded packet as it arrives, so "the file reached N bytes at time T"
/// says when the caller heard sample N. Sampled every 2 ms by a thread; the error is one
/// sampling interval plus the write, always late (so measured latencies err on the long side).
pub struct RecordingClock {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<Vec<(Instant, u64)>>>,
}

impl RecordingClock {
    /// `rec_dir` is baresip's `snd_path`; the newest `-dec.wav` in it is watched.
    pub fn start(rec_dir: PathBuf) -> RecordingClock {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut samples: Vec<(Instant, u64)> = Vec::new();
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                let newest = std::fs::read_dir(&rec_dir).ok().and_then(|d| {
                    d.filter_map(|e| e.ok().map(|e| e.path()))
                        .filter(|p| p.to_string_lossy().ends_with("-dec.wav"))
                        .max()
                });
                if let Some(len) = newest
                    .and_then(|p| std::fs::metadata(p).ok())
                    .map(|m| m.len())
                {
                    if samples.last().is_none_or(|(_, l)| *l != len) {
                        samples.push((Instant::now(), len));
                    }
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            samples
        });
        RecordingClock {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops watching; returns (time, file length in bytes) at every observed change.
    pub fn finish(mut self) -> Vec<(Instant, u64)> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread
            .take()
            .map(|t| t.join().unwrap())
            .unwrap_or_default()
    }
}

impl Drop for RecordingClock {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// baresip's recording directory (next to its log).
pub fn baresip_rec_dir(log_path: &Path) -> PathBuf {
    log_path.parent().unwrap().join("rec")
}

/// Mono samples of a recording at its rate (baresip records Opus as stereo; take channel 0).
pub fn first_channel(path: &Path) -> (u32, Vec<f32>) {
    let mut r = hound::WavReader::open(path).unwrap();
    let spec = r.spec();
    let ch = spec.channels as usize;
    let all: Vec<f32> = r
        .samples::<i16>()
        .map(|s| f32::from(s.unwrap()) / 32768.0)
        .collect();
    (spec.sample_rate, all.chunks(ch).map(|c| c[0]).collect())
}

/// RMS in dBFS of `samples[from..to]`.
pub fn rms_dbfs(samples: &[f32], from: usize, to: usize) -> f64 {
    let s = &samples[from.min(samples.len())..to.min(samples.len())];
    if s.is_empty() {
        return -120.0;
    }
    let e: f64 = s.iter().map(|x| f64::from(*x) * f64::from(*x)).sum::<f64>() / s.len() as f64;
    10.0 * e.max(1e-12).log10()
}

/// The first window of `win` samples at or after `from` whose level is above (`loud`) or below
/// (`!loud`) `dbfs`; returns its start.
pub fn find_level(
    samples: &[f32],
    from: usize,
    win: usize,
    dbfs: f64,
    loud: bool,
) -> Option<usize> {
    let mut i = from;
    while i + win <= samples.len() {
        let l = rms_dbfs(samples, i, i + win);
        if (l > dbfs) == loud {
            return Some(i);
        }
        i += win / 2;
    }
    None
}

/// Serialises the call tests of one test binary: each spawns voiceagent and baresip, and on a
/// small machine parallel calls would measure each other's CPU contention, not the bridge.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// A caller microphone that stays silent for the whole test (aufile needs a file).
pub fn silent_caller_wav() -> PathBuf {
    integration_tests::speech::padded_phrase_wav(
        integration_tests::speech::Phrase::EnglishCount,
        48000,
        60_000,
        0,
    )
    .unwrap()
}

impl Voiceagent {
    /// The process id (for CPU measurements).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, |c| c.id())
    }
}
