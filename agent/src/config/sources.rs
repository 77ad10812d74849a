//! Where settings come from and which wins: process environment over `.env` over the TOML file
//! over built-in defaults.
//!
//! Files are parsed into plain `KEY -> text` maps so that every source goes through the same
//! typed parsing and produces the same error messages. The process environment is never
//! modified (no `set_var`): loading twice, or in parallel tests, gives the same answer.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

use super::error::{ConfigError, ConfigWarning};
use super::keys::{self, OUR_PREFIXES};

/// The inputs of [`super::Config::load`].
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// The process environment (or a test's stand-in).
    pub env: HashMap<String, String>,
    /// The `.env` file to read.
    pub env_file: EnvFile,
    /// An explicit TOML config file (a command-line argument); wins over `VOICEAGENT_CONFIG`.
    pub config_file: Option<PathBuf>,
}

/// Whether and which `.env` file is read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum EnvFile {
    /// No `.env` file.
    #[default]
    None,
    /// Read it if it exists (the default `./.env`).
    Optional(PathBuf),
    /// Read it; a missing file is an error (a path the operator named).
    Required(PathBuf),
}

impl Sources {
    /// The process environment, `$VOICEAGENT_ENV_FILE` (required) or `./.env` (if present), and
    /// no explicit config file (`VOICEAGENT_CONFIG` is still honoured).
    pub fn from_process() -> Self {
        let env: HashMap<String, String> = std::env::vars_os()
            .map(|(k, v)| {
                (
                    k.to_string_lossy().into_owned(),
                    v.to_string_lossy().into_owned(),
                )
            })
            .collect();
        let env_file = match env.get("VOICEAGENT_ENV_FILE").map(|p| p.trim()) {
            Some(path) if !path.is_empty() => EnvFile::Required(path.into()),
            _ => EnvFile::Optional(".env".into()),
        };
        Sources {
            env,
            env_file,
            config_file: None,
        }
    }

    /// Use this TOML file (e.g. from `--config PATH`).
    pub fn with_config_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.config_file = Some(path.into());
        self
    }

    /// Read this `.env` file; it must exist.
    pub fn with_env_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.env_file = EnvFile::Required(path.into());
        self
    }

    /// Read no `.env` file.
    pub fn without_env_file(mut self) -> Self {
        self.env_file = EnvFile::None;
        self
    }
}

/// Which source a value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Origin {
    Env,
    EnvFile(PathBuf),
    ConfigFile(PathBuf),
}

impl Origin {
    /// How an error names the origin; `None` for the environment (the usual case).
    pub(super) fn describe(&self) -> Option<String> {
        match self {
            Origin::Env => None,
            Origin::EnvFile(path) | Origin::ConfigFile(path) => Some(path.display().to_string()),
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.describe() {
            Some(d) => f.write_str(&d),
            None => f.write_str("the environment"),
        }
    }
}

/// One raw setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Entry {
    pub value: String,
    pub origin: Origin,
}

/// The merged raw settings plus what went wrong while reading the sources.
#[derive(Debug, Default)]
pub(super) struct Layers {
    pub values: BTreeMap<String, Entry>,
    pub errors: Vec<ConfigError>,
    pub warnings: Vec<ConfigWarning>,
}

impl Layers {
    /// Adds a source below the ones already added (earlier sources win). Empty values count as
    /// unset, so `SIP_PROXY=` in `.env` or an empty variable from docker compose falls through to
    /// the next source or the default.
    fn add_below(&mut self, entries: impl IntoIterator<Item = (String, String)>, origin: &Origin) {
        for (key, value) in entries {
            if value.trim().is_empty() {
                continue;
            }
            self.values.entry(key).or_insert_with(|| Entry {
                value,
                origin: origin.clone(),
            });
        }
    }

    fn source_error(&mut self, key: &str, path: &Path, problem: String, fix: String) {
        self.errors.push(ConfigError {
            key: key.into(),
            value: Some(path.display().to_string()),
            hidden: false,
            origin: None,
            problem,
            fix,
        });
    }
}

/// Reads and merges all sources.
pub(super) fn gather(sources: &Sources) -> Layers {
    let mut layers = Layers::default();
    warn_unknown(&mut layers.warnings, sources.env.keys(), &Origin::Env);
    layers.add_below(sources.env.clone(), &Origin::Env);

    let env_file = match &sources.env_file {
        EnvFile::None => None,
        EnvFile::Optional(path) => Some((path, false)),
        EnvFile::Required(path) => Some((path, true)),
    };
    if let Some((path, required)) = env_file {
        if let Some(entries) = read_env_file(&mut layers, path, required) {
            let origin = Origin::EnvFile(path.clone());
            warn_unknown(
                &mut layers.warnings,
                entries.iter().map(|(k, _)| k),
                &origin,
            );
            layers.add_below(entries, &origin);
        }
    }

    let config_file = sources.config_file.clone().or_else(|| {
        layers
            .values
            .get("VOICEAGENT_CONFIG")
            .map(|e| PathBuf::from(e.value.trim()))
    });
    if let Some(path) = config_file {
        if let Some(entries) = read_toml_file(&mut layers, &path) {
            layers.add_below(entries, &Origin::ConfigFile(path));
        }
    }
    layers
}

