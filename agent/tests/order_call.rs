//! The ordering agent end to end: a caller (baresip) phones `voiceagent run`, whose Realtime
//! endpoint is a local server in this test playing the model's part from a script. The script
//! issues the function calls a model would (search, add ×2, read back, confirm), and reads out
//! the order number it got from `confirm_order` at run time, synthesised with espeak-ng; the
//! test then checks the caller heard exactly that audio and that the database holds the order
//! with the caller's number, its items and both sides of the conversation.
//!
//! What the model would hear of the caller comes from the script's user transcripts (the local
//! server's stand-in for input transcription); the caller's audio is real speech, so the server's
//! VAD makes the turns as it would for a person.
//!
//! Also covered: a second call that hangs up before confirming leaves an abandoned order with
//! its items; an unknown article gets the documented error output; a confirm that blocks on a
//! locked database times out as documented, the hold sound plays meanwhile, and the model's
//! retry gets the same order number without a duplicate order.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agent::ordering::{OrderFilter, OrderStatus, OrderStore};
use agent::realtime::server::assets::Prompt;
use agent::realtime::server::{
    LocalRealtimeServer, Reply, Script, ServerConfig, ServerHandle, SessionRecord,
};
use common::Voiceagent;
use integration_tests::audio::{compare, Audio};
use integration_tests::baresip::{Baresip, BaresipConfig, Codec};
use integration_tests::process::scratch_dir;
use serde_json::{json, Value};

/// What the caller says first (as the script's transcription reports it).
const ORDER_WORDS: &str =
    "Ich brauche zwei T-Stücke dreiviertel Zoll Messing und zehn Meter Kupferrohr fünfzehn Millimeter.";
/// What the caller says after the read-back.
const YES_WORDS: &str = "Ja, das ist richtig.";

/// espeak-ng speech as 24 kHz audio, normalised to a -3 dBFS peak.
fn espeak(text: &str, dir: &Path) -> anyhow::Result<Audio> {
    let wav = dir.join(format!(
        "espeak-{}-{:?}.wav",
        std::process::id(),
        std::thread::current().id()
    ));
    let out = Command::new("espeak-ng")
        .args(["-v", "de", "-s", "165", "-w"])
        .arg(&wav)
        .arg(text)
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "espeak-ng failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut a = Audio::read_wav(&wav)?.resample(24_000)?;
    let _ = std::fs::remove_file(&wav);
    let peak = a.samples.iter().fold(0f32, |m, s| m.max(s.abs()));
    if peak > 0.0 {
        for s in &mut a.samples {
            *s *= 0.7 / peak;
        }
    }
    Ok(a)
}

/// The read-back the scripted model speaks after `get_order` (short, made from its output).
fn readback_text(order: &Value) -> String {
    let items = order["items"].as_array().map_or(0, Vec::len);
    let gross = order["total_gross_eur"].as_f64().unwrap_or(-1.0);
    format!(
        "{items} Positionen, zusammen {} Euro brutto. Ist das richtig?",
        format!("{gross:.2}").replace('.', ",")
    )
}

/// The order number as the scripted model reads it: every character separately, so the audio
/// really depends on each digit.
fn number_text(order_no: &str) -> String {
    let spoken: Vec<String> = order_no
        .chars()
        .filter(|c| *c != '-')
        .map(|c| c.to_string())
        .collect();
    format!("Ihre Bestellnummer lautet {}.", spoken.join(" "))
}

/// What the script's run-time replies produced: (transcript, 24 kHz audio), in order.
type Spoken = Arc<Mutex<Vec<(String, Vec<i16>)>>>;

/// A reply made from the previous tool output by `make`, recorded in `spoken`.
fn speak_from_output(
    spoken: &Spoken,
    dir: &Path,
    make: impl Fn(&Value) -> String + Send + Sync + 'static,
) -> Reply {
    let spoken = Arc::clone(spoken);
    let dir = dir.to_path_buf();
    Reply::speak_fn(move |output: &Value| {
        let text = make(output);
        // A failure must not kill the server's session task: it shows up as an empty reply
        // whose transcript says what went wrong, and the test's assertions report it.
        let pcm = match espeak(&text, &dir) {
            Ok(a) => a.to_i16(),
            Err(e) => {
                let msg = format!("espeak failed: {e}");
                spoken.lock().unwrap().push((msg.clone(), Vec::new()));
                return (Vec::new(), msg);
            }
        };
        spoken.lock().unwrap().push((text.clone(), pcm.clone()));
        (pcm, text)
    })
}

