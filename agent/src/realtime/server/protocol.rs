//! Strict parsing of client events and the server's error vocabulary.
//!
//! This is deliberately a second, independent reading of the GA protocol (it does not reuse the
//! client's wire types): if both sides shared one serde model, a mistake in it would pass every
//! test. Parsing is strict where the real service is strict (unknown parameters, missing
//! required ones, bad base64) so a client bug fails here the way it fails in production. Error
//! codes and messages follow docs/reference (openai-realtime.md §13); where the reference has
//! no observed code the choice is marked `[inf]`.

use base64::prelude::*;
use serde_json::{json, Map, Value};

/// An `error` event payload, before the server adds `event_id`s.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ApiError {
    pub kind: &'static str,
    pub code: Option<String>,
    pub message: String,
    pub param: Option<String>,
}

impl ApiError {
    pub(crate) fn invalid(code: &str, message: impl Into<String>, param: Option<&str>) -> Self {
        Self {
            kind: "invalid_request_error",
            code: Some(code.to_owned()),
            message: message.into(),
            param: param.map(str::to_owned),
        }
    }

    pub(crate) fn server(code: &str, message: impl Into<String>) -> Self {
        Self {
            kind: "server_error",
            code: Some(code.to_owned()),
            message: message.into(),
            param: None,
        }
    }

    pub(crate) fn unknown_parameter(param: &str) -> Self {
        Self::invalid(
            "unknown_parameter",
            format!("Unknown parameter: '{param}'."),
            Some(param),
        )
    }

    pub(crate) fn missing(param: &str) -> Self {
        Self::invalid(
            "missing_required_parameter",
            format!("Missing required parameter: '{param}'."),
            Some(param),
        )
    }

    pub(crate) fn invalid_type(param: &str, expected: &str, got: &Value) -> Self {
        Self::invalid(
            "invalid_type",
            format!(
                "Invalid type for '{param}': expected {expected}, but got {} instead.",
                json_kind(got)
            ),
            Some(param),
        )
    }

    pub(crate) fn invalid_value(param: &str, message: impl Into<String>) -> Self {
        Self::invalid("invalid_value", message, Some(param))
    }

    pub(crate) fn beta_shape() -> Self {
        Self::invalid(
            "beta_api_shape_disabled",
            "The Realtime Beta API is no longer supported. Please use /v1/realtime for the GA API.",
            None,
        )
    }

    /// The `error` object of the `error` event (`client_event_id` echoes the client's id).
    pub(crate) fn to_json(&self, client_event_id: Option<&str>) -> Value {
        json!({
            "type": self.kind,
            "code": self.code,
            "message": self.message,
            "param": self.param,
            "event_id": client_event_id,
        })
    }

    /// Close reason the real service uses for fatal errors: `<type>.<code>`.
    pub(crate) fn close_reason(&self) -> String {
        format!("{}.{}", self.kind, self.code.as_deref().unwrap_or("error"))
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "an integer",
        Value::Number(_) => "a decimal",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Deterministic id generator for `event_…`, `item_…`, `resp_…` ids (21 base62 chars like the
/// real service). A tiny xorshift is enough: ids must be unique, not unpredictable.
#[derive(Debug, Clone)]
pub(crate) struct IdGen {
    state: u64,
}

impl IdGen {
    pub(crate) fn new(seed: u64) -> Self {
        Self {
            state: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
        }
    }

    pub(crate) fn next(&mut self, prefix: &str) -> String {
        const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
        let mut id = String::with_capacity(prefix.len() + 22);
        id.push_str(prefix);
        id.push('_');
        for _ in 0..21 {
            self.state ^= self.state << 13;
            self.state ^= self.state >> 7;
            self.state ^= self.state << 17;
            id.push(ALPHABET[(self.state % 62) as usize] as char);
        }
        id
    }
}

/// A client event the server understands, with its arguments validated.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ClientEvent {
    SessionUpdate {
        session: Map<String, Value>,
    },
    AudioAppend {
        samples: Vec<i16>,
    },
    AudioCommit,
    AudioClear,
    ItemCreate {
        previous_item_id: Option<String>,
        item: Map<String, Value>,
    },
    ItemRetrieve {
        item_id: String,
    },
    ItemDelete {
        item_id: String,
    },
    ItemTruncate {
        item_id: String,
        content_index: i64,
        audio_end_ms: i64,
    },
    ResponseCreate {
        response: Option<Map<String, Value>>,
    },
    ResponseCancel {
        response_id: Option<String>,
    },
    OutputAudioBufferClear,
    TranscriptionSessionUpdate,
}

/// The result of reading one text frame.
#[derive(Debug)]
pub(crate) struct Incoming {
    /// The parsed JSON (or the raw text as a JSON string when it was not JSON).
    pub json: Value,
    pub kind: String,
    pub event_id: Option<String>,
    pub event: Result<ClientEvent, ApiError>,
}

const CLIENT_EVENT_TYPES: &[&str] = &[
    "session.update",
    "input_audio_buffer.append",
    "input_audio_buffer.commit",
    "input_audio_buffer.clear",
    "conversation.item.create",
    "conversation.item.retrieve",
    "conversation.item.truncate",
    "conversation.item.delete",
    "response.create",
    "response.cancel",
    "output_audio_buffer.clear",
];

/// Parses and validates one client text frame.
pub(crate) fn parse_client_event(text: &str) -> Incoming {
    let json: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            return Incoming {
                json: Value::String(text.chars().take(200).collect()),
                kind: String::new(),
                event_id: None,
                event: Err(ApiError::invalid(
                    "invalid_json",
                    format!("We could not parse the JSON body of your request. ({e})"),
                    None,
                )),
            }
        }
    };
    let event_id = json
        .get("event_id")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let kind = json
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let event = match json.as_object() {
        None => Err(ApiError::invalid(
            "invalid_event",
            "The event must be a JSON object.",
            None,
        )),
        Some(obj) => parse_object(obj),
    };
    Incoming {
        json,
        kind,
        event_id,
        event,
    }
}

