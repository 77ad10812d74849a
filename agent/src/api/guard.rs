//! Host and Origin checks: the API against DNS rebinding and cross-site requests from browsers.
//!
//! Why: the API listens on loopback or a private address and trusts whoever reaches it (with the
//! bearer token when one is set). A web page the operator happens to open can reach that address
//! too, in two ways:
//!
//! - **DNS rebinding**: a name the attacker controls first resolves to their server, then to
//!   127.0.0.1. The browser then treats the API as the attacker's own origin and lets the page
//!   read it and `POST /api/calls`. Such requests carry the attacker's name in `Host`, so the API
//!   answers only to the names it knows: its bind address, `localhost` on loopback, and
//!   `API_ALLOWED_HOSTS`. An IP literal can never be rebound, which is why any IP literal with
//!   the right port is accepted when the API is bound to 0.0.0.0 or `::` (we cannot know every
//!   address of the machine, and the browser sent exactly what the operator typed).
//! - **Cross-site requests (CSRF)**: a page elsewhere submits a form or `fetch` to
//!   `http://127.0.0.1:8085/api/calls`. It cannot read the answer, but the call is placed. Browsers
//!   mark such requests with `Origin` and `Sec-Fetch-Site`, so state-changing requests (anything
//!   but GET, HEAD and OPTIONS) are refused when `Origin` names another origin (or is `null`) or
//!   `Sec-Fetch-Site` is anything but `same-origin`/`none`. Clients that are not browsers (curl,
//!   scripts) send neither header and are not affected; the dashboard is served by the API
//!   itself, so its requests are same-origin.
//!
//! `/healthz` is exempt from the Host check: it holds no data, and container health checks and
//! load balancers probe it under whatever name they know. `/metrics` is not exempt (it holds
//! call counts); Prometheus scrapes the bind address, or a name listed in `API_ALLOWED_HOSTS`.
//!
//! The decisions are pure functions over header values ([`HostPolicy::check_host`],
//! [`HostPolicy::check_origin`]), so every odd input has a unit test; [`enforce`] only feeds them.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderName, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;

use super::Api;

/// Paths answered whatever the `Host` (liveness probes).
const HOST_EXEMPT_PATHS: &[&str] = &["/healthz"];

/// Longest host name DNS allows (253) plus a port and brackets; anything longer is refused
/// without being parsed further or echoed.
const MAX_AUTHORITY_LEN: usize = 270;

/// Why a request is refused: the status and the message of the JSON error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: StatusCode,
    pub message: String,
}

impl Refusal {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Refusal {
            status,
            message: message.into(),
        }
    }
}

/// The host half of an authority, normalised: IP addresses parsed, names in lower case without
/// a trailing dot.
#[derive(Debug, Clone, PartialEq, Eq)]
enum HostName {
    Ip(IpAddr),
    Name(String),
}