/// The caller's microphone: silence while the greeting plays, then each utterance followed by
/// the given silence.
fn caller_wav(dir: &Path, name: &str, lead_ms: u32, turns: &[(&str, u32)]) -> std::path::PathBuf {
    let mut a = Audio::silence(48_000, lead_ms);
    for (text, after_ms) in turns {
        a.append(&espeak(text, dir).unwrap().resample(48_000).unwrap())
            .unwrap();
        a.append(&Audio::silence(48_000, *after_ms)).unwrap();
    }
    let path = dir.join(format!("{name}.wav"));
    a.write_wav(&path).unwrap();
    path
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// `voiceagent run` talking to `server` instead of OpenAI.
fn voiceagent_for(server: &ServerHandle, extra: &[(&str, &str)]) -> Voiceagent {
    let mut env = vec![
        ("OPENAI_API_KEY", "sk-local-test-key".to_string()),
        ("OPENAI_REALTIME_URL", server.url()),
    ];
    env.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
    Voiceagent::run(&env)
}

/// The `output` of every `function_call_output` the client sent, parsed, in order.
fn tool_outputs(record: &SessionRecord) -> Vec<Value> {
    record
        .client_events_of("conversation.item.create")
        .into_iter()
        .filter(|e| e["item"]["type"] == "function_call_output")
        .map(|e| {
            let text = e["item"]["output"].as_str().unwrap_or_default();
            serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
        })
        .collect()
}

fn responses_done(record: &SessionRecord) -> usize {
    record
        .server_event_types
        .iter()
        .filter(|t| *t == "response.done")
        .count()
}

/// Waits until session `index` has finished `n` responses; returns when that was observed.
fn wait_responses(
    rt: &tokio::runtime::Runtime,
    server: &ServerHandle,
    index: usize,
    n: usize,
) -> Instant {
    rt.block_on(server.wait_for(Duration::from_secs(60), |s| {
        (s.get(index).map_or(0, responses_done) >= n).then_some(())
    }))
    .unwrap_or_else(|e| {
        let done = server.sessions().get(index).map_or(0, responses_done);
        panic!("session {index}: {e} (waited for {n} responses, {done} done)")
    });
    Instant::now()
}

/// Lets the caller hear everything the server finished sending at `sent` (the bridge buffers
/// it and plays it in real time): waits until baresip's recording covers that point plus `len`.
fn hear_until(caller: &mut Baresip, established: Instant, sent: Instant, len: Duration) {
    let need = sent.duration_since(established) + len + Duration::from_millis(1500);
    caller
        .wait_received_audio(need, need + Duration::from_secs(30))
        .unwrap();
}

/// Counts log lines containing `needle`, waiting until there are `n`.
fn wait_log_count(va: &mut Voiceagent, needle: &str, n: usize, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        if va.log_text().lines().filter(|l| l.contains(needle)).count() >= n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "voiceagent did not log {needle:?} {n} times within {timeout:?}:\n{}",
            va.log_text()
        );
        va.wait_log("", Duration::from_secs(1)); // fails early if the process died
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn an_order_is_taken_confirmed_read_out_and_stored_and_an_unconfirmed_one_is_kept() {
    let dir = scratch_dir("order-call").unwrap();
    let spoken: Spoken = Arc::default();
    // The model's part. Responses: 1 greeting, 2 search, 3 add (unknown article), 4 add,
    // 5 add, 6 get_order, 7 read-back | caller says yes | 8 confirm, 9 order number.
    let script = Script::new()
        .reply(Reply::prompt(Prompt::Greeting))
        .user_transcript(ORDER_WORDS)
        .reply(Reply::function_call(
            "search_products",
            &json!({"query": "T-Stück dreiviertel Zoll Messing"}),
        ))
        .reply(Reply::function_call(
            "add_to_order",
            &json!({"article_no": "999999", "quantity": 2}),
        ))
        .reply(Reply::function_call(
            "add_to_order",
            &json!({"article_no": "100003", "quantity": 2}),
        ))
        .reply(Reply::function_call(
            "add_to_order",
            &json!({"article_no": "300002", "quantity": 10, "unit": "Meter"}),
        ))
        .reply(Reply::function_call("get_order", &json!({})))
        .reply(speak_from_output(&spoken, dir.path(), readback_text))
        .user_transcript(YES_WORDS)
        .reply(Reply::function_call(
            "confirm_order",
            &json!({"customer_confirmed": true}),
        ))
        .reply(speak_from_output(&spoken, dir.path(), |out| {
            number_text(out["order_no"].as_str().unwrap_or("keine Nummer"))
        }));
    let rt = runtime();
    let server = rt
        .block_on(LocalRealtimeServer::start(ServerConfig {
            script,
            ..ServerConfig::default()
        }))
        .unwrap();
    let mut va = voiceagent_for(&server, &[]);

    // The read-back's audio is known in advance (same text, same synthesis), so the caller's
    // "yes" can be placed after it: 2 × 4,19 + 10 × 6,50 = 73,38 net, 87,32 gross.
    let readback = espeak(
        &readback_text(&json!({"items": [1, 2], "total_gross_eur": 87.32})),
        dir.path(),
    )
    .unwrap();
    let greeting = Audio::from_i16(24_000, &Prompt::Greeting.samples());
    let lead_ms = greeting.duration().as_millis() as u32 + 1500;
    let gap_ms = readback.duration().as_millis() as u32 + 4000;

    // Call 1: the caller orders and hangs up after the read-back without saying yes.
    let wav = caller_wav(dir.path(), "abandon", lead_ms, &[(ORDER_WORDS, 60_000)]);
    let mut caller =
        Baresip::spawn(&BaresipConfig::new("4930999888", &wav).codecs(&[Codec::Opus])).unwrap();
    caller.dial(&va.uri()).unwrap();
    caller.wait_established().unwrap();
    let established = Instant::now();
    let sent = wait_responses(&rt, &server, 0, 7);
    hear_until(&mut caller, established, sent, readback.duration());
    caller.hangup().unwrap();
    caller.wait_closed().unwrap();
    wait_log_count(&mut va, "call finished", 1, Duration::from_secs(15));
    drop(caller.finish().unwrap());

    // Call 2: the same, then "yes", the confirmation and the order number.
    let wav = caller_wav(
        dir.path(),
        "confirm",
        lead_ms,
        &[(ORDER_WORDS, gap_ms), (YES_WORDS, 60_000)],
    );
    let mut caller =
        Baresip::spawn(&BaresipConfig::new("4930123456", &wav).codecs(&[Codec::Opus])).unwrap();
    caller.dial(&va.uri()).unwrap();
    caller.wait_established().unwrap();
    let established = Instant::now();
    let sent = wait_responses(&rt, &server, 1, 9);
    let (number_said, number_pcm) = spoken.lock().unwrap().last().cloned().unwrap();
    let number_audio = Audio::from_i16(24_000, &number_pcm);
    hear_until(&mut caller, established, sent, number_audio.duration());
    caller.hangup().unwrap();
    caller.wait_closed().unwrap();
    wait_log_count(&mut va, "call finished", 2, Duration::from_secs(15));
    let heard = caller.finish().unwrap().last_received().unwrap();
    let sessions = server.sessions();
    rt.block_on(server.shutdown());

    // The tools answered the scripted model as documented.
    let outputs = tool_outputs(&sessions[1]);
    assert_eq!(outputs.len(), 6, "six tool results expected: {outputs:#?}");
    assert_eq!(outputs[0]["ok"], true, "{}", outputs[0]);
    assert_eq!(
        outputs[0]["results"][0]["article_no"], "100003",
        "search_products ranks the 3/4\" brass tee first: {}",
        outputs[0]
    );
    assert_eq!(outputs[1]["ok"], false);
    assert_eq!(
        outputs[1]["error"],
        "Unknown article number `999999`. Use search_products to find the article and use its article_no."
    );
    assert_eq!(outputs[2]["ok"], true, "{}", outputs[2]);
    assert_eq!(outputs[3]["ok"], true, "{}", outputs[3]);
    assert_eq!(outputs[4]["items"].as_array().map(Vec::len), Some(2));
    assert_eq!(outputs[4]["total_net_eur"], 73.38);
    assert_eq!(outputs[4]["total_gross_eur"], 87.32);
    assert_eq!(outputs[5]["ok"], true, "{}", outputs[5]);
    let order_no = outputs[5]["order_no"].as_str().unwrap().to_string();
    assert_eq!(number_said, number_text(&order_no));

    // The caller heard the order number the tool returned, after the read-back.
    let c = compare(&number_audio, &heard, 16_000).unwrap();
    eprintln!("the caller heard the order number: {c}");
    c.assert_match("the caller hears the spoken order number");
    let c_readback = compare(&readback, &heard, 16_000).unwrap();
    eprintln!("the caller heard the read-back: {c_readback}");
    c_readback.assert_match("the caller hears the read-back");
    assert!(
        c.lag_ms > c_readback.lag_ms + readback.duration().as_millis() as f64,
        "the order number ({} ms) must follow the read-back ({} ms)",
        c.lag_ms,
        c_readback.lag_ms
    );
    // Fast tools: no hold sound.
    let hold = Audio::from_i16(24_000, &Prompt::Hold.samples());
    compare(&hold, &heard, 16_000)
        .unwrap()
        .assert_no_match("no hold sound when every tool answers at once");

    // The database holds both orders.
    let store = OrderStore::open_in(&va.data_dir).unwrap();
    let orders = store.list(&OrderFilter::default()).unwrap();
    assert_eq!(orders.len(), 2, "{orders:#?}");
    let abandoned = &orders[0];
    assert_eq!(abandoned.status, OrderStatus::Abandoned);
    assert_eq!(abandoned.order_no, None);
    assert_eq!(abandoned.caller, "4930999888");
    let articles = |o: &agent::ordering::StoredOrder| {
        o.items
            .iter()
            .map(|i| (i.article_no.clone(), i.quantity))
            .collect::<Vec<_>>()
    };
    let expected = vec![("100003".to_string(), 2.0), ("300002".to_string(), 10.0)];
    assert_eq!(articles(abandoned), expected);
    assert!(
        abandoned
            .transcript
            .contains(&format!("Anrufer: {ORDER_WORDS}")),
        "{}",
        abandoned.transcript
    );

    let confirmed = store.get(&order_no).unwrap().expect("the confirmed order");
    assert_eq!(confirmed.status, OrderStatus::Confirmed);
    assert_eq!(confirmed.caller, "4930123456");
    assert_eq!(articles(&confirmed), expected);
    assert_eq!(confirmed.total_net_cents, 7338);
    let t = &confirmed.transcript;
    eprintln!("stored transcript:\n{t}");
    for line in [
        format!("Anrufer: {ORDER_WORDS}"),
        format!("Anrufer: {YES_WORDS}"),
        format!("Agent: {}", Prompt::Greeting.transcript()),
        format!("Agent: {}", readback_text(&outputs[4])),
        // Said after confirm_order returned: the transcript is completed at call end.
        format!("Agent: {}", number_text(&order_no)),
    ] {
        assert!(t.contains(&line), "transcript lacks {line:?}:\n{t}");
    }
}

#[test]
fn a_confirm_stuck_on_a_locked_database_times_out_with_hold_sound_and_the_retry_gets_the_number() {
    let dir = scratch_dir("order-timeout").unwrap();
    let spoken: Spoken = Arc::default();
    // 1 greeting | caller orders | 2 add, 3 get_order, 4 confirm (times out), 5 confirm again
    // (the timeout output tells the model to try once more), 6 the order number.
    let script = Script::new()
        .reply(Reply::prompt(Prompt::Greeting))
        .user_transcript(ORDER_WORDS)
        .reply(Reply::function_call(
            "add_to_order",
            &json!({"article_no": "100003", "quantity": 2}),
        ))
        .reply(Reply::function_call("get_order", &json!({})))
        .reply(Reply::function_call(
            "confirm_order",
            &json!({"customer_confirmed": true}),
        ))
        .reply(Reply::function_call(
            "confirm_order",
            &json!({"customer_confirmed": true}),
        ))
        .reply(speak_from_output(&spoken, dir.path(), |out| {
            number_text(out["order_no"].as_str().unwrap_or("keine Nummer"))
        }));
    let rt = runtime();
    let server = rt
        .block_on(LocalRealtimeServer::start(ServerConfig {
            script,
            ..ServerConfig::default()
        }))
        .unwrap();
    let mut va = voiceagent_for(
        &server,
        &[("TOOL_TIMEOUT_MS", "2500"), ("TOOL_HOLD_SOUND_MS", "300")],
    );

    // Another writer (a back-office tool, a stalled disk) holds the database's write lock, so
    // the agent's commit waits in SQLite's busy handler (up to 5 s) past the tool timeout.
    let db = rusqlite::Connection::open(va.data_dir.join("orders.sqlite3")).unwrap();
    db.execute_batch("BEGIN IMMEDIATE").unwrap();

    let greeting = Audio::from_i16(24_000, &Prompt::Greeting.samples());
    let wav = caller_wav(
        dir.path(),
        "timeout",
        greeting.duration().as_millis() as u32 + 1500,
        &[(ORDER_WORDS, 60_000)],
    );
    let mut caller =
        Baresip::spawn(&BaresipConfig::new("4930555000", &wav).codecs(&[Codec::Opus])).unwrap();
    caller.dial(&va.uri()).unwrap();
    caller.wait_established().unwrap();
    let established = Instant::now();

    // The first confirm's result is the timeout; then the lock goes away.
    let first = rt
        .block_on(server.wait_for(Duration::from_secs(60), |s| {
            s.first().map(tool_outputs).and_then(|o| o.get(2).cloned())
        }))
        .unwrap();
    db.execute_batch("COMMIT").unwrap();
    drop(db);
    assert_eq!(first["ok"], false, "{first}");
    assert_eq!(
        first["error"],
        "`confirm_order` did not answer within 2500 ms; tell the caller there is a technical \
         delay and try once more or offer a callback"
    );

    let sent = wait_responses(&rt, &server, 0, 6);
    let (_, number_pcm) = spoken.lock().unwrap().last().cloned().unwrap();
    let number_audio = Audio::from_i16(24_000, &number_pcm);
    hear_until(&mut caller, established, sent, number_audio.duration());
    caller.hangup().unwrap();
    caller.wait_closed().unwrap();
    va.wait_log("call finished", Duration::from_secs(15));
    let heard = caller.finish().unwrap().last_received().unwrap();
    let sessions = server.sessions();
    rt.block_on(server.shutdown());

    let outputs = tool_outputs(&sessions[0]);
    assert_eq!(outputs.len(), 4, "{outputs:#?}");
    let retry = &outputs[3];
    assert_eq!(retry["ok"], true, "{retry}");
    assert_eq!(retry["already_confirmed"], true, "{retry}");
    let order_no = retry["order_no"].as_str().unwrap();

    // The commit that outlived the timeout is the one order; the retry added none.
    let store = OrderStore::open_in(&va.data_dir).unwrap();
    let orders = store.list(&OrderFilter::default()).unwrap();
    assert_eq!(orders.len(), 1, "{orders:#?}");
    assert_eq!(orders[0].order_no.as_deref(), Some(order_no));
    assert_eq!(orders[0].status, OrderStatus::Confirmed);
    assert_eq!(orders[0].caller, "4930555000");

    // While confirm_order hung, the caller heard the hold sound, then the order number.
    let hold = Audio::from_i16(24_000, &Prompt::Hold.samples());
    let c = compare(&hold, &heard, 16_000).unwrap();
    eprintln!("the caller heard the hold sound: {c}");
    c.assert_match("the hold sound plays while a tool is slow");
    let n = compare(&number_audio, &heard, 16_000).unwrap();
    eprintln!("the caller heard the order number: {n}");
    n.assert_match("the caller hears the order number after the retry");
    assert!(
        n.lag_ms > c.lag_ms,
        "hold at {} ms, number at {} ms",
        c.lag_ms,
        n.lag_ms
    );
}