fn parse_object(obj: &Map<String, Value>) -> Result<ClientEvent, ApiError> {
    let kind = match obj.get("type") {
        None => {
            return Err(ApiError::invalid(
                "invalid_event",
                "The 'type' field is missing.",
                None,
            ))
        }
        Some(Value::String(s)) => s.as_str(),
        Some(other) => return Err(ApiError::invalid_type("type", "a string", other)),
    };
    match obj.get("event_id") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) if s.len() <= 512 => {}
        Some(Value::String(_)) => {
            return Err(ApiError::invalid(
                "string_above_max_length",
                "Invalid 'event_id': string too long. Expected a string with maximum length 512.",
                Some("event_id"),
            ))
        }
        Some(other) => return Err(ApiError::invalid_type("event_id", "a string", other)),
    }
    let fields = |allowed: &[&str]| check_fields(obj, allowed, "");
    match kind {
        "session.update" => {
            fields(&["session"])?;
            let session = required(obj, "session")?;
            let session = session
                .as_object()
                .ok_or_else(|| ApiError::invalid_type("session", "an object", session))?;
            Ok(ClientEvent::SessionUpdate {
                session: session.clone(),
            })
        }
        "input_audio_buffer.append" => {
            fields(&["audio"])?;
            let audio = required_str(obj, "audio")?;
            Ok(ClientEvent::AudioAppend {
                samples: decode_pcm16(audio, "audio")?,
            })
        }
        "input_audio_buffer.commit" => fields(&[]).map(|()| ClientEvent::AudioCommit),
        "input_audio_buffer.clear" => fields(&[]).map(|()| ClientEvent::AudioClear),
        "conversation.item.create" => {
            fields(&["item", "previous_item_id"])?;
            let item = required(obj, "item")?;
            let item = item
                .as_object()
                .ok_or_else(|| ApiError::invalid_type("item", "an object", item))?;
            Ok(ClientEvent::ItemCreate {
                previous_item_id: optional_str(obj, "previous_item_id")?,
                item: item.clone(),
            })
        }
        "conversation.item.retrieve" => {
            fields(&["item_id"])?;
            Ok(ClientEvent::ItemRetrieve {
                item_id: required_str(obj, "item_id")?.to_owned(),
            })
        }
        "conversation.item.delete" => {
            fields(&["item_id"])?;
            Ok(ClientEvent::ItemDelete {
                item_id: required_str(obj, "item_id")?.to_owned(),
            })
        }
        "conversation.item.truncate" => {
            fields(&["item_id", "content_index", "audio_end_ms"])?;
            Ok(ClientEvent::ItemTruncate {
                item_id: required_str(obj, "item_id")?.to_owned(),
                content_index: required_int(obj, "content_index")?,
                audio_end_ms: required_int(obj, "audio_end_ms")?,
            })
        }
        "response.create" => {
            fields(&["response"])?;
            let response = match obj.get("response") {
                None | Some(Value::Null) => None,
                Some(Value::Object(m)) => Some(m.clone()),
                Some(other) => return Err(ApiError::invalid_type("response", "an object", other)),
            };
            Ok(ClientEvent::ResponseCreate { response })
        }
        "response.cancel" => {
            fields(&["response_id"])?;
            Ok(ClientEvent::ResponseCancel {
                response_id: optional_str(obj, "response_id")?,
            })
        }
        "output_audio_buffer.clear" => {
            fields(&["response_id"]).map(|()| ClientEvent::OutputAudioBufferClear)
        }
        "transcription_session.update" => Ok(ClientEvent::TranscriptionSessionUpdate),
        other => Err(ApiError::invalid_value(
            "type",
            format!(
                "Invalid value: '{other}'. Supported values are: {}.",
                CLIENT_EVENT_TYPES
                    .iter()
                    .map(|t| format!("'{t}'"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
    }
}

/// Rejects any key not in `allowed` (plus `type` and `event_id` at event level).
pub(crate) fn check_fields(
    obj: &Map<String, Value>,
    allowed: &[&str],
    prefix: &str,
) -> Result<(), ApiError> {
    for key in obj.keys() {
        let ok = allowed.contains(&key.as_str())
            || (prefix.is_empty() && (key == "type" || key == "event_id"));
        if !ok {
            return Err(ApiError::unknown_parameter(&format!("{prefix}{key}")));
        }
    }
    Ok(())
}

fn required<'a>(obj: &'a Map<String, Value>, key: &str) -> Result<&'a Value, ApiError> {
    obj.get(key).ok_or_else(|| ApiError::missing(key))
}

fn required_str<'a>(obj: &'a Map<String, Value>, key: &str) -> Result<&'a str, ApiError> {
    let v = required(obj, key)?;
    v.as_str()
        .ok_or_else(|| ApiError::invalid_type(key, "a string", v))
}

