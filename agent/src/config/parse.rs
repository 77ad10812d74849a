//! Turning raw text into typed values while collecting every problem instead of stopping at the
//! first.
//!
//! Value parsers return just the problem ("not a port number (1–65535)"); the [`Reader`] adds the
//! key, the value (unless secret), its origin and the fix from the key table, so no parser can
//! forget half of a message or print a secret.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::time::Duration;

use pjsip_safe::{IpNet, Secret};

use super::error::{ConfigError, ConfigWarning};
use super::keys::{self, Key};
use super::sources::Entry;

/// Reads keys from the merged sources and records errors and warnings.
pub(super) struct Reader<'a> {
    values: &'a BTreeMap<String, Entry>,
    pub errors: Vec<ConfigError>,
    pub warnings: Vec<ConfigWarning>,
}

fn known(name: &str) -> &'static Key {
    // Key names are constants in this module's callers; the defaults test reads every one.
    keys::find(name).unwrap_or_else(|| panic!("{name} is missing from config::keys::KEYS"))
}

impl<'a> Reader<'a> {
    pub fn new(values: &'a BTreeMap<String, Entry>) -> Self {
        Reader {
            values,
            errors: Vec::new(),
            warnings: Vec::new(),
        }
    }

    /// Whether the key has a (non-empty) value in any source.
    pub fn is_set(&self, name: &str) -> bool {
        known(name);
        self.values.contains_key(name)
    }

    /// The trimmed text of a key, if set.
    pub fn text(&self, name: &str) -> Option<String> {
        known(name);
        self.values.get(name).map(|e| e.value.trim().to_string())
    }

    /// Parses a key if set; a bad value is recorded and gives `None`.
    pub fn parse<T>(
        &mut self,
        name: &str,
        parser: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        let text = self.text(name)?;
        match parser(&text) {
            Ok(value) => Some(value),
            Err(problem) => {
                self.fail(name, problem);
                None
            }
        }
    }

    /// Parses a key, or gives the default when unset or bad (the error is recorded).
    pub fn parse_or<T>(
        &mut self,
        name: &str,
        default: T,
        parser: impl FnOnce(&str) -> Result<T, String>,
    ) -> T {
        self.parse(name, parser).unwrap_or(default)
    }

    /// A secret; stray whitespace inside (a pasted line break) is an error, and the value is
    /// never echoed.
    pub fn secret(&mut self, name: &str, min_len: usize) -> Option<Secret> {
        let text = self.text(name)?;
        if text.chars().any(char::is_whitespace) {
            self.fail(name, "contains whitespace or a line break");
            None
        } else if text.chars().count() < min_len {
            self.fail(name, format!("is shorter than {min_len} characters"));
            None
        } else {
            Some(Secret::new(text))
        }
    }

    /// Records a problem with a key, fixed by the key table's "set KEY to …".
    pub fn fail(&mut self, name: &str, problem: impl Into<String>) {
        let key = known(name);
        let fix = format!("set {} to {}", key.name, key.expects);
        self.fail_with(name, problem, fix);
    }

    /// Records a problem with a key and a custom fix (for rules that involve several keys).
    pub fn fail_with(&mut self, name: &str, problem: impl Into<String>, fix: impl Into<String>) {
        let key = known(name);
        let entry = self.values.get(name);
        self.errors.push(ConfigError {
            key: key.name.into(),
            value: entry
                .filter(|_| !key.secret)
                .map(|e| e.value.trim().to_string()),
            hidden: key.secret && entry.is_some(),
            origin: entry.and_then(|e| e.origin.describe()),
            problem: problem.into(),
            fix: fix.into(),
        });
    }

    pub fn warn(&mut self, name: &str, message: impl Into<String>) {
        self.warnings.push(ConfigWarning {
            key: known(name).name.into(),
            message: message.into(),
        });
    }
}

pub(super) fn port(s: &str) -> Result<u16, String> {
    match s.parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err("not a port number (1–65535)".into()),
    }
}

