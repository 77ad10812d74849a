//! baresip 1.0 as a real SIP peer, driven over its `ctrl_tcp` JSON interface.
//!
//! What baresip 1.0 (Debian 12) offers, and how the harness uses it:
//! - **Microphone**: `aufile` plays a WAV (S16LE, mono, at `ausrc_srate`; the
//!   harness sets that rate from the file). It preloads the file and sends
//!   silence after its end, so give it padded speech
//!   ([`crate::speech::padded_phrase_wav`]).
//! - **Recording**: 1.0 has no file *player*; the `sndfile` audio filter
//!   writes what the decoder produced (`dump-<time>-dec.wav`, at the codec's
//!   rate: 48 kHz stereo for Opus, 8 kHz for G.711) and what was encoded
//!   (`-enc.wav`) into `snd_path`. No player module is loaded at all, so no
//!   sound device is needed. The WAV header is only finalised when the call's
//!   audio is destroyed, hence [`Baresip::finish`]: quit and wait for exit
//!   before reading.
//! - **Control and events**: `ctrl_tcp` (netstring-framed JSON) runs the same
//!   commands as the console (`dial`, `accept`, `hangup`, `quit`) and reports
//!   every UA event (`CALL_INCOMING`, `CALL_ESTABLISHED`, `CALL_CLOSED`,
//!   `REGISTER_OK`, ...). Waiting for an event is the only synchronisation.
//! - **DTMF**: `ctrl_tcp` cannot send digits in 1.0 (digits are single-key
//!   commands); the `cons` module accepts keys over UDP, so
//!   [`Baresip::send_dtmf`] sends them there during a call.
//! - **Loopback only**: `sip_listen 127.0.0.1:<port>` and `net_interface
//!   127.0.0.1` (without the latter baresip puts the first non-loopback
//!   address in its SDP); no STUN/ICE modules are loaded.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};

use crate::audio::Audio;
use crate::ports;
use crate::process::{log_tail, scratch_dir, ChildGuard};

/// How baresip answers incoming calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnswerMode {
    Manual,
    Auto,
}

/// Audio codecs baresip may load and offer, in preference order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    Opus,
    Pcma,
    Pcmu,
}

impl Codec {
    fn module(self) -> &'static str {
        match self {
            Codec::Opus => "opus.so",
            Codec::Pcma | Codec::Pcmu => "g711.so",
        }
    }

    fn sdp_name(self) -> &'static str {
        match self {
            Codec::Opus => "opus/48000/2",
            Codec::Pcma => "PCMA/8000/1",
            Codec::Pcmu => "PCMU/8000/1",
        }
    }
}

/// Registration against a registrar (a SIPp UAS or our engine).
#[derive(Clone, Debug)]
pub struct Registration {
    /// `host:port` of the registrar.
    pub registrar: String,
    pub password: String,
    /// Re-REGISTER interval in seconds.
    pub interval_s: u32,
}

/// Everything a test chooses about one baresip instance.
#[derive(Clone, Debug)]
pub struct BaresipConfig {
    /// User part of the account (`sip:<user>@127.0.0.1:<port>`).
    pub user: String,
    /// WAV played as the microphone (mono S16).
    pub source_wav: PathBuf,
    pub codecs: Vec<Codec>,
    pub answer_mode: AnswerMode,
    pub registration: Option<Registration>,
    /// Opus bitrate in bit/s.
    pub opus_bitrate: u32,
    /// CA certificates (PEM) to trust for SIP over TLS (`sip_cafile`); dial a
    /// `;transport=tls` URI to use it.
    pub tls_ca: Option<PathBuf>,
    /// Media encryption of the account (`mediaenc`), e.g. `srtp-mand`.
    pub media_encryption: Option<String>,
}

impl BaresipConfig {
    pub fn new(user: &str, source_wav: &Path) -> Self {
        Self {
            user: user.to_owned(),
            source_wav: source_wav.to_owned(),
            codecs: vec![Codec::Opus, Codec::Pcma, Codec::Pcmu],
            answer_mode: AnswerMode::Manual,
            registration: None,
            opus_bitrate: 32000,
            tls_ca: None,
            media_encryption: None,
        }
    }

