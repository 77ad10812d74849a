//! Which destinations `POST /api/calls` may call (`OUTBOUND_ALLOWED`).
//!
//! Why: an outbound call costs the operator money (premium numbers, international routes) and
//! uses the trunk's identity. The API is reachable by scripts and, if anything goes wrong with
//! the token or the network, by others; so it calls only destinations the operator listed. The
//! list is empty by default, which disables the outbound API. `voiceagent call` on the command
//! line is the operator's own and is not restricted.
//!
//! The syntax, kept small on purpose (documented in docs/CONFIGURATION.md):
//!
//! - `sip:USER@HOST` or `sips:USER@HOST[:PORT]`: a SIP URI pattern. `*` in the user part matches
//!   any run of characters (`sip:*@pbx.example`, `sip:+4930*@sipgate.de`); the host is matched
//!   exactly (case-insensitive), and a port in the pattern must appear in the destination. A
//!   `sips:` pattern matches only `sips:` destinations; a `sip:` pattern matches both.
//! - `+4930*`, `004930*`, `+4930123456`, or the same after `tel:`: a number pattern. It matches a
//!   destination whose user part is a plain number (`+` and digits) that fits the pattern (`*` as
//!   above), at the trunk's own host (`SIP_DOMAIN` or `SIP_SERVER`), so it needs trunk mode.
//!
//! Destinations are checked strictly before matching: no URI headers (`?`), no percent-escapes,
//! no URI parameters except `user=phone|ip` and `transport=udp|tcp|tls` (so `;maddr=` cannot send
//! the INVITE elsewhere than the host that was checked), no password in the user part. The
//! checks are pure ([`OutboundPolicy::check`]); the handler only calls them.

use std::fmt;

use axum::http::StatusCode;

use super::guard::Refusal;

/// One entry of `OUTBOUND_ALLOWED`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundPattern {
    kind: Kind,
    /// As written, for messages.
    text: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Uri {
        secure_only: bool,
        /// Glob over the user part (`*` = any run of characters).
        user: String,
        host: String,
        port: Option<u16>,
    },
    /// Glob over a plain number, at the trunk's host.
    Number(String),
}

impl OutboundPattern {
    /// Parses one pattern; the error completes "`…` is …".
    pub fn parse(s: &str) -> Result<OutboundPattern, String> {
        let text = s.trim().to_string();
        let lower = text.to_ascii_lowercase();
        let kind = if lower.starts_with("sip:") || lower.starts_with("sips:") {
            let d = parse_uri(&text, true).map_err(|e| format!("not a SIP URI pattern: {e}"))?;
            Kind::Uri {
                secure_only: d.secure,
                user: d.user.unwrap_or_else(|| "*".into()),
                host: d.host,
                port: d.port,
            }
        } else {
            let number = if lower.starts_with("tel:") {
                &text[4..]
            } else {
                &text[..]
            };
            if !is_number(number, true) {
                return Err(
                    "neither a SIP URI pattern (sip:*@pbx.example) nor a number pattern \
                     (+4930*, tel:+4930*)"
                        .into(),
                );
            }
            Kind::Number(number.to_string())
        };
        Ok(OutboundPattern { kind, text })
    }

    /// Whether this is a number pattern (which needs the trunk's host).
    pub fn is_number(&self) -> bool {
        matches!(self.kind, Kind::Number(_))
    }

    fn matches(&self, d: &Destination, trunk_hosts: &[String]) -> bool {
        match &self.kind {
            Kind::Uri {
                secure_only,
                user,
                host,
                port,
            } => {
                (!secure_only || d.secure)
                    && *host == d.host
                    && port.is_none_or(|p| d.port == Some(p))
                    && glob(user, d.user.as_deref().unwrap_or(""))
            }
            Kind::Number(pattern) => {
                let Some(user) = d.user.as_deref() else {
                    return false;
                };
                is_number(user, false) && trunk_hosts.contains(&d.host) && glob(pattern, user)
            }
        }
    }
}

impl fmt::Display for OutboundPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// `OUTBOUND_ALLOWED` and the trunk's host names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutboundPolicy {
    patterns: Vec<OutboundPattern>,
    /// Lower-case hosts number patterns apply to (`SIP_DOMAIN`, `SIP_SERVER` without port).
    trunk_hosts: Vec<String>,
}