impl fmt::Display for HostName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostName::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
            HostName::Ip(ip) => write!(f, "{ip}"),
            HostName::Name(name) => f.write_str(name),
        }
    }
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`, as in `Host` and `Origin`; `None` when malformed.
fn parse_authority(s: &str) -> Option<(HostName, Option<u16>)> {
    if s.is_empty() || s.len() > MAX_AUTHORITY_LEN {
        return None;
    }
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (inside, tail) = rest.split_once(']')?;
        // Zone ids (`%eth0`) never appear in a browser's Host; refuse rather than guess.
        let ip: Ipv6Addr = inside.parse().ok()?;
        let port = match tail {
            "" => None,
            t => Some(parse_port(t.strip_prefix(':')?)?),
        };
        return Some((HostName::Ip(IpAddr::V6(ip)), port));
    } else {
        match s.split_once(':') {
            Some((host, port)) => (host, Some(parse_port(port)?)),
            None => (s, None),
        }
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Some((HostName::Ip(ip), port));
    }
    let valid_label = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if host.len() > 253 || !host.split('.').all(valid_label) {
        return None;
    }
    Some((HostName::Name(host.to_ascii_lowercase()), port))
}

fn parse_port(s: &str) -> Option<u16> {
    if s.is_empty() || s.len() > 5 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok().filter(|p| *p > 0)
}

/// One entry of `API_ALLOWED_HOSTS`: a name or IP address, with or without a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedHost {
    host: HostName,
    /// `None`: any port.
    port: Option<u16>,
}

impl AllowedHost {
    /// `voiceagent.internal`, `voiceagent.internal:8085`, `10.8.0.1`, `[fd00::1]:8085`; the
    /// error completes "`…` is …".
    pub fn parse(s: &str) -> Result<AllowedHost, String> {
        if s.contains("://") || s.contains('/') {
            return Err(
                "a URL, but a host name or host:port is expected (no scheme, no path)".into(),
            );
        }
        match parse_authority(s.trim()) {
            Some((host, port)) => Ok(AllowedHost { host, port }),
            None => Err(
                "not a host name, IP address or host:port (write IPv6 addresses as [fd00::1]:8085)"
                    .into(),
            ),
        }
    }
}

impl fmt::Display for AllowedHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.port {
            Some(p) => write!(f, "{}:{p}", self.host),
            None => write!(f, "{}", self.host),
        }
    }
}

/// Which `Host` and `Origin` values the API accepts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostPolicy {
    /// The address the API listens on; `None` (the router without [`super::serve`], as in
    /// tests): loopback addresses and `localhost` on any port.
    pub bind: Option<SocketAddr>,
    /// `API_ALLOWED_HOSTS`.
    pub allowed: Vec<AllowedHost>,
}

impl HostPolicy {
    /// Whether `host` on `port` (the scheme's default when the authority has none) is ours.
    fn allows(&self, host: &HostName, port: u16) -> bool {
        let listed = self
            .allowed
            .iter()
            .any(|a| a.host == *host && a.port.is_none_or(|p| p == port));
        if listed {
            return true;
        }
        let Some(bind) = self.bind else {
            return match host {
                HostName::Ip(ip) => ip.to_canonical().is_loopback(),
                HostName::Name(name) => name == "localhost",
            };
        };
        if port != bind.port() {
            return false;
        }
        let bound = bind.ip().to_canonical();
        match host {
            HostName::Ip(ip) => bound.is_unspecified() || ip.to_canonical() == bound,
            HostName::Name(name) => {
                name == "localhost" && (bound.is_loopback() || bound.is_unspecified())
            }
        }
    }

    /// The request's `Host` (HTTP/1.1) or URI authority (HTTP/2), checked against the policy.
    pub fn check_host(&self, host: Option<&str>) -> Result<(), Refusal> {
        let Some(host) = host else {
            return Err(Refusal::new(
                StatusCode::BAD_REQUEST,
                "the request has no Host header",
            ));
        };
        let Some((name, port)) = parse_authority(host) else {
            return Err(Refusal::new(
                StatusCode::BAD_REQUEST,
                "the Host header is not a host[:port]",
            ));
        };
        // The API speaks plain HTTP; behind a TLS proxy the proxy's name is listed without a port.
        if self.allows(&name, port.unwrap_or(80)) {
            return Ok(());
        }
        let shown = match port {
            Some(p) => format!("{name}:{p}"),
            None => name.to_string(),
        };
        Err(Refusal::new(
            StatusCode::MISDIRECTED_REQUEST,
            format!(
                "Host `{shown}` is not an address of this API (a DNS rebinding attempt, or a name \
                 the operator has not configured); if it is yours, add it to API_ALLOWED_HOSTS"
            ),
        ))
    }

    /// For state-changing methods: refuses requests a browser marks as coming from another site.
    pub fn check_origin(
        &self,
        method: &Method,
        origin: Option<&str>,
        fetch_site: Option<&str>,
    ) -> Result<(), Refusal> {
        if is_safe(method) {
            return Ok(());
        }
        if let Some(site) = fetch_site {
            let site = site.trim();
            if !(site.eq_ignore_ascii_case("same-origin") || site.eq_ignore_ascii_case("none")) {
                return Err(Refusal::new(
                    StatusCode::FORBIDDEN,
                    "cross-site request refused: the browser sent it from another site \
                     (Sec-Fetch-Site); use the dashboard served by this API, or a client that \
                     is not a browser",
                ));
            }
        }
        let Some(origin) = origin else {
            return Ok(());
        };
        let ours = parse_origin(origin.trim()).is_some_and(|(host, port)| self.allows(&host, port));
        if ours {
            Ok(())
        } else {
            Err(Refusal::new(
                StatusCode::FORBIDDEN,
                "cross-origin request refused: Origin is not this API (add its host to \
                 API_ALLOWED_HOSTS if the page is yours)",
            ))
        }
    }
}

/// Methods that change nothing on this API.
fn is_safe(method: &Method) -> bool {
    method == Method::GET || method == Method::HEAD || method == Method::OPTIONS
}

/// `http://host[:port]` or `https://host[:port]` (an Origin has no path); `null` and anything
/// else are `None`.
fn parse_origin(origin: &str) -> Option<(HostName, u16)> {
    let lower = origin.get(..8).map(str::to_ascii_lowercase)?;
    let (authority, default_port) = if lower.starts_with("http://") {
        (&origin[7..], 80)
    } else if lower.starts_with("https://") {
        (&origin[8..], 443)
    } else {
        return None;
    };
    let (host, port) = parse_authority(authority)?;
    Some((host, port.unwrap_or(default_port)))
}