pub(super) fn number_in(range: RangeInclusive<u64>) -> impl FnOnce(&str) -> Result<u64, String> {
    move |s| {
        let n: u64 = s.parse().map_err(|_| "not a whole number".to_string())?;
        if range.contains(&n) {
            Ok(n)
        } else {
            Err(format!("out of range ({}–{})", range.start(), range.end()))
        }
    }
}

pub(super) fn millis(range: RangeInclusive<u64>) -> impl FnOnce(&str) -> Result<Duration, String> {
    move |s| number_in(range)(s).map(Duration::from_millis)
}

pub(super) fn fraction(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(x) if (0.0..=1.0).contains(&x) => Ok(x),
        _ => Err("not a number from 0.0 to 1.0".into()),
    }
}

pub(super) fn boolean(s: &str) -> Result<bool, String> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err("not a boolean (true/false, 1/0, yes/no)".into()),
    }
}

/// One of a fixed set of words, case-insensitive.
pub(super) fn one_of<'c, T: Copy>(
    choices: &'c [(&'c str, T)],
) -> impl FnOnce(&str) -> Result<T, String> + 'c {
    move |s| {
        let lower = s.to_ascii_lowercase();
        choices
            .iter()
            .find(|(name, _)| *name == lower)
            .map(|(_, value)| *value)
            .ok_or_else(|| {
                let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
                format!("not one of {}", names.join(", "))
            })
    }
}

/// A comma list; blanks around items and empty items are dropped.
pub(super) fn list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(str::to_string)
        .collect()
}

/// Applies `item` to every element of a comma list, naming the first bad element.
pub(super) fn list_of<T>(
    item: impl Fn(&str) -> Result<T, String>,
) -> impl FnOnce(&str) -> Result<Vec<T>, String> {
    move |s| {
        list(s)
            .iter()
            .map(|element| item(element).map_err(|problem| format!("`{element}` is {problem}")))
            .collect()
    }
}

pub(super) fn ip_addr(s: &str) -> Result<IpAddr, String> {
    s.parse()
        .map_err(|_| "not an IP address (e.g. 203.0.113.10)".into())
}

pub(super) fn socket_addr(s: &str) -> Result<SocketAddr, String> {
    s.parse()
        .map_err(|_| "not an IP address with port (e.g. 127.0.0.1:8085)".into())
}

/// A network in CIDR notation or a single address.
pub(super) fn network(s: &str) -> Result<IpNet, String> {
    if let Ok(net) = s.parse::<IpNet>() {
        return Ok(net.trunc());
    }
    s.parse::<IpAddr>()
        .map(IpNet::from)
        .map_err(|_| "not a network (e.g. 217.10.64.0/20) or IP address".into())
}

/// `host[:port]` without a scheme, e.g. `sipgate.de` or `10.0.0.1:5080`.
pub(super) fn host_port(s: &str) -> Result<String, String> {
    if s.contains("://") || s.starts_with("sip:") || s.starts_with("sips:") {
        return Err("a URI, but a plain host[:port] is expected (no sip: or scheme)".into());
    }
    if s.contains(|c: char| c.is_whitespace() || c == '/' || c == '@' || c == ';') {
        return Err("not a host[:port] (it contains whitespace, /, @ or ;)".into());
    }
    // IPv6 literals are written [2001:db8::1]:5060.
    let (host, port_text) = if let Some(rest) = s.strip_prefix('[') {
        match rest.split_once(']') {
            Some((host, tail)) => (host, tail.strip_prefix(':')),
            None => return Err("an IPv6 address without the closing ]".into()),
        }
    } else {
        match s.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (s, None),
        }
    };
    if host.is_empty() || host.contains(':') {
        return Err("not a host[:port] (write IPv6 addresses as [2001:db8::1]:5060)".into());
    }
    if let Some(p) = port_text {
        port(p).map_err(|_| format!("a host with a bad port `{p}` (1–65535)"))?;
    }
    Ok(s.to_string())
}