impl OutboundPolicy {
    pub fn new(patterns: Vec<OutboundPattern>, trunk_hosts: &[&str]) -> Self {
        OutboundPolicy {
            patterns,
            trunk_hosts: trunk_hosts.iter().map(|h| normalise_host(h)).collect(),
        }
    }

    /// The configured patterns, as written.
    pub fn patterns(&self) -> &[OutboundPattern] {
        &self.patterns
    }

    /// Whether any destination is allowed at all.
    pub fn is_enabled(&self) -> bool {
        !self.patterns.is_empty()
    }

    /// `Ok` when `uri` may be called through the API; else a 403 (disabled, not allowed) or 400
    /// (not a plain SIP URI) with a message that says what to do.
    pub fn check(&self, uri: &str) -> Result<(), Refusal> {
        if !self.is_enabled() {
            return Err(Refusal {
                status: StatusCode::FORBIDDEN,
                message: "outbound calls through the API are disabled; set OUTBOUND_ALLOWED to \
                          the destinations it may call (e.g. sip:*@pbx.example or +4930*)"
                    .into(),
            });
        }
        let d = parse_uri(uri, false).map_err(|e| Refusal {
            status: StatusCode::BAD_REQUEST,
            message: format!("uri is not a plain SIP URI: {e}"),
        })?;
        if self
            .patterns
            .iter()
            .any(|p| p.matches(&d, &self.trunk_hosts))
        {
            Ok(())
        } else {
            Err(Refusal {
                status: StatusCode::FORBIDDEN,
                message: "this destination is not in OUTBOUND_ALLOWED; add a pattern for it \
                          to OUTBOUND_ALLOWED if the API may call it"
                    .into(),
            })
        }
    }
}

/// A SIP URI reduced to what the policy looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Destination {
    secure: bool,
    user: Option<String>,
    /// Lower case, without a trailing dot; IPv6 in brackets.
    host: String,
    port: Option<u16>,
}

fn normalise_host(h: &str) -> String {
    let h = h.trim().to_ascii_lowercase();
    match h.strip_suffix('.') {
        Some(stripped) => stripped.to_string(),
        None => h,
    }
}

/// `+`? digits, and `*` when `glob` (a pattern).
fn is_number(s: &str, glob: bool) -> bool {
    let digits = s.strip_prefix('+').unwrap_or(s);
    !digits.is_empty()
        && digits.len() <= 32
        && digits
            .bytes()
            .all(|b| b.is_ascii_digit() || (glob && b == b'*'))
        && digits.bytes().any(|b| b.is_ascii_digit())
}

/// `sip:`/`sips:` `[user@]host[:port][;params]`, strictly (see the module docs); `pattern`
/// allows `*` in the user part and no parameters.
fn parse_uri(s: &str, pattern: bool) -> Result<Destination, String> {
    let lower = s.get(..5).map(str::to_ascii_lowercase).unwrap_or_default();
    let (secure, rest) = if lower.starts_with("sips:") {
        (true, &s[5..])
    } else if lower.starts_with("sip:") {
        (false, &s[4..])
    } else {
        return Err("it must start with sip: or sips:".into());
    };
    if s.len() > 512 {
        return Err("longer than 512 characters".into());
    }
    if let Some(c) = rest.chars().find(|c| {
        !(c.is_ascii_alphanumeric() || "-_.+;=:@[]".contains(*c) || (pattern && *c == '*'))
    }) {
        return Err(match c {
            '?' => "URI headers (`?…`) are not allowed".into(),
            '%' => "percent-escapes are not allowed; write the number or name plainly".into(),
            c => format!("the character {c:?} is not allowed"),
        });
    }
    let (user, host_part) = match rest.split_once('@') {
        Some((user, host)) => {
            if user.is_empty() || user.contains([';', ':', '@']) {
                return Err(
                    "the user part must be a plain name or number (no ; : or password)".into(),
                );
            }
            if host.contains('@') {
                return Err("more than one @".into());
            }
            (Some(user.to_string()), host)
        }
        None => (None, rest),
    };
    let (host_port, params) = match host_part.split_once(';') {
        Some((hp, params)) => (hp, Some(params)),
        None => (host_part, None),
    };
    if let Some(params) = params {
        if pattern {
            return Err("URI parameters are not part of a pattern".into());
        }
        for param in params.split(';') {
            let (name, value) = param.split_once('=').unwrap_or((param, ""));
            let ok = match name.to_ascii_lowercase().as_str() {
                "user" => ["phone", "ip"].contains(&value.to_ascii_lowercase().as_str()),
                "transport" => ["udp", "tcp", "tls"].contains(&value.to_ascii_lowercase().as_str()),
                _ => false,
            };
            if !ok {
                return Err(format!(
                    "the URI parameter `{}` is not allowed (only user=phone and transport=udp|tcp|tls)",
                    param.chars().take(40).collect::<String>()
                ));
            }
        }
    }
    let (host, port) = if let Some(v6) = host_port.strip_prefix('[') {
        let (inside, tail) = v6.split_once(']').ok_or("an IPv6 host without ]")?;
        let ip: std::net::Ipv6Addr = inside.parse().map_err(|_| "not an IPv6 address in [ ]")?;
        let port = match tail {
            "" => None,
            t => Some(t.strip_prefix(':').ok_or("junk after the IPv6 host")?),
        };
        (format!("[{ip}]"), port)
    } else {
        let (h, p) = match host_port.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (host_port, None),
        };
        let h = normalise_host(h);
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        if h.len() > 253 || !h.split('.').all(label_ok) {
            return Err("no valid host".into());
        }
        (h, p)
    };
    let port = match port {
        None => None,
        Some(p) => Some(parse_port(p).ok_or("a bad port (1–65535)")?),
    };
    Ok(Destination {
        secure,
        user,
        host,
        port,
    })
}