    /// SIP over TLS trusting `ca`, and SRTP required (`mediaenc=srtp-mand`).
    pub fn tls_srtp(mut self, ca: &Path) -> Self {
        self.tls_ca = Some(ca.to_owned());
        self.media_encryption = Some("srtp-mand".into());
        self
    }

    pub fn codecs(mut self, codecs: &[Codec]) -> Self {
        self.codecs = codecs.to_vec();
        self
    }

    pub fn auto_answer(mut self) -> Self {
        self.answer_mode = AnswerMode::Auto;
        self
    }

    pub fn register(mut self, registration: Registration) -> Self {
        self.registration = Some(registration);
        self
    }
}

/// One UA event from `ctrl_tcp`.
#[derive(Clone, Debug)]
pub struct Event {
    /// `type`: `CALL_ESTABLISHED`, `CALL_CLOSED`, `CALL_INCOMING`, ...
    pub kind: String,
    pub peer_uri: Option<String>,
    pub param: Option<String>,
    pub raw: Value,
}

enum Message {
    Event(Event),
    Response {
        ok: bool,
        data: String,
        token: String,
    },
    Closed,
}

/// A running baresip; killed on drop.
pub struct Baresip {
    child: ChildGuard,
    dir: tempfile::TempDir,
    sip_port: u16,
    cons_port: u16,
    user: String,
    ctrl: TcpStream,
    rx: Receiver<Message>,
    /// Events received and not yet consumed by a `wait_*`.
    pending: Vec<Event>,
    /// Every event seen, for diagnostics.
    history: Vec<String>,
    next_token: u64,
}

/// Recordings of one finished baresip.
#[derive(Clone, Debug)]
pub struct Recordings {
    /// What the peer heard (decoder output), one file per call, oldest first.
    pub received: Vec<PathBuf>,
    /// What the peer sent (encoder input), one file per call, oldest first.
    pub sent: Vec<PathBuf>,
    /// baresip's console log.
    pub log: PathBuf,
    // Keeps the files alive as long as the caller holds this.
    _dir: std::sync::Arc<tempfile::TempDir>,
}

impl Recordings {
    /// What was heard during the last call.
    pub fn last_received(&self) -> Result<Audio> {
        let p = self.received.last().ok_or_else(|| {
            anyhow!(
                "baresip recorded no call (log:\n{})",
                log_tail(&self.log, 30)
            )
        })?;
        Audio::read_wav(p)
    }
}

const EVENT_TIMEOUT: Duration = Duration::from_secs(10);

