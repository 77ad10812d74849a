//! PJSIP's own log lines on their way into `tracing`: redacted, and rate-limited per source.
//!
//! Two things make PJSIP's log dangerous on a public address. At message-logging levels it
//! prints whole SIP messages, digest `Authorization` headers included; those values are replaced
//! here at every level, so no log level leaks a credential. And each malformed packet makes
//! PJSIP log several lines at error level (a first probe turned 100,000 garbage packets into
//! 575,000 lines), so lines of levels 1–3 pass through a [`LogLimiter`] keyed by the PJSIP file
//! that logged them: the first few in full, then one summary per minute with the count.

use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::log_limit::LogLimiter;

/// Headers whose values are credentials.
const SECRET_HEADERS: [&str; 2] = ["authorization:", "proxy-authorization:"];

/// `text` with the values of credential headers replaced by `<redacted>`.
pub(crate) fn redact(text: &str) -> Cow<'_, str> {
    let lower = text.to_ascii_lowercase();
    if !SECRET_HEADERS.iter().any(|h| lower.contains(h)) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_start();
        let lower = trimmed.to_ascii_lowercase();
        match SECRET_HEADERS.iter().find(|h| lower.starts_with(*h)) {
            Some(h) => {
                let indent = &line[..line.len() - trimmed.len()];
                let eol = &line[line.trim_end_matches(['\r', '\n']).len()..];
                out.push_str(indent);
                out.push_str(&trimmed[..h.len()]);
                out.push_str(" <redacted>");
                out.push_str(eol);
            }
            None => out.push_str(line),
        }
    }
    Cow::Owned(out)
}

/// Which budget a line counts against: its level and the PJSIP source file that logged it
/// (the first word ending in `.c`), folded into a small fixed set of keys.
fn key(level: i32, text: &str) -> u16 {
    let sender = text
        .split_whitespace()
        .take(3)
        .find(|w| w.ends_with(".c"))
        .unwrap_or("");
    let hash = sender
        .bytes()
        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
    (level.clamp(0, 7) as u16) << 8 | (hash % 64) as u16
}

const BURST: u32 = 20;
const WINDOW: Duration = Duration::from_secs(60);

static LIMITER: Mutex<Option<LogLimiter<u16>>> = Mutex::new(None);
static SUPPRESSED: AtomicU64 = AtomicU64::new(0);

/// PJSIP log lines not written because of the limit, since the process started.
pub fn suppressed_lines() -> u64 {
    SUPPRESSED.load(Ordering::Relaxed)
}

/// Whether a line at `level` may be written now; summary lines of earlier windows are written
/// first. Lines above level 3 (debug, trace: asked for explicitly) are never limited.
pub(crate) fn admit(level: i32, text: &str) -> bool {
    if level > 3 {
        return true;
    }
    let now = Instant::now();
    // The log callback runs on any PJSIP thread; contention is rare (most lines come from the
    // SIP thread), and a line that finds the lock taken is only counted.
    let Ok(mut guard) = LIMITER.try_lock() else {
        SUPPRESSED.fetch_add(1, Ordering::Relaxed);
        return false;
    };
    let limiter = guard.get_or_insert_with(|| LogLimiter::new(BURST, WINDOW));
    for (k, n) in limiter.summaries(now) {
        tracing::warn!(
            target: "pjsip",
            level = k >> 8,
            suppressed = n,
            "{n} more PJSIP log lines like the ones above were not written (rate limit)"
        );
    }
    let admitted = limiter.admit(key(level, text), now);
    if !admitted {
        SUPPRESSED.fetch_add(1, Ordering::Relaxed);
    }
    admitted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_headers_are_redacted_in_any_case_and_position() {
        let msg = "REGISTER sip:x SIP/2.0\r\nVia: SIP/2.0/UDP a\r\nAuthorization: Digest username=\"u\", response=\"0123abcd\"\r\n  proxy-AUTHORIZATION: Digest response=\"ffff\"\r\nContent-Length: 0\r\n";
        let out = redact(msg);
        assert!(!out.contains("0123abcd") && !out.contains("ffff"), "{out}");
        assert!(out.contains("Authorization: <redacted>\r\n"), "{out}");
        assert!(
            out.contains("  proxy-AUTHORIZATION: <redacted>\r\n"),
            "{out}"
        );
        assert!(out.contains("Via: SIP/2.0/UDP a\r\n") && out.ends_with("Content-Length: 0\r\n"));
    }

    #[test]
    fn lines_without_credentials_are_untouched() {
        let line = "sip_endpoint.c  Processing incoming message: Request msg OPTIONS";
        assert!(matches!(redact(line), Cow::Borrowed(_)));
        // The challenge is not a secret.
        let challenge = "WWW-Authenticate: Digest realm=\"x\", nonce=\"abc\"";
        assert_eq!(redact(challenge), challenge);
    }

    #[test]
    fn keys_separate_senders_and_levels() {
        let a = key(
            1,
            "13:00:00.000 sip_transport.c Error processing 20 bytes packet",
        );
        let b = key(
            1,
            "13:00:00.001 sip_transport.c Error processing 99 bytes packet",
        );
        let c = key(
            2,
            "13:00:00.001 sip_transport.c Error processing 99 bytes packet",
        );
        let d = key(1, "13:00:00.001 pjsua_core.c something else");
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, d);
    }
}