/// The only value of a header, or `Err` when it appears more than once; not UTF-8 counts as a
/// value that matches nothing.
fn single<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Result<Option<&'a str>, Refusal> {
    let mut values = headers.get_all(name).iter();
    let first = values.next();
    if values.next().is_some() {
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            format!("the request has more than one {name} header"),
        ));
    }
    Ok(first.map(|v| v.to_str().unwrap_or("\u{fffd}")))
}

/// Both checks for one request.
fn check_request(policy: &HostPolicy, request: &Request) -> Result<(), Refusal> {
    let headers = request.headers();
    if !HOST_EXEMPT_PATHS.contains(&request.uri().path()) {
        let host = match single(headers, &header::HOST)? {
            Some(h) => Some(h),
            // HTTP/2 carries the authority in the URI instead.
            None => request.uri().authority().map(|a| a.as_str()),
        };
        policy.check_host(host)?;
    }
    let origin = single(headers, &header::ORIGIN)?;
    let fetch_site = single(headers, &HeaderName::from_static("sec-fetch-site"))?;
    policy.check_origin(request.method(), origin, fetch_site)
}

/// The axum layer: refuses with a JSON error, else passes the request on.
pub(super) async fn enforce(State(api): State<Api>, request: Request, next: Next) -> Response {
    match check_request(&api.settings.hosts, &request) {
        Ok(()) => next.run(request).await,
        Err(refusal) => {
            // Debug only: refusals are cheap to provoke, and the log must not be a disk filler.
            tracing::debug!(status = %refusal.status, "request refused: {}", refusal.message);
            super::error(refusal.status, &refusal.message)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(bind: &str, allowed: &[&str]) -> HostPolicy {
        HostPolicy {
            bind: Some(bind.parse().unwrap()),
            allowed: allowed
                .iter()
                .map(|a| AllowedHost::parse(a).unwrap())
                .collect(),
        }
    }

    fn host_status(p: &HostPolicy, host: Option<&str>) -> u16 {
        match p.check_host(host) {
            Ok(()) => 200,
            Err(r) => r.status.as_u16(),
        }
    }

    #[test]
    fn the_bind_address_and_localhost_on_loopback_are_accepted() {
        let p = policy("127.0.0.1:8085", &[]);
        for ok in [
            "127.0.0.1:8085",
            "localhost:8085",
            "LOCALHOST:8085",
            "localhost.:8085",
            "127.0.0.1.:8085",
        ] {
            assert_eq!(host_status(&p, Some(ok)), 200, "{ok}");
        }
        let p6 = policy("[::1]:8085", &[]);
        assert_eq!(host_status(&p6, Some("[::1]:8085")), 200);
        assert_eq!(host_status(&p6, Some("localhost:8085")), 200);
        assert_eq!(host_status(&p6, Some("[0:0:0:0:0:0:0:1]:8085")), 200);
    }

    #[test]
    fn foreign_names_ports_and_addresses_are_refused() {
        let p = policy("127.0.0.1:8085", &[]);
        for foreign in [
            "evil.example:8085",
            "rebind.127.0.0.1.nip.io:8085",
            "127.0.0.1:8086",
            "127.0.0.1",
            "localhost",
            "127.0.0.2:8085",
            "[::1]:8085",
            "10.0.0.1:8085",
        ] {
            assert_eq!(host_status(&p, Some(foreign)), 421, "{foreign}");
        }
        let e = p.check_host(Some("evil.example:8085")).unwrap_err();
        assert!(e.message.contains("API_ALLOWED_HOSTS"), "{}", e.message);
        assert!(e.message.contains("evil.example:8085"), "{}", e.message);
        // localhost is ours only when the API is bound to loopback.
        let lan = policy("10.0.0.2:8085", &[]);
        assert_eq!(host_status(&lan, Some("localhost:8085")), 421);
        assert_eq!(host_status(&lan, Some("10.0.0.2:8085")), 200);
    }

    #[test]
    fn missing_malformed_and_huge_hosts_are_bad_requests() {
        let p = policy("127.0.0.1:8085", &[]);
        for bad in [
            None,
            Some(""),
            Some(":8085"),
            Some("127.0.0.1:"),
            Some("127.0.0.1:0"),
            Some("127.0.0.1:99999"),
            Some("127.0.0.1:+80"),
            Some("127.0.0.1:8085:1"),
            Some("[::1"),
            Some("[::1]8085"),
            Some("[fe80::1%eth0]:8085"),
            Some("a b:8085"),
            Some("evil.example/x:8085"),
            Some("user@127.0.0.1:8085"),
            Some("a..b:8085"),
        ] {
            assert_eq!(host_status(&p, bad), 400, "{bad:?}");
        }
        let long = format!("{}.example:8085", "a".repeat(10_000));
        let e = p.check_host(Some(&long)).unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert!(e.message.len() < 200, "the huge value is not echoed");
        let label = format!("{}.example:8085", "a".repeat(64));
        assert_eq!(host_status(&p, Some(&label)), 400);
    }

    #[test]
    fn a_wildcard_bind_accepts_ip_literals_on_its_port_but_no_names() {
        let p = policy("0.0.0.0:8085", &[]);
        assert_eq!(host_status(&p, Some("203.0.113.5:8085")), 200);
        assert_eq!(host_status(&p, Some("[2001:db8::5]:8085")), 200);
        assert_eq!(host_status(&p, Some("localhost:8085")), 200);
        assert_eq!(host_status(&p, Some("203.0.113.5:9000")), 421);
        assert_eq!(host_status(&p, Some("voiceagent.example:8085")), 421);
    }

    #[test]
    fn configured_names_match_case_insensitively_with_or_without_a_port() {
        let p = policy(
            "0.0.0.0:8085",
            &["VoiceAgent.Example.", "proxy.example:443", "[fd00::1]:8085"],
        );
        assert_eq!(host_status(&p, Some("voiceagent.example")), 200);
        assert_eq!(host_status(&p, Some("voiceagent.example:1234")), 200);
        assert_eq!(host_status(&p, Some("VOICEAGENT.EXAMPLE.:8085")), 200);
        assert_eq!(host_status(&p, Some("proxy.example:443")), 200);
        assert_eq!(host_status(&p, Some("proxy.example")), 421);
        assert_eq!(host_status(&p, Some("proxy.example:8085")), 421);
        assert_eq!(host_status(&p, Some("[fd00::1]:8085")), 200);
        assert_eq!(host_status(&p, Some("sub.voiceagent.example")), 421);
        assert_eq!(host_status(&p, Some("voiceagent.example.evil")), 421);
    }

    #[test]
    fn allowed_hosts_parse_strictly() {
        assert_eq!(
            AllowedHost::parse("Example.COM:8085").unwrap().to_string(),
            "example.com:8085"
        );
        assert_eq!(
            AllowedHost::parse("[fd00::1]").unwrap().to_string(),
            "[fd00::1]"
        );
        for bad in [
            "http://example.com",
            "example.com/api",
            "example.com:0",
            "fd00::1",
            "*.example.com",
            "",
        ] {
            assert!(AllowedHost::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn without_a_bind_address_loopback_on_any_port_is_accepted() {
        let p = HostPolicy::default();
        assert_eq!(host_status(&p, Some("127.0.0.1:4711")), 200);
        assert_eq!(host_status(&p, Some("[::1]:4711")), 200);
        assert_eq!(host_status(&p, Some("localhost")), 200);
        assert_eq!(host_status(&p, Some("evil.example:4711")), 421);
        assert_eq!(host_status(&p, Some("192.168.1.1:4711")), 421);
    }

    fn origin_status(
        p: &HostPolicy,
        method: Method,
        origin: Option<&str>,
        site: Option<&str>,
    ) -> u16 {
        match p.check_origin(&method, origin, site) {
            Ok(()) => 200,
            Err(r) => r.status.as_u16(),
        }
    }

    #[test]
    fn state_changing_requests_from_other_origins_are_refused() {
        let p = policy("127.0.0.1:8085", &["ops.example"]);
        let post = || Method::POST;
        // Ours, and clients that are not browsers.
        assert_eq!(origin_status(&p, post(), None, None), 200);
        assert_eq!(
            origin_status(&p, post(), Some("http://127.0.0.1:8085"), None),
            200
        );
        assert_eq!(
            origin_status(
                &p,
                post(),
                Some("HTTP://LOCALHOST:8085"),
                Some("same-origin")
            ),
            200
        );
        assert_eq!(
            origin_status(&p, post(), Some("https://ops.example"), None),
            200
        );
        assert_eq!(origin_status(&p, post(), None, Some("none")), 200);
        // Theirs.
        for origin in [
            "http://evil.example",
            "http://127.0.0.1:3000",
            "http://127.0.0.1",
            "null",
            "NULL",
            "",
            "file://",
            "http://127.0.0.1:8085/path",
            "127.0.0.1:8085",
            "http://user@127.0.0.1:8085",
            "https://ops.example.evil",
        ] {
            assert_eq!(
                origin_status(&p, post(), Some(origin), None),
                403,
                "{origin}"
            );
        }
        let long = format!("http://{}.example", "a".repeat(10_000));
        assert_eq!(origin_status(&p, post(), Some(&long), None), 403);
        for site in ["cross-site", "CROSS-SITE", "same-site", "bogus", ""] {
            assert_eq!(
                origin_status(&p, post(), Some("http://127.0.0.1:8085"), Some(site)),
                403,
                "{site}"
            );
        }
        for method in [Method::PUT, Method::PATCH, Method::DELETE] {
            assert_eq!(
                origin_status(&p, method, Some("http://evil.example"), None),
                403
            );
        }
        let e = p
            .check_origin(&Method::POST, Some("http://evil.example"), None)
            .unwrap_err();
        assert!(e.message.contains("cross-origin"), "{}", e.message);
    }

    #[test]
    fn reading_is_not_subject_to_the_origin_check() {
        let p = policy("127.0.0.1:8085", &[]);
        for method in [Method::GET, Method::HEAD, Method::OPTIONS] {
            assert_eq!(
                origin_status(&p, method, Some("http://evil.example"), Some("cross-site")),
                200
            );
        }
    }
}