fn read_env_file(
    layers: &mut Layers,
    path: &Path,
    required: bool,
) -> Option<Vec<(String, String)>> {
    let key = "VOICEAGENT_ENV_FILE";
    let fix = format!("set {key} to a readable .env file, or unset it to read ./.env if present");
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => return None,
        Err(e) => {
            layers.source_error(key, path, format!("cannot read the file ({e})"), fix);
            return None;
        }
    };
    let mut entries = Vec::new();
    for item in dotenvy::from_read_iter(text.as_bytes()) {
        match item {
            Ok(pair) => entries.push(pair),
            Err(dotenvy::Error::LineParse(line, _)) => {
                // dotenvy's message quotes the whole line, which may hold a password: name the
                // line number and the key instead.
                let number = text
                    .lines()
                    .position(|l| l.trim() == line.trim())
                    .map_or_else(|| "?".to_string(), |n| (n + 1).to_string());
                let line_key = line.split('=').next().unwrap_or("").trim();
                let line_key = line_key.strip_prefix("export ").unwrap_or(line_key).trim();
                layers.source_error(
                    key,
                    path,
                    format!("line {number} ({line_key}) is not KEY=value"),
                    "write the line as KEY=value; quote values with spaces or `$` in single \
                     quotes, e.g. SIP_PASSWORD='pa$$ word'"
                        .into(),
                );
                // dotenvy stops at the first bad line.
                return Some(entries);
            }
            Err(e) => {
                layers.source_error(key, path, format!("cannot read the file ({e})"), fix);
                return Some(entries);
            }
        }
    }
    Some(entries)
}

fn read_toml_file(layers: &mut Layers, path: &Path) -> Option<Vec<(String, String)>> {
    let key = "VOICEAGENT_CONFIG";
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) => {
            layers.source_error(
                key,
                path,
                format!("cannot read the config file ({e})"),
                format!("set {key} (or --config) to a readable TOML file, or unset it"),
            );
            return None;
        }
    };
    let table: toml::Table = match toml::from_str(&text) {
        Ok(table) => table,
        Err(e) => {
            // toml's message quotes the offending line; that could be a secret, so only its
            // position and the parser's one-line reason are kept.
            let position = e
                .span()
                .and_then(|s| text.get(..s.start))
                .map(|before| before.matches('\n').count() + 1)
                .map_or_else(String::new, |line| format!(" at line {line}"));
            let reason = e.message().lines().next().unwrap_or("").to_string();
            layers.source_error(
                key,
                path,
                format!("not valid TOML{position}: {reason}"),
                "fix the TOML syntax, e.g. SIP_PORT = 5060 or [sip] port = 5060".into(),
            );
            return None;
        }
    };
    let mut entries = Vec::new();
    flatten(layers, path, "", &table, &mut entries);
    Some(entries)
}

/// `[sip] port = 5060` and `SIP_PORT = 5060` both become `SIP_PORT=5060`; arrays become comma
/// lists. Unknown keys are errors here: unlike the environment, the file holds only our keys.
fn flatten(
    layers: &mut Layers,
    path: &Path,
    prefix: &str,
    table: &toml::Table,
    out: &mut Vec<(String, String)>,
) {
    for (name, value) in table {
        let key = format!("{prefix}{}", name.to_ascii_uppercase());
        let text = match value {
            toml::Value::Table(inner) => {
                flatten(layers, path, &format!("{key}_"), inner, out);
                continue;
            }
            toml::Value::String(s) => Some(s.clone()),
            toml::Value::Integer(i) => Some(i.to_string()),
            toml::Value::Float(x) => Some(x.to_string()),
            toml::Value::Boolean(b) => Some(b.to_string()),
            toml::Value::Array(items) => items
                .iter()
                .map(|item| match item {
                    toml::Value::String(s) => Some(s.clone()),
                    toml::Value::Integer(i) => Some(i.to_string()),
                    toml::Value::Float(x) => Some(x.to_string()),
                    toml::Value::Boolean(b) => Some(b.to_string()),
                    _ => None,
                })
                .collect::<Option<Vec<_>>>()
                .map(|items| items.join(",")),
            toml::Value::Datetime(_) => None,
        };
        let Some(known) = keys::find(&key) else {
            let fix = match keys::suggest(&key) {
                Some(s) => format!("did you mean {s}? Remove or rename the entry"),
                None => "remove the entry; docs/CONFIGURATION.md lists every key".into(),
            };
            layers.errors.push(ConfigError {
                key,
                value: None,
                hidden: false,
                origin: Some(path.display().to_string()),
                problem: "not a known setting".into(),
                fix,
            });
            continue;
        };
        match text {
            Some(text) => out.push((key, text)),
            None => layers.errors.push(ConfigError {
                key: key.clone(),
                value: None,
                hidden: known.secret,
                origin: Some(path.display().to_string()),
                problem: "a date or nested list is not a valid value here".into(),
                fix: format!("set {key} to {}", known.expects),
            }),
        }
    }
}

/// Variables with our prefixes that we do not know are probably typos; say which key was meant.
fn warn_unknown<'a>(
    warnings: &mut Vec<ConfigWarning>,
    names: impl Iterator<Item = &'a String>,
    origin: &Origin,
) {
    let mut found: Vec<&String> = names
        .filter(|name| OUR_PREFIXES.iter().any(|p| name.starts_with(p)))
        .filter(|name| keys::find(name).is_none())
        .collect();
    found.sort();
    for name in found {
        let where_ = match origin.describe() {
            Some(path) => format!(" (in {path})"),
            None => String::new(),
        };
        let message = match keys::suggest(name) {
            Some(s) => format!("unknown setting{where_}, ignored; did you mean {s}?"),
            None => format!("unknown setting{where_}, ignored"),
        };
        warnings.push(ConfigWarning {
            key: name.clone(),
            message,
        });
    }
}