impl Baresip {
    /// Writes a config dir and starts baresip; returns once `ctrl_tcp` answers.
    pub fn spawn(cfg: &BaresipConfig) -> Result<Self> {
        let dir = scratch_dir(&format!("baresip-{}", cfg.user))?;
        let sip_port = ports::sip_port()?;
        let ctrl_port = ports::tcp_port()?;
        let cons_port = ports::udp_port()?;
        let rtp_base = ports::rtp_range(8)?;
        let rec = dir.path().join("rec");
        std::fs::create_dir_all(&rec)?;
        let src_rate = hound::WavReader::open(&cfg.source_wav)
            .with_context(|| format!("reading source WAV {}", cfg.source_wav.display()))?
            .spec()
            .sample_rate;

        let mut modules = String::new();
        let mut seen = Vec::new();
        for c in &cfg.codecs {
            if !seen.contains(&c.module()) {
                seen.push(c.module());
                writeln!(modules, "module\t\t\t{}", c.module())?;
            }
        }
        let mut security = String::new();
        if let Some(ca) = &cfg.tls_ca {
            writeln!(security, "sip_cafile\t\t{}", ca.display())?;
        }
        if cfg.media_encryption.is_some() {
            writeln!(security, "module\t\t\tsrtp.so")?;
        }
        let config = format!(
            "# generated by integration-tests/src/baresip.rs\n\
             poll_method\t\tepoll\n\
             sip_listen\t\t127.0.0.1:{sip_port}\n\
             net_interface\t\t127.0.0.1\n\
             call_local_timeout\t30\n\
             call_max_calls\t\t4\n\
             audio_source\t\taufile,{src}\n\
             ausrc_srate\t\t{src_rate}\n\
             ausrc_channels\t\t1\n\
             ausrc_format\t\ts16\n\
             auplay_format\t\ts16\n\
             auenc_format\t\ts16\n\
             audec_format\t\ts16\n\
             audio_buffer\t\t20-160\n\
             rtp_ports\t\t{rtp_base}-{rtp_end}\n\
             rtcp_mux\t\tno\n\
             jitter_buffer_delay\t1-10\n\
             rtp_stats\t\tno\n\
             module_path\t\t/usr/lib/baresip/modules\n\
             {modules}\
             {security}\
             module\t\t\tsndfile.so\n\
             module\t\t\taufile.so\n\
             module\t\t\tcons.so\n\
             module_tmp\t\taccount.so\n\
             module_app\t\tmenu.so\n\
             module_app\t\tctrl_tcp.so\n\
             ctrl_tcp_listen\t\t127.0.0.1:{ctrl_port}\n\
             cons_listen\t\t127.0.0.1:{cons_port}\n\
             snd_path\t\t{rec}\n\
             opus_bitrate\t\t{bitrate}\n\
             statmode_default\toff\n",
            src = cfg.source_wav.display(),
            rtp_end = rtp_base + 7,
            rec = rec.display(),
            bitrate = cfg.opus_bitrate,
        );
        std::fs::write(dir.path().join("config"), config)?;

        let codecs: Vec<&str> = cfg.codecs.iter().map(|c| c.sdp_name()).collect();
        let mediaenc = cfg
            .media_encryption
            .as_deref()
            .map(|m| format!(";mediaenc={m}"))
            .unwrap_or_default();
        let answer = match cfg.answer_mode {
            AnswerMode::Manual => "manual",
            AnswerMode::Auto => "auto",
        };
        let account = match &cfg.registration {
            None => format!(
                "<sip:{}@127.0.0.1:{sip_port}>;answermode={answer};regint=0{mediaenc};audio_codecs={}\n",
                cfg.user,
                codecs.join(",")
            ),
            Some(r) => format!(
                "<sip:{}@{}>;auth_pass={};answermode={answer};regint={}{mediaenc};audio_codecs={}\n",
                cfg.user,
                r.registrar,
                r.password,
                r.interval_s,
                codecs.join(",")
            ),
        };
        std::fs::write(dir.path().join("accounts"), account)?;
        std::fs::write(dir.path().join("contacts"), "")?;

        let log = dir.path().join("baresip.log");
        let out = std::fs::File::create(&log)?;
        let err = out.try_clone()?;
        let child = Command::new("baresip")
            .arg("-f")
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .context("spawning baresip (apt-get install baresip-core)")?;
        let mut child = ChildGuard::new(format!("baresip {}", cfg.user), child);

        // Connect to ctrl_tcp as soon as it listens (bounded retry).
        let deadline = Instant::now() + Duration::from_secs(10);
        let ctrl = loop {
            if let Some(status) = child.try_wait()? {
                bail!(
                    "baresip exited at start ({status}):\n{}",
                    log_tail(&log, 30)
                );
            }
            match TcpStream::connect(("127.0.0.1", ctrl_port)) {
                Ok(s) => break s,
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Err(e) => bail!(
                    "baresip ctrl_tcp did not come up: {e}\n{}",
                    log_tail(&log, 30)
                ),
            }
        };
        let reader = ctrl.try_clone()?;
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name(format!("baresip-ctrl-{ctrl_port}"))
            .spawn(move || read_netstrings(reader, tx))?;

        Ok(Self {
            child,
            dir,
            sip_port,
            cons_port,
            user: cfg.user.clone(),
            ctrl,
            rx,
            pending: Vec::new(),
            history: Vec::new(),
            next_token: 1,
        })
    }

    /// This UA's own URI (what another peer dials).
    pub fn uri(&self) -> String {
        format!("sip:{}@127.0.0.1:{}", self.user, self.sip_port)
    }

