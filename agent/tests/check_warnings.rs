//! Start-up warnings about exposure, through the real binary: IP mode on a non-loopback address
//! without `SIP_ALLOWED_SOURCES` is announced by `voiceagent check` and logged by `voiceagent
//! run`, and not when the service is bound to loopback or has an allowlist.

mod common;

use std::time::Duration;

use common::Voiceagent;

const TIMEOUT: Duration = Duration::from_secs(30);

/// `voiceagent check`'s output (it must succeed: a warning is not a failure).
fn check(env: &[(&str, String)]) -> String {
    let mut va = Voiceagent::spawn_with(&["check"], env);
    let status = va.wait_exit(TIMEOUT);
    let output = va.log_text();
    let status = status.unwrap_or_else(|| panic!("check did not end:\n{output}"));
    assert!(status.success(), "check failed ({status}):\n{output}");
    output
}

fn exposure_warning(output: &str) -> Option<&str> {
    output
        .lines()
        .find(|l| l.contains("warning") && l.contains("SIP_ALLOWED_SOURCES"))
}

#[test]
fn check_and_run_warn_about_ip_mode_on_all_addresses_without_an_allowlist() {
    let open = [("SIP_BIND", "0.0.0.0".to_owned())];
    let output = check(&open);
    let line = exposure_warning(&output)
        .unwrap_or_else(|| panic!("check prints the exposure warning:\n{output}"));
    assert!(line.contains("SIP_BIND=0.0.0.0"), "{line}");
    assert!(line.contains("IP mode"), "{line}");
    assert!(line.contains("set SIP_ALLOWED_SOURCES"), "{line}");

    let mut va = Voiceagent::spawn_with(&["run"], &open);
    let logged = va.wait_log("SIP_ALLOWED_SOURCES", TIMEOUT);
    assert!(logged.contains("WARN"), "logged as a warning:\n{logged}");
    va.wait_log("SIP engine started", TIMEOUT);
}

#[test]
fn no_warning_on_loopback_or_with_an_allowlist() {
    // The harness binds 127.0.0.1.
    let output = check(&[]);
    assert!(exposure_warning(&output).is_none(), "{output}");
    let output = check(&[
        ("SIP_BIND", "0.0.0.0".to_owned()),
        ("SIP_ALLOWED_SOURCES", "127.0.0.1".to_owned()),
    ]);
    assert!(exposure_warning(&output).is_none(), "{output}");
}
