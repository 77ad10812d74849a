//! When the Realtime backend fails: mid-call (closed or dropped socket) the caller hears the
//! apology and the call ends cleanly while the service keeps taking calls; unreachable before
//! answering, the caller gets a 503 (`BACKEND_FAILURE=reject`) or the apology.

mod common;

use std::net::TcpListener;
use std::time::Duration;

use agent::realtime::server::script::{Fault, Reply, Script};
use agent::realtime::server::{Pacing, SessionEnd};
use common::{repo_root, serial, silent_caller_wav, ScriptedBackend, Voiceagent};
use integration_tests::audio::{compare, Audio};
use integration_tests::baresip::{Baresip, BaresipConfig, Codec};

fn apology() -> Audio {
    Audio::read_wav(&repo_root().join("agent/assets/apology.wav")).unwrap()
}

/// Calls `va`, waits until voiceagent hangs up, returns what the caller heard.
fn call_until_hung_up(va: &mut Voiceagent) -> Audio {
    let mut caller =
        Baresip::spawn(&BaresipConfig::new("caller", &silent_caller_wav()).codecs(&[Codec::Opus]))
            .unwrap();
    caller.dial(&va.uri()).unwrap();
    caller.wait_established().unwrap();
    caller
        .wait_event("CALL_CLOSED", Duration::from_secs(30))
        .expect("voiceagent hangs up after the apology");
    caller.finish().unwrap().last_received().unwrap()
}

#[test]
fn a_backend_failure_mid_call_plays_the_apology_and_the_next_call_works() {
    let _serial = serial();
    // Session 1 closes with 1011 mid-response; session 2 drops TCP mid-response.
    let backend = ScriptedBackend::start(
        Script::new().reply(
            Reply::long(Duration::from_secs(6), "long").with_fault(Fault::Close {
                after_audio_ms: 1500,
                code: 1011,
                reason: "internal error".into(),
            }),
        ),
        Pacing::Speedup(2.0),
    );
    let mut va = Voiceagent::run(&backend.env());
    let heard = call_until_hung_up(&mut va);
    let c = compare(&apology(), &heard, 16000).unwrap();
    eprintln!("first call, the caller heard the apology: {c}");
    c.assert_match("the caller hears the apology after the backend closed");
    va.wait_log("call finished", Duration::from_secs(10));
    assert!(va.log_text().contains("Realtime backend failed"));
    let s = backend.sessions();
    assert_eq!(
        s[0].end,
        Some(SessionEnd::ServerClosed {
            code: 1011,
            reason: "internal error".into()
        })
    );

    // The service is still up: a second call gets a new session and the same clean ending.
    let heard = call_until_hung_up(&mut va);
    compare(&apology(), &heard, 16000)
        .unwrap()
        .assert_match("the second call hears the apology too");
    assert_eq!(
        backend.sessions().len(),
        2,
        "the second call opened its own session"
    );
    assert!(
        va.wait_exit(Duration::from_millis(10)).is_none(),
        "voiceagent keeps running"
    );
}

#[test]
fn a_dropped_connection_mid_call_plays_the_apology() {
    let _serial = serial();
    let backend = ScriptedBackend::start(
        Script::new().reply(Reply::long(Duration::from_secs(6), "long").with_fault(
            Fault::Disconnect {
                after_audio_ms: 1000,
            },
        )),
        Pacing::Speedup(2.0),
    );
    let mut va = Voiceagent::run(&backend.env());
    let heard = call_until_hung_up(&mut va);
    compare(&apology(), &heard, 16000)
        .unwrap()
        .assert_match("the caller hears the apology after the connection dropped");
    assert_eq!(backend.sessions()[0].end, Some(SessionEnd::ServerDropped));
}

/// A loopback URL nobody listens on.
fn closed_url() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    format!("ws://127.0.0.1:{port}/v1/realtime")
}

#[test]
fn an_unreachable_backend_rejects_with_503() {
    let _serial = serial();
    let mut va = Voiceagent::run(&[
        ("OPENAI_API_KEY", common::TEST_API_KEY.into()),
        ("OPENAI_REALTIME_URL", closed_url()),
        ("BACKEND_FAILURE", "reject".into()),
    ]);
    let mut caller =
        Baresip::spawn(&BaresipConfig::new("caller", &silent_caller_wav()).codecs(&[Codec::Opus]))
            .unwrap();
    caller.dial(&va.uri()).unwrap();
    let closed = caller.wait_closed().unwrap();
    eprintln!("closed: {:?}", closed.raw);
    assert!(
        closed.raw.to_string().contains("503"),
        "the caller is rejected with 503: {:?}",
        closed.raw
    );
    assert!(
        !caller
            .event_history()
            .iter()
            .any(|e| e == "CALL_ESTABLISHED"),
        "the call must not be answered: {:?}",
        caller.event_history()
    );
    va.wait_log("call finished", Duration::from_secs(10));
    let _ = caller.finish();
}

#[test]
fn an_unreachable_backend_answers_with_the_apology() {
    let _serial = serial();
    let mut va = Voiceagent::run(&[
        ("OPENAI_API_KEY", common::TEST_API_KEY.into()),
        ("OPENAI_REALTIME_URL", closed_url()),
        ("BACKEND_FAILURE", "apology".into()),
    ]);
    let heard = call_until_hung_up(&mut va);
    let c = compare(&apology(), &heard, 16000).unwrap();
    eprintln!("the caller heard the apology: {c}");
    c.assert_match("the caller hears the apology when the backend is unreachable");
}