    pub fn sip_port(&self) -> u16 {
        self.sip_port
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("baresip.log")
    }

    /// Runs a console command (`dial sip:...`, `accept`, `hangup`) and waits for
    /// its response.
    pub fn command(&mut self, command: &str, params: Option<&str>) -> Result<String> {
        let token = format!("t{}", self.next_token);
        self.next_token += 1;
        let mut msg = json!({ "command": command, "token": token });
        if let Some(p) = params {
            msg["params"] = Value::String(p.to_owned());
        }
        let body = msg.to_string();
        self.ctrl
            .write_all(format!("{}:{body},", body.len()).as_bytes())
            .context("writing to baresip ctrl_tcp")?;
        let deadline = Instant::now() + EVENT_TIMEOUT;
        loop {
            match self.next_message(deadline)? {
                Message::Response { ok, data, token: t } if t == token => {
                    if !ok {
                        bail!("baresip rejected `{command}`: {data}");
                    }
                    return Ok(data);
                }
                _ => continue,
            }
        }
    }

    pub fn dial(&mut self, uri: &str) -> Result<()> {
        self.command("dial", Some(uri)).map(drop)
    }

    pub fn accept(&mut self) -> Result<()> {
        self.command("accept", None).map(drop)
    }

    pub fn hangup(&mut self) -> Result<()> {
        self.command("hangup", None).map(drop)
    }

    /// Sends DTMF digits (0-9, *, #, A-D) in the current call via the `cons`
    /// key interface (RFC 4733 telephone-events).
    pub fn send_dtmf(&mut self, digits: &str) -> Result<()> {
        if let Some(bad) = digits.chars().find(|c| !"0123456789*#ABCD".contains(*c)) {
            bail!("{bad:?} is not a DTMF digit");
        }
        let sock = UdpSocket::bind("127.0.0.1:0")?;
        for d in digits.chars() {
            sock.send_to(d.to_string().as_bytes(), ("127.0.0.1", self.cons_port))?;
        }
        Ok(())
    }

    fn next_message(&mut self, deadline: Instant) -> Result<Message> {
        let left = deadline.saturating_duration_since(Instant::now());
        match self.rx.recv_timeout(left) {
            Ok(Message::Event(e)) => {
                self.history.push(e.kind.clone());
                self.pending.push(e.clone());
                Ok(Message::Event(e))
            }
            Ok(Message::Closed) | Err(RecvTimeoutError::Disconnected) => bail!(
                "baresip ctrl_tcp closed (events so far: {:?})\n{}",
                self.history,
                log_tail(&self.log_path(), 30)
            ),
            Ok(m) => Ok(m),
            Err(RecvTimeoutError::Timeout) => bail!(
                "timed out waiting for baresip (events so far: {:?})\n{}",
                self.history,
                log_tail(&self.log_path(), 30)
            ),
        }
    }

