//! A minimal blocking HTTP/1.1 client for the API tests (requests with `Connection: close`,
//! chunked responses, and a Server-Sent Events reader on a thread). Small enough to read in one
//! go, and it keeps an HTTP client crate out of the dependency tree.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use serde_json::Value;

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn connect(addr: &str) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connecting to {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s
}

fn write_request(
    s: &mut TcpStream,
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
    extra: &str,
) {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{extra}");
    if let Some(t) = token {
        req.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    if !body.is_empty() {
        req.push_str("Content-Type: application/json\r\n");
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    s.write_all(req.as_bytes()).unwrap();
}

fn read_head(r: &mut impl BufRead) -> (u16, Vec<(String, String)>) {
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {line:?}"));
    let mut headers = Vec::new();
    loop {
        line.clear();
        r.read_line(&mut line).unwrap();
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            headers.push((k.trim().to_owned(), v.trim().to_owned()));
        }
    }
    (status, headers)
}

fn is_chunked(headers: &[(String, String)]) -> bool {
    headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    })
}

/// The next chunk of a chunked body; `None` at the end.
fn read_chunk(r: &mut impl BufRead) -> Option<Vec<u8>> {
    let mut size = String::new();
    if r.read_line(&mut size).ok()? == 0 {
        return None;
    }
    let n = usize::from_str_radix(size.trim(), 16).ok()?;
    let mut data = vec![0; n + 2];
    r.read_exact(&mut data).ok()?;
    data.truncate(n);
    (n > 0).then_some(data)
}

/// One request; `token` is sent as a bearer token.
pub fn request(
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> Response {
    let mut s = connect(addr);
    write_request(
        &mut s,
        addr,
        method,
        path,
        token,
        body,
        "Connection: close\r\n",
    );
    read_response(s)
}

fn read_response(s: TcpStream) -> Response {
    let mut r = BufReader::new(s);
    let (status, headers) = read_head(&mut r);
    let mut bytes = Vec::new();
    if is_chunked(&headers) {
        while let Some(c) = read_chunk(&mut r) {
            bytes.extend(c);
        }
    } else {
        r.read_to_end(&mut bytes).unwrap();
    }
    Response {
        status,
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

/// One request whose head is written exactly as given (request line and headers, each ending in
/// `\r\n`, without the blank line), for tests of odd `Host`/`Origin` headers; `Content-Length`
/// and `Connection: close` are added.
pub fn raw(addr: &str, head: &str, body: Option<&Value>) -> Response {
    let mut s = connect(addr);
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut req = head.to_owned();
    if !body.is_empty() {
        req.push_str("Content-Type: application/json\r\n");
    }
    req.push_str(&format!(
        "Connection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    ));
    s.write_all(req.as_bytes()).unwrap();
    read_response(s)
}

pub fn get(addr: &str, path: &str, token: Option<&str>) -> Response {
    request(addr, "GET", path, token, None)
}

/// Waits until `f` returns `Some`, polling every 50 ms.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A subscription to `/api/events`, read on its own thread.
pub struct EventStream {
    rx: Receiver<Value>,
    pub seen: Vec<Value>,
}

impl EventStream {
    /// Connects and returns once the stream's `hello` arrived, so nothing published afterwards
    /// is missed.
    pub fn open(addr: &str, token: Option<&str>) -> EventStream {
        let mut s = connect(addr);
        s.set_read_timeout(None).unwrap();
        write_request(
            &mut s,
            addr,
            "GET",
            "/api/events",
            token,
            None,
            "Accept: text/event-stream\r\n",
        );
        let mut r = BufReader::new(s);
        let (status, headers) = read_head(&mut r);
        assert_eq!(status, 200, "the event stream must open");
        assert!(is_chunked(&headers), "SSE arrives chunked: {headers:?}");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut text = String::new();
            while let Some(c) = read_chunk(&mut r) {
                text.push_str(&String::from_utf8_lossy(&c));
                while let Some(cut) = text.find("\n\n") {
                    let block: String = text.drain(..cut + 2).collect();
                    let data: Vec<&str> = block
                        .lines()
                        .filter_map(|l| l.strip_prefix("data:"))
                        .map(str::trim_start)
                        .collect();
                    if data.is_empty() {
                        continue;
                    }
                    if let Ok(v) = serde_json::from_str::<Value>(&data.join("\n")) {
                        if tx.send(v).is_err() {
                            return;
                        }
                    }
                }
            }
        });
        let mut stream = EventStream {
            rx,
            seen: Vec::new(),
        };
        stream.wait(Duration::from_secs(5), |e| e["type"] == "hello");
        stream
    }

    /// Waits for (and returns) the first event, seen before or arriving now, that `pred` accepts.
    pub fn wait(&mut self, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        if let Some(e) = self.seen.iter().find(|e| pred(e)) {
            return e.clone();
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(e) => {
                    self.seen.push(e.clone());
                    if pred(&e) {
                        return e;
                    }
                }
                Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => {
                    let kinds: Vec<&str> = self
                        .seen
                        .iter()
                        .filter_map(|e| e["type"].as_str())
                        .collect();
                    panic!("the awaited event did not arrive within {timeout:?}; seen: {kinds:?}")
                }
            }
        }
    }
}

/// Checks the exposition line by line: `# HELP/TYPE/UNIT/EOF` comments, or
/// `name{label="value",...} number`. Returns the samples.
pub fn parse_prometheus(text: &str) -> Vec<(String, f64)> {
    let mut samples = Vec::new();
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix("# ") {
            assert!(
                ["HELP ", "TYPE ", "UNIT ", "EOF"]
                    .iter()
                    .any(|p| comment.starts_with(p)),
                "unknown comment line {line:?}"
            );
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("no value in {line:?}"));
        let name_end = series.find('{').unwrap_or(series.len());
        let name = &series[..name_end];
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name in {line:?}"
        );
        if name_end < series.len() {
            assert!(series.ends_with('}'), "unclosed labels in {line:?}");
            let labels = &series[name_end + 1..series.len() - 1];
            for pair in labels.split("\",").filter(|p| !p.is_empty()) {
                let (k, v) = pair
                    .split_once("=\"")
                    .unwrap_or_else(|| panic!("bad label {pair:?} in {line:?}"));
                assert!(
                    k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                    "bad label name in {line:?}"
                );
                let _ = v;
            }
        }
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {line:?}")),
        };
        samples.push((series.to_owned(), value));
    }
    assert!(
        text.trim_end().ends_with("# EOF"),
        "OpenMetrics ends with # EOF"
    );
    samples
}

/// The value of one series (exact match of `name{labels}`), 0 if absent.
pub fn sample(samples: &[(String, f64)], series: &str) -> f64 {
    samples
        .iter()
        .find(|(s, _)| s == series)
        .map_or(0.0, |(_, v)| *v)
}
