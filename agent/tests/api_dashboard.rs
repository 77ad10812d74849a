//! The dashboard end to end: headless Chromium (Debian's `chromium`) driven by Playwright
//! (`tests/dashboard/dashboard.mjs`) watches a real baresip call to `voiceagent run`, sees its
//! transcript and level meters, presses "Hang up", and baresip sees the call end.
//! Screenshots land in `target/dashboard/`.
//!
//! Needs `npm ci --prefix tests/dashboard` and `/usr/bin/chromium` (see docs/API.md).

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{repo_root, Voiceagent};
use integration_tests::baresip::{Baresip, BaresipConfig, Codec};
use integration_tests::process::{target_dir, ChildGuard};
use integration_tests::speech::{padded_phrase_wav, Phrase};

const TOKEN: &str = "dashboard-token-0123456789abcdef";

#[test]
fn the_dashboard_shows_a_live_call_and_hangs_it_up() {
    let script_dir = repo_root().join("tests/dashboard");
    assert!(
        script_dir.join("node_modules/playwright-core").is_dir(),
        "Playwright is not installed: run `npm ci --prefix tests/dashboard` (and `apt-get install chromium`)"
    );
    assert!(
        std::path::Path::new("/usr/bin/chromium").exists()
            || std::env::var_os("CHROMIUM").is_some(),
        "Chromium is missing: `apt-get install chromium`, or set CHROMIUM to its path"
    );
    let va = Voiceagent::run(&[("API_TOKEN", TOKEN.to_owned())]);
    let shots = target_dir().join("dashboard");
    let child = Command::new("node")
        .arg(script_dir.join("dashboard.mjs"))
        .env("DASHBOARD_URL", format!("http://{}/", va.api_addr))
        .env("API_TOKEN", TOKEN)
        .env("SCREENSHOT_DIR", &shots)
        .current_dir(&script_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("starting node");
    let mut child = child;
    let stdout = child.stdout.take().unwrap();
    let mut node = ChildGuard::new("node dashboard.mjs", child);
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            eprintln!("dashboard.mjs: {line}");
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let expect = |what: &str, timeout: Duration| -> String {
        loop {
            match rx.recv_timeout(timeout) {
                Ok(line) if line.starts_with(what) => return line,
                Ok(_) => continue,
                Err(_) => panic!("the dashboard script did not report {what} within {timeout:?}"),
            }
        }
    };
    expect("READY", Duration::from_secs(60));

    let wav = padded_phrase_wav(Phrase::GermanOrder, 48000, 5000, 40_000).unwrap();
    let mut caller =
        Baresip::spawn(&BaresipConfig::new("caller", &wav).codecs(&[Codec::Opus])).unwrap();
    caller.dial(&va.uri()).unwrap();
    caller.wait_established().unwrap();
    expect("CALL", Duration::from_secs(30));
    expect("ENDED", Duration::from_secs(60));
    // The button in the browser ended the call at baresip.
    caller.wait_closed().unwrap();
    expect("DONE", Duration::from_secs(60));
    let status = node.wait_timeout(Duration::from_secs(20)).unwrap();
    assert!(status.success(), "dashboard.mjs failed: {status}");
    for shot in [
        "dashboard-live-call.png",
        "dashboard-ended.png",
        "dashboard-history.png",
    ] {
        let len = std::fs::metadata(shots.join(shot))
            .map(|m| m.len())
            .unwrap_or(0);
        assert!(len > 10_000, "screenshot {shot} was saved");
    }
}
