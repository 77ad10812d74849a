//! Host and port out of the SIP URIs an operator configures (registrar, proxy), for the
//! resolution that tells the engine which addresses are the trunk's. Not a SIP parser: the
//! inputs are our own configuration, and PJSIP parses everything that comes off the wire.

/// `sip:host:port;params`, `<sip:user@host>`, `host`, `[2001:db8::1]:5070` → host and port
/// (5060 when none is given, 5061 for `sips:`).
pub(crate) fn host_port(uri: &str) -> Option<(String, u16)> {
    let uri = uri.trim().trim_start_matches('<');
    let (rest, default_port) = if let Some(r) = uri.strip_prefix("sips:") {
        (r, 5061)
    } else {
        (uri.strip_prefix("sip:").unwrap_or(uri), 5060)
    };
    let rest = rest.split([';', '>', '?']).next().unwrap_or(rest);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        (host, after.strip_prefix(':'))
    } else {
        match rest.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (rest, None),
        }
    };
    if host.is_empty() {
        return None;
    }
    let port = match port {
        Some(p) => p.parse().ok()?,
        None => default_port,
    };
    Some((host.to_string(), port))
}

#[cfg(test)]
mod tests {
    use super::host_port;

    fn hp(s: &str) -> Option<(String, u16)> {
        host_port(s)
    }

    #[test]
    fn registrar_and_proxy_forms() {
        assert_eq!(hp("sipgate.de"), Some(("sipgate.de".into(), 5060)));
        assert_eq!(hp("sip:sipgate.de:5070"), Some(("sipgate.de".into(), 5070)));
        assert_eq!(
            hp("sip:proxy.example.com;lr"),
            Some(("proxy.example.com".into(), 5060))
        );
        assert_eq!(
            hp("<sip:proxy.example.com:5080;lr>"),
            Some(("proxy.example.com".into(), 5080))
        );
        assert_eq!(
            hp("sips:tls.example.com"),
            Some(("tls.example.com".into(), 5061))
        );
        assert_eq!(
            hp("sip:user@198.51.100.2"),
            Some(("198.51.100.2".into(), 5060))
        );
        assert_eq!(hp("[2001:db8::1]:5070"), Some(("2001:db8::1".into(), 5070)));
        assert_eq!(hp("127.0.0.1:40123"), Some(("127.0.0.1".into(), 40123)));
    }

    #[test]
    fn nonsense_gives_nothing() {
        assert_eq!(hp(""), None);
        assert_eq!(hp("sip:"), None);
        assert_eq!(hp("host:notaport"), None);
        assert_eq!(hp("[2001:db8::1"), None);
    }
}