fn parse_port(s: &str) -> Option<u16> {
    if s.is_empty() || s.len() > 5 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok().filter(|p| *p > 0)
}

/// `*` matches any run of characters (also none); everything else itself.
fn glob(pattern: &str, text: &str) -> bool {
    let p = pattern.as_bytes();
    let t = text.as_bytes();
    // Iterative matching with backtracking to the last `*`: linear enough for short inputs and
    // never exponential.
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&b| b == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(patterns: &[&str], trunk: &[&str]) -> OutboundPolicy {
        OutboundPolicy::new(
            patterns
                .iter()
                .map(|p| OutboundPattern::parse(p).unwrap())
                .collect(),
            trunk,
        )
    }

    fn status(p: &OutboundPolicy, uri: &str) -> u16 {
        match p.check(uri) {
            Ok(()) => 200,
            Err(r) => r.status.as_u16(),
        }
    }

    #[test]
    fn empty_disables_the_outbound_api_and_names_the_key() {
        let p = OutboundPolicy::default();
        assert!(!p.is_enabled());
        let e = p.check("sip:desk@127.0.0.1").unwrap_err();
        assert_eq!(e.status, StatusCode::FORBIDDEN);
        assert!(e.message.contains("set OUTBOUND_ALLOWED"), "{}", e.message);
    }

    #[test]
    fn uri_patterns_match_user_globs_on_exactly_their_host() {
        let p = policy(
            &[
                "sip:*@PBX.example.",
                "sip:+4930*@sipgate.de",
                "sips:desk@secure.example:5061",
            ],
            &[],
        );
        assert_eq!(status(&p, "sip:anyone@pbx.example"), 200);
        assert_eq!(status(&p, "SIP:anyone@PBX.EXAMPLE:5080"), 200);
        assert_eq!(status(&p, "sips:anyone@pbx.example"), 200);
        assert_eq!(status(&p, "sip:pbx.example"), 200);
        assert_eq!(status(&p, "sip:+4930123456@sipgate.de;user=phone"), 200);
        assert_eq!(status(&p, "sip:+4930123456@sipgate.de;transport=tcp"), 200);
        assert_eq!(status(&p, "sips:desk@secure.example:5061"), 200);

        for refused in [
            "sip:anyone@pbx.example.evil",
            "sip:anyone@evil.pbx.example",
            "sip:anyone@evilpbx.example",
            "sip:+4940123456@sipgate.de",
            "sip:+49301@sipgate.de.evil.example",
            "sip:desk@secure.example:5061",
            "sips:desk@secure.example",
            "sips:desk@secure.example:5062",
            "sip:+4930123@127.0.0.1",
        ] {
            assert_eq!(status(&p, refused), 403, "{refused}");
        }
        let e = p.check("sip:x@evil.example").unwrap_err();
        assert!(e.message.contains("OUTBOUND_ALLOWED"), "{}", e.message);
    }

    #[test]
    fn number_patterns_apply_at_the_trunk_only() {
        let p = policy(
            &["+4930*", "tel:0800*", "+4989123456"],
            &["sipgate.de", "sip.sipgate.de"],
        );
        assert!(p.patterns[0].is_number());
        assert_eq!(status(&p, "sip:+4930123456@sipgate.de"), 200);
        assert_eq!(status(&p, "sip:+4930123456@SIP.SIPGATE.DE:5060"), 200);
        assert_eq!(status(&p, "sip:0800123@sipgate.de"), 200);
        assert_eq!(status(&p, "sip:+4989123456@sipgate.de"), 200);
        for refused in [
            "sip:+4930123456@evil.example",
            "sip:+4940123456@sipgate.de",
            "sip:+49891234567@sipgate.de",
            "sip:004930123456@sipgate.de",
            "sip:+49-30-123@sipgate.de",
            "sip:+4930abc@sipgate.de",
            "sip:sipgate.de",
            "sip:+4930@sipgate.de.evil",
        ] {
            assert_eq!(status(&p, refused), 403, "{refused}");
        }
        // Without a trunk, number patterns match nothing.
        let ip_mode = policy(&["+4930*"], &[]);
        assert_eq!(status(&ip_mode, "sip:+4930123@127.0.0.1"), 403);
    }

    #[test]
    fn tricky_destinations_are_refused_before_matching() {
        let p = policy(&["sip:*@pbx.example"], &[]);
        for bad in [
            "sip:x@pbx.example;maddr=evil.example",
            "sip:x@pbx.example;lr",
            "sip:x@pbx.example;transport=ws",
            "sip:x@pbx.example?Replaces=abc",
            "sip:x@pbx.example?Route=%3Csip:evil.example%3E",
            "sip:%2B4930@pbx.example",
            "sip:x:secret@pbx.example",
            "sip:x;user=phone@evil.example",
            "sip:x@evil.example@pbx.example",
            "sip:x@pbx.example:0",
            "sip:x@pbx.example:99999",
            "sip:x@pbx.example:",
            "sip:x@",
            "sip:@pbx.example",
            "sip:x@pbx..example",
            "sip:x @pbx.example",
            "sip:x@pbx.example\r\nVia: evil",
            "sip:*@pbx.example",
            "sip:x@[::1",
            "tel:+4930123",
            "http://pbx.example",
            "",
        ] {
            assert_eq!(status(&p, bad), 400, "{bad:?}");
        }
        let long = format!("sip:{}@pbx.example", "a".repeat(600));
        assert_eq!(status(&p, &long), 400);
        let e = p.check("sip:x@pbx.example;maddr=evil.example").unwrap_err();
        assert!(e.message.contains("maddr"), "{}", e.message);
    }

    #[test]
    fn ipv6_hosts_and_ports() {
        let p = policy(&["sip:*@[2001:DB8::1]:5060", "sip:*@127.0.0.1"], &[]);
        assert_eq!(status(&p, "sip:a@[2001:db8::1]:5060"), 200);
        assert_eq!(status(&p, "sip:a@[2001:db8::1]"), 403);
        assert_eq!(status(&p, "sip:a@127.0.0.1:5062"), 200);
        assert_eq!(status(&p, "sip:a@127.0.0.2"), 403);
    }

    #[test]
    fn patterns_parse_strictly() {
        for bad in [
            "",
            "*",
            "sip:*@*.example",
            "sip:*@pbx.example;maddr=x",
            "+49 30*",
            "+",
            "tel:",
            "pbx.example",
            "sip:*@",
        ] {
            assert!(OutboundPattern::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            OutboundPattern::parse(" sip:+4930*@sipgate.de ")
                .unwrap()
                .to_string(),
            "sip:+4930*@sipgate.de"
        );
    }

    #[test]
    fn glob_matches_runs_and_is_not_exponential() {
        assert!(glob("*", ""));
        assert!(glob("+4930*", "+4930"));
        assert!(glob("a*b*c", "axxbyyc"));
        assert!(!glob("a*b*c", "axxbyy"));
        assert!(glob("*1", "0001"));
        assert!(!glob("abc", "abcd"));
        let text = "a".repeat(500);
        let pattern = format!("{}b", "*a".repeat(20));
        assert!(!glob(&pattern, &text));
    }
}