fn optional_str(obj: &Map<String, Value>, key: &str) -> Result<Option<String>, ApiError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(ApiError::invalid_type(key, "a string", other)),
    }
}

fn required_int(obj: &Map<String, Value>, key: &str) -> Result<i64, ApiError> {
    let v = required(obj, key)?;
    v.as_i64()
        .ok_or_else(|| ApiError::invalid_type(key, "an integer", v))
}

/// Decodes base64 PCM16 little-endian; rejects bad base64 and odd byte counts (half a sample
/// means the client framed its audio wrongly).
pub(crate) fn decode_pcm16(b64: &str, param: &str) -> Result<Vec<i16>, ApiError> {
    let bad = || {
        ApiError::invalid_value(
            param,
            format!("Invalid '{param}'. Expected base64-encoded audio bytes (mono PCM16 at 24kHz) but got an invalid value."),
        )
    };
    let bytes = BASE64_STANDARD.decode(b64).map_err(|_| bad())?;
    if bytes.len() % 2 != 0 {
        return Err(bad());
    }
    Ok(bytes
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect())
}

/// Encodes PCM16 samples as base64 little-endian bytes.
pub(crate) fn encode_pcm16(samples: &[i16]) -> String {
    let mut bytes = Vec::with_capacity(samples.len() * 2);
    for s in samples {
        bytes.extend_from_slice(&s.to_le_bytes());
    }
    BASE64_STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_type_is_invalid_event() {
        let e = parse_client_event(r#"{"event_id":"e1"}"#);
        assert_eq!(e.event_id.as_deref(), Some("e1"));
        assert_eq!(e.event.unwrap_err().code.as_deref(), Some("invalid_event"));
    }

    #[test]
    fn unknown_type_names_param_type() {
        let err = parse_client_event(r#"{"type":"scooby.dooby.doo"}"#)
            .event
            .unwrap_err();
        assert_eq!(err.code.as_deref(), Some("invalid_value"));
        assert_eq!(err.param.as_deref(), Some("type"));
    }

    #[test]
    fn unknown_field_is_rejected_with_param() {
        let err = parse_client_event(r#"{"type":"input_audio_buffer.commit","foo":1}"#)
            .event
            .unwrap_err();
        assert_eq!(err.code.as_deref(), Some("unknown_parameter"));
        assert_eq!(err.param.as_deref(), Some("foo"));
    }

    #[test]
    fn append_validates_base64_and_even_length() {
        let odd = BASE64_STANDARD.encode([1u8, 2, 3]);
        for audio in ["***", odd.as_str()] {
            let text = json!({"type":"input_audio_buffer.append","audio":audio}).to_string();
            let err = parse_client_event(&text).event.unwrap_err();
            assert_eq!(err.param.as_deref(), Some("audio"), "{audio}");
        }
        let ok = json!({"type":"input_audio_buffer.append","audio":encode_pcm16(&[1, -2, 300])})
            .to_string();
        assert_eq!(
            parse_client_event(&ok).event.unwrap(),
            ClientEvent::AudioAppend {
                samples: vec![1, -2, 300]
            }
        );
    }

    #[test]
    fn truncate_needs_integer_fields() {
        let err = parse_client_event(
            r#"{"type":"conversation.item.truncate","item_id":"i","content_index":0}"#,
        )
        .event
        .unwrap_err();
        assert_eq!(err.code.as_deref(), Some("missing_required_parameter"));
        assert_eq!(err.param.as_deref(), Some("audio_end_ms"));
    }

    #[test]
    fn ids_are_unique_and_prefixed() {
        let mut g = IdGen::new(7);
        let a = g.next("item");
        let b = g.next("item");
        assert!(a.starts_with("item_") && a.len() == 26);
        assert_ne!(a, b);
    }
}