    /// Waits for (and consumes) the first not-yet-consumed event of `kind`,
    /// including ones that arrived before this call.
    pub fn wait_event(&mut self, kind: &str, timeout: Duration) -> Result<Event> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(i) = self.pending.iter().position(|e| e.kind == kind) {
                return Ok(self.pending.remove(i));
            }
            self.next_message(deadline)
                .with_context(|| format!("waiting for {kind} on {}", self.uri()))?;
        }
    }

    pub fn wait_established(&mut self) -> Result<Event> {
        self.wait_event("CALL_ESTABLISHED", EVENT_TIMEOUT)
    }

    pub fn wait_closed(&mut self) -> Result<Event> {
        self.wait_event("CALL_CLOSED", EVENT_TIMEOUT)
    }

    /// Only for [`AnswerMode::Manual`]: with auto-answer baresip 1.0 emits no
    /// `CALL_INCOMING`, only `CALL_ESTABLISHED`.
    pub fn wait_incoming(&mut self) -> Result<Event> {
        self.wait_event("CALL_INCOMING", EVENT_TIMEOUT)
    }

    /// Waits until the current call's decoder recording holds at least
    /// `min` of audio (baresip writes it as packets are decoded), so a test
    /// can let a sentence play out by observing it rather than sleeping.
    pub fn wait_received_audio(&mut self, min: Duration, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let rec = self.dir.path().join("rec");
        loop {
            let newest = std::fs::read_dir(&rec)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.to_string_lossy().ends_with("-dec.wav"))
                .max();
            if let Some(p) = newest {
                if let Ok(r) = hound::WavReader::open(&p) {
                    let spec = r.spec();
                    let bytes_per_s = f64::from(spec.sample_rate)
                        * f64::from(spec.channels)
                        * f64::from(spec.bits_per_sample / 8);
                    let len = std::fs::metadata(&p)?.len().saturating_sub(44) as f64;
                    if len / bytes_per_s >= min.as_secs_f64() {
                        return Ok(());
                    }
                }
            }
            if Instant::now() >= deadline {
                bail!(
                    "{} did not receive {min:?} of audio within {timeout:?}\n{}",
                    self.uri(),
                    log_tail(&self.log_path(), 30)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until the account is registered. Registration starts before
    /// the harness's `ctrl_tcp` connection exists, so the `REGISTER_OK` event
    /// may have been missed; this also asks `reginfo` between events.
    pub fn wait_registered(&mut self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.pending.iter().any(|e| e.kind == "REGISTER_OK") {
                return Ok(());
            }
            let info = self.command("reginfo", None)?;
            if info.contains("OK") {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!("{} not registered within {timeout:?}: {info}", self.uri());
            }
            let step = (Instant::now() + Duration::from_millis(200)).min(deadline);
            match self.next_message(step) {
                Ok(_) => {}
                Err(_) if Instant::now() < deadline => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Every event kind seen so far, in order.
    pub fn event_history(&self) -> &[String] {
        &self.history
    }

    /// Quits baresip, waits for it to exit (which closes its recordings) and
    /// returns them.
    pub fn finish(mut self) -> Result<Recordings> {
        // `quit` may close the socket before answering; either is fine.
        let _ = self.command("quit", None);
        let _ = self.ctrl.shutdown(Shutdown::Both);
        self.child.wait_timeout(Duration::from_secs(10))?;
        let rec = self.dir.path().join("rec");
        let mut received = Vec::new();
        let mut sent = Vec::new();
        let mut entries: Vec<PathBuf> = std::fs::read_dir(&rec)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for p in entries {
            let name = p
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_owned();
            if name.ends_with("-dec.wav") {
                received.push(p);
            } else if name.ends_with("-enc.wav") {
                sent.push(p);
            }
        }
        let log = self.log_path();
        Ok(Recordings {
            received,
            sent,
            log,
            _dir: std::sync::Arc::new(self.dir),
        })
    }
}

/// Reads `len:json,` frames until the socket closes.
fn read_netstrings(mut sock: TcpStream, tx: mpsc::Sender<Message>) {
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        while let Some(colon) = buf.iter().position(|&b| b == b':') {
            let Some(len) = std::str::from_utf8(&buf[..colon])
                .ok()
                .and_then(|s| s.parse::<usize>().ok())
            else {
                let _ = tx.send(Message::Closed);
                return;
            };
            if buf.len() < colon + 1 + len + 1 {
                break;
            }
            let body = buf[colon + 1..colon + 1 + len].to_vec();
            buf.drain(..colon + 1 + len + 1);
            if let Ok(v) = serde_json::from_slice::<Value>(&body) {
                let msg = if v.get("response").and_then(Value::as_bool) == Some(true) {
                    Message::Response {
                        ok: v.get("ok").and_then(Value::as_bool).unwrap_or(false),
                        data: v
                            .get("data")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_owned(),
                        token: v
                            .get("token")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_owned(),
                    }
                } else {
                    let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
                    Message::Event(Event {
                        kind: s("type").unwrap_or_default(),
                        peer_uri: s("peeruri"),
                        param: s("param"),
                        raw: v.clone(),
                    })
                };
                if tx.send(msg).is_err() {
                    return;
                }
            }
        }
        match sock.read(&mut chunk) {
            Ok(0) | Err(_) => {
                let _ = tx.send(Message::Closed);
                return;
            }
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}
