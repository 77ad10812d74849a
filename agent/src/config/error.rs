//! Configuration errors and warnings, shaped so an operator can fix the setting from the message
//! alone: which key, which value (never a secret's), where it came from, what is wrong, what to
//! set instead.

use std::fmt;

/// One bad setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The key, e.g. `SIP_PORT` (or the file/source key, e.g. `VOICEAGENT_CONFIG`).
    pub key: String,
    /// The value as given; `None` when the key is unset or its value is secret.
    pub value: Option<String>,
    /// Whether the key is set to a secret value that is deliberately not shown.
    pub hidden: bool,
    /// Where the value came from when not the process environment, e.g. `./.env`.
    pub origin: Option<String>,
    /// What is wrong, e.g. "not a port number (1–65535)".
    pub problem: String,
    /// How to fix it, e.g. "set SIP_PORT to the UDP/TCP port to listen on, e.g. 5060".
    pub fix: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.key)?;
        if let Some(value) = &self.value {
            write!(f, "={value}")?;
        } else if self.hidden {
            f.write_str(" (value hidden)")?;
        }
        if let Some(origin) = &self.origin {
            write!(f, " (from {origin})")?;
        }
        write!(f, ": {}; {}", self.problem, self.fix)
    }
}

/// Something probably unintended that does not stop the service, e.g. a misspelt key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigWarning {
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// Every error found in one pass, plus the warnings (a typo warning often explains an error,
/// e.g. `SIP_PASSWROD` next to "SIP_PASSWORD is required").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors {
    pub errors: Vec<ConfigError>,
    pub warnings: Vec<ConfigWarning>,
}

impl ConfigErrors {
    /// The error for this key, if any (mostly for tests).
    pub fn for_key(&self, key: &str) -> Option<&ConfigError> {
        self.errors.iter().find(|e| e.key == key)
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.errors.len();
        write!(
            f,
            "{n} configuration error{}:",
            if n == 1 { "" } else { "s" }
        )?;
        for error in &self.errors {
            write!(f, "\n  - {error}")?;
        }
        for warning in &self.warnings {
            write!(f, "\n  warning: {warning}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}