/// A `ws://` or `wss://` URL with a host.
pub(super) fn ws_url(s: &str) -> Result<String, String> {
    let uri: tokio_tungstenite::tungstenite::http::Uri =
        s.parse().map_err(|_| "not a URL".to_string())?;
    match uri.scheme_str() {
        Some("ws") | Some("wss") => {}
        Some(other) => {
            return Err(format!(
                "a {other}:// URL, but the Realtime API needs ws:// or wss://"
            ))
        }
        None => return Err("a URL without a scheme (ws:// or wss://)".into()),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err("a URL without a host".into());
    }
    Ok(s.to_string())
}

/// The host of a `ws://` URL that leaves this machine (the API key would travel in clear text);
/// `None` for `wss://` and for loopback hosts (127.0.0.0/8, ::1, `localhost`).
pub(super) fn cleartext_remote_host(url: &str) -> Option<String> {
    let uri: tokio_tungstenite::tungstenite::http::Uri = url.parse().ok()?;
    if !uri.scheme_str()?.eq_ignore_ascii_case("ws") {
        return None;
    }
    let host = uri.host()?;
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let bare = bare.strip_suffix('.').unwrap_or(bare);
    let loopback = match bare.parse::<IpAddr>() {
        Ok(ip) => ip.to_canonical().is_loopback(),
        Err(_) => bare.eq_ignore_ascii_case("localhost"),
    };
    (!loopback).then(|| host.to_string())
}

/// A `sip:` or `sips:` URI with something after the scheme.
pub(super) fn sip_uri(s: &str) -> Result<String, String> {
    let rest = s
        .strip_prefix("sip:")
        .or_else(|| s.strip_prefix("sips:"))
        .ok_or_else(|| "not a SIP URI (it must start with sip: or sips:)".to_string())?;
    if rest.is_empty() || rest.contains(char::is_whitespace) {
        return Err("not a SIP URI (empty or with whitespace after sip:)".into());
    }
    Ok(s.to_string())
}

/// Codec names operators write, and the PJSIP id prefix each stands for.
pub(super) const CODECS: &[(&str, &str)] = &[
    ("opus", "opus/48000"),
    ("g722", "G722/16000"),
    ("pcma", "PCMA/8000"),
    ("g711a", "PCMA/8000"),
    ("pcmu", "PCMU/8000"),
    ("g711u", "PCMU/8000"),
    ("l16", "L16/16000"),
];

/// A codec name (`opus`, `G722`, `PCMA`, `PCMU`, `L16`, or a PJSIP id like `PCMA/8000`) to the
/// PJSIP id prefix the engine matches.
pub(super) fn codec(s: &str) -> Result<String, String> {
    let lower = s.to_ascii_lowercase();
    let name = lower.split('/').next().unwrap_or("");
    let Some((_, id)) = CODECS.iter().find(|(n, _)| *n == name) else {
        return Err("not a supported codec (opus, G722, PCMA, PCMU, L16)".into());
    };
    // An explicit rate/channels suffix is kept as written (PJSIP matches the prefix).
    Ok(if s.contains('/') {
        format!(
            "{}{}",
            &id[..id.find('/').unwrap_or(id.len())],
            &s[name.len()..]
        )
    } else {
        (*id).to_string()
    })
}

/// An ISO 639-1 code (`de`); `DE` is accepted and lowered.
pub(super) fn language(s: &str) -> Result<String, String> {
    if s.len() == 2 && s.chars().all(|c| c.is_ascii_alphabetic()) {
        Ok(s.to_ascii_lowercase())
    } else {
        Err("not a two-letter ISO 639-1 language code".into())
    }
}

/// A model or voice name: one word without whitespace.
pub(super) fn word(s: &str) -> Result<String, String> {
    if s.contains(char::is_whitespace) {
        Err("contains whitespace".into())
    } else {
        Ok(s.to_string())
    }
}
