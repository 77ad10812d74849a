//! The GA `session` object: defaults, strict validation of `session.update`, merging.
//!
//! The effective configuration is kept as the GA JSON object itself, because `session.updated`
//! must echo it in full and a JSON-to-struct-to-JSON round trip would silently drop whatever
//! we did not model. Validation happens before anything is merged: like the real service, a bad
//! update is rejected whole (reference §3, §5.1, §16.2).

use serde_json::{json, Map, Value};

use super::protocol::{check_fields, ApiError};

/// Keys that exist only in the flat beta session shape. Their presence means a beta client,
/// which the real service answers with `beta_api_shape_disabled` and close 4000 (§0, §2.3).
/// `temperature` and `speed` are deliberately absent: the reference reports
/// `unknown_parameter` for a stray `temperature` on an otherwise GA update.
const BETA_ONLY_KEYS: &[&str] = &[
    "modalities",
    "voice",
    "input_audio_format",
    "output_audio_format",
    "input_audio_transcription",
    "input_audio_noise_reduction",
    "turn_detection",
    "max_response_output_tokens",
];

const VOICES: &[&str] = &[
    "alloy", "ash", "ballad", "coral", "echo", "sage", "shimmer", "verse", "marin", "cedar",
];

/// Server VAD parameters in effect.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct TurnDetection {
    pub threshold: f32,
    pub prefix_padding_ms: u32,
    pub silence_duration_ms: u32,
    pub create_response: bool,
    pub interrupt_response: bool,
}

/// Whether an update looks like the beta protocol.
pub(crate) fn is_beta_shaped(update: &Map<String, Value>) -> bool {
    update.keys().any(|k| BETA_ONLY_KEYS.contains(&k.as_str()))
}

/// The effective GA session.
#[derive(Debug, Clone)]
pub(crate) struct SessionConfig {
    json: Value,
}

impl SessionConfig {
    /// Defaults as observed in a live GA `session.created` (§5.1, §17).
    pub(crate) fn new(id: &str, model: &str, expires_at: u64) -> Self {
        Self {
            json: json!({
                "type": "realtime",
                "object": "realtime.session",
                "id": id,
                "model": model,
                "output_modalities": ["audio"],
                "instructions": "You are the voiceagent local echo test server.",
                "tools": [],
                "tool_choice": "auto",
                "max_output_tokens": "inf",
                "tracing": null,
                "truncation": "auto",
                "prompt": null,
                "expires_at": expires_at,
                "audio": {
                    "input": {
                        "format": {"type": "audio/pcm", "rate": 24000},
                        "transcription": null,
                        "noise_reduction": null,
                        "turn_detection": default_turn_detection(200),
                    },
                    "output": {
                        "format": {"type": "audio/pcm", "rate": 24000},
                        "voice": "alloy",
                        "speed": 1.0,
                    }
                },
                "include": null,
            }),
        }
    }

    pub(crate) fn to_json(&self) -> Value {
        self.json.clone()
    }

    /// Validates `update` completely, then merges it. On error nothing changes.
    pub(crate) fn apply_update(
        &mut self,
        update: &Map<String, Value>,
        assistant_audio_sent: bool,
    ) -> Result<(), ApiError> {
        let mut candidate = self.json.clone();
        validate_and_merge(&mut candidate, update)?;
        if assistant_audio_sent
            && candidate["audio"]["output"]["voice"] != self.json["audio"]["output"]["voice"]
        {
            return Err(ApiError::invalid(
                "cannot_update_voice",
                "Cannot update a conversation's voice if assistant audio is present.",
                Some("session.audio.output.voice"),
            ));
        }
        self.json = candidate;
        Ok(())
    }

    pub(crate) fn turn_detection(&self) -> Option<TurnDetection> {
        let td = self.json["audio"]["input"]["turn_detection"].as_object()?;
        let f = |k: &str, d: f64| td.get(k).and_then(Value::as_f64).unwrap_or(d);
        let b = |k: &str| td.get(k).and_then(Value::as_bool).unwrap_or(true);
        // semantic_vad is emulated with the energy detector and an eagerness-derived pause.
        let silence = if td.get("type").and_then(Value::as_str) == Some("semantic_vad") {
            match td.get("eagerness").and_then(Value::as_str) {
                Some("high") => 300.0,
                Some("low") => 1200.0,
                _ => 700.0,
            }
        } else {
            f("silence_duration_ms", 500.0)
        };
        Some(TurnDetection {
            threshold: f("threshold", 0.5) as f32,
            prefix_padding_ms: f("prefix_padding_ms", 300.0) as u32,
            silence_duration_ms: silence as u32,
            create_response: b("create_response"),
            interrupt_response: b("interrupt_response"),
        })
    }

    pub(crate) fn transcription_enabled(&self) -> bool {
        self.json["audio"]["input"]["transcription"].is_object()
    }

    pub(crate) fn text_only(&self) -> bool {
        self.json["output_modalities"] == json!(["text"])
    }

    pub(crate) fn voice(&self) -> Value {
        self.json["audio"]["output"]["voice"].clone()
    }

    pub(crate) fn output_format(&self) -> Value {
        self.json["audio"]["output"]["format"].clone()
    }

    /// Whether a function tool of this name is declared and `tool_choice` allows calling it.
    pub(crate) fn allows_tool(&self, name: &str) -> bool {
        tools_allow(&self.json["tools"], &self.json["tool_choice"], name)
    }
}

pub(crate) fn tools_allow(tools: &Value, choice: &Value, name: &str) -> bool {
    let declared = tools.as_array().is_some_and(|t| {
        t.iter()
            .any(|t| t["type"] == "function" && t["name"] == name)
    });
    let choice_ok = match choice {
        Value::String(s) => s != "none",
        Value::Object(o) => o.get("name").and_then(Value::as_str) == Some(name),
        _ => true,
    };
    declared && choice_ok
}

fn default_turn_detection(silence_ms: u32) -> Value {
    json!({
        "type": "server_vad",
        "threshold": 0.5,
        "prefix_padding_ms": 300,
        "silence_duration_ms": silence_ms,
        "idle_timeout_ms": null,
        "create_response": true,
        "interrupt_response": true,
    })
}

fn validate_and_merge(target: &mut Value, update: &Map<String, Value>) -> Result<(), ApiError> {
    check_fields(
        update,
        &[
            "type",
            "model",
            "instructions",
            "output_modalities",
            "audio",
            "tools",
            "tool_choice",
            "max_output_tokens",
            "truncation",
            "tracing",
            "include",
            "prompt",
            "reasoning",
            "parallel_tool_calls",
        ],
        "session.",
    )?;
    match update.get("type") {
        None => return Err(ApiError::missing("session.type")),
        Some(Value::String(t)) if t == "realtime" => {}
        Some(Value::String(t)) if t == "transcription" => {
            return Err(ApiError::invalid_value(
                "session.type",
                "The local server supports only 'realtime' sessions; transcription sessions are not emulated.",
            ))
        }
        Some(other) => {
            return Err(ApiError::invalid_value(
                "session.type",
                format!("Invalid value: {other}. Supported values are: 'realtime' and 'transcription'."),
            ))
        }
    }
    for (key, value) in update {
        let param = format!("session.{key}");
        match key.as_str() {
            "type" => {}
            "model" => {
                if value != &target["model"] {
                    return Err(ApiError::invalid_value(
                        &param,
                        "Cannot update a session's model.",
                    ));
                }
            }
            "instructions" => expect_str(value, &param).map(|_| ())?,
            "output_modalities" => {
                if value != &json!(["audio"]) && value != &json!(["text"]) {
                    return Err(ApiError::invalid_value(
                        &param,
                        "Invalid 'session.output_modalities': expected exactly one of ['audio'] or ['text'].",
                    ));
                }
            }
            "tools" => validate_tools(value, &param)?,
            "tool_choice" => validate_tool_choice(value, &param)?,
            "max_output_tokens" => validate_max_tokens(value, &param)?,
            "truncation" => match value {
                Value::String(s) if s == "auto" || s == "disabled" => {}
                Value::Object(o)
                    if o.get("type").and_then(Value::as_str) == Some("retention_ratio") => {}
                other => {
                    return Err(ApiError::invalid_value(
                        &param,
                        format!("Invalid value for '{param}': {other}."),
                    ))
                }
            },
            "tracing" | "prompt" => {
                if !(value.is_null() || value.is_object() || value == "auto") {
                    return Err(ApiError::invalid_type(
                        &param,
                        "an object, 'auto' or null",
                        value,
                    ));
                }
            }
            "include" => {
                if !(value.is_null() || value.is_array()) {
                    return Err(ApiError::invalid_type(&param, "an array", value));
                }
            }
            "reasoning" => expect_obj(value, &param).map(|_| ())?,
            "parallel_tool_calls" => {
                if !value.is_boolean() {
                    return Err(ApiError::invalid_type(&param, "a boolean", value));
                }
            }
            "audio" => {
                merge_audio(&mut target["audio"], expect_obj(value, &param)?)?;
                continue;
            }
            _ => unreachable!("checked by check_fields"),
        }
        target[key.as_str()] = value.clone();
    }
    Ok(())
}

fn merge_audio(target: &mut Value, audio: &Map<String, Value>) -> Result<(), ApiError> {
    check_fields(audio, &["input", "output"], "session.audio.")?;
    if let Some(input) = audio.get("input") {
        let input = expect_obj(input, "session.audio.input")?;
        check_fields(
            input,
            &[
                "format",
                "transcription",
                "noise_reduction",
                "turn_detection",
            ],
            "session.audio.input.",
        )?;
        for (key, value) in input {
            let param = format!("session.audio.input.{key}");
            let merged = match key.as_str() {
                "format" => validate_format(value, &param)?,
                "transcription" => validate_transcription(value, &param)?,
                "noise_reduction" => {
                    if !value.is_null() {
                        let o = expect_obj(value, &param)?;
                        check_fields(o, &["type"], &format!("{param}."))?;
                        if !matches!(
                            o.get("type").and_then(Value::as_str),
                            Some("near_field" | "far_field")
                        ) {
                            return Err(ApiError::invalid_value(
                                &format!("{param}.type"),
                                "Supported values are: 'near_field' and 'far_field'.",
                            ));
                        }
                    }
                    value.clone()
                }
                "turn_detection" => validate_turn_detection(value, &param)?,
                _ => unreachable!("checked by check_fields"),
            };
            target["input"][key.as_str()] = merged;
        }
    }
    if let Some(output) = audio.get("output") {
        let output = expect_obj(output, "session.audio.output")?;
        check_fields(
            output,
            &["format", "voice", "speed"],
            "session.audio.output.",
        )?;
        for (key, value) in output {
            let param = format!("session.audio.output.{key}");
            let merged = match key.as_str() {
                "format" => validate_format(value, &param)?,
                "voice" => {
                    let ok = match value {
                        Value::String(s) => VOICES.contains(&s.as_str()),
                        Value::Object(o) => {
                            o.len() == 1 && o.get("id").is_some_and(Value::is_string)
                        }
                        _ => false,
                    };
                    if !ok {
                        return Err(ApiError::invalid_value(&param, format!("Invalid value: {value}. Supported values are: {VOICES:?} or {{\"id\": \"voice_…\"}}.")));
                    }
                    value.clone()
                }
                "speed" => {
                    let s = value
                        .as_f64()
                        .ok_or_else(|| ApiError::invalid_type(&param, "a number", value))?;
                    if !(0.25..=1.5).contains(&s) {
                        return Err(ApiError::invalid(
                            if s < 0.25 { "decimal_below_min_value" } else { "decimal_above_max_value" },
                            format!("Invalid '{param}': expected a value between 0.25 and 1.5, but got {s} instead."),
                            Some(&param),
                        ));
                    }
                    value.clone()
                }
                _ => unreachable!("checked by check_fields"),
            };
            target["output"][key.as_str()] = merged;
        }
    }
    Ok(())
}

/// Only PCM16 24 kHz is emulated. G.711 is valid on the real service but rejected here with a
/// message that says so, rather than silently treating μ-law bytes as PCM.
fn validate_format(value: &Value, param: &str) -> Result<Value, ApiError> {
    let o = expect_obj(value, param)?;
    check_fields(o, &["type", "rate"], &format!("{param}."))?;
    match o.get("type").and_then(Value::as_str) {
        Some("audio/pcm") => {}
        Some("audio/pcmu" | "audio/pcma") => {
            return Err(ApiError::invalid_value(
                &format!("{param}.type"),
                "The local Realtime server emulates only {\"type\":\"audio/pcm\",\"rate\":24000}; G.711 formats are not supported here.",
            ))
        }
        None => return Err(ApiError::missing(&format!("{param}.type"))),
        Some(other) => {
            return Err(ApiError::invalid_value(
                &format!("{param}.type"),
                format!("Invalid value: '{other}'. Supported values are: 'audio/pcm', 'audio/pcmu', and 'audio/pcma'."),
            ))
        }
    }
    let rate_param = format!("{param}.rate");
    match o.get("rate") {
        // The reference advises always sending it; one 2026 model rejects its absence (§4.4).
        None => Err(ApiError::missing(&rate_param)),
        Some(r) => match r.as_i64() {
            Some(24000) => Ok(value.clone()),
            Some(n) if n < 24000 => Err(ApiError::invalid(
                "integer_below_min_value",
                format!("Invalid '{rate_param}': integer below minimum value. Expected a value >= 24000, but got {n} instead."),
                Some(&rate_param),
            )),
            Some(n) => Err(ApiError::invalid(
                "integer_above_max_value",
                format!("Invalid '{rate_param}': integer above maximum value. Expected a value <= 24000, but got {n} instead."),
                Some(&rate_param),
            )),
            None => Err(ApiError::invalid_type(&rate_param, "an integer", r)),
        },
    }
}

fn validate_transcription(value: &Value, param: &str) -> Result<Value, ApiError> {
    if value.is_null() {
        return Ok(Value::Null);
    }
    let o = expect_obj(value, param)?;
    check_fields(
        o,
        &[
            "model",
            "language",
            "prompt",
            "languages",
            "keywords",
            "delay",
        ],
        &format!("{param}."),
    )?;
    Ok(value.clone())
}

fn validate_turn_detection(value: &Value, param: &str) -> Result<Value, ApiError> {
    if value.is_null() {
        return Ok(Value::Null);
    }
    let o = expect_obj(value, param)?;
    let type_param = format!("{param}.type");
    let prefix = format!("{param}.");
    match o.get("type").and_then(Value::as_str) {
        Some("server_vad") => {
            check_fields(
                o,
                &[
                    "type",
                    "threshold",
                    "prefix_padding_ms",
                    "silence_duration_ms",
                    "idle_timeout_ms",
                    "create_response",
                    "interrupt_response",
                ],
                &prefix,
            )?;
            let mut full = default_turn_detection(500);
            for (k, v) in o {
                let p = format!("{prefix}{k}");
                match k.as_str() {
                    "threshold" => {
                        let t = v
                            .as_f64()
                            .ok_or_else(|| ApiError::invalid_type(&p, "a number", v))?;
                        if !(0.0..=1.0).contains(&t) {
                            return Err(ApiError::invalid_value(&p, format!("Invalid '{p}': expected a value between 0.0 and 1.0, but got {t} instead.")));
                        }
                    }
                    "prefix_padding_ms" | "silence_duration_ms" if v.as_u64().is_none() => {
                        return Err(ApiError::invalid_type(&p, "a non-negative integer", v));
                    }
                    "idle_timeout_ms"
                        if !v.is_null()
                            && !v.as_u64().is_some_and(|n| (5000..=30000).contains(&n)) =>
                    {
                        return Err(ApiError::invalid_value(
                            &p,
                            format!("Invalid '{p}': expected null or an integer between 5000 and 30000, got {v}."),
                        ));
                    }
                    "create_response" | "interrupt_response" if !v.is_boolean() => {
                        return Err(ApiError::invalid_type(&p, "a boolean", v));
                    }
                    _ => {}
                }
                full[k.as_str()] = v.clone();
            }
            Ok(full)
        }
        Some("semantic_vad") => {
            check_fields(
                o,
                &["type", "eagerness", "create_response", "interrupt_response"],
                &prefix,
            )?;
            if let Some(e) = o.get("eagerness") {
                if !matches!(e.as_str(), Some("low" | "medium" | "high" | "auto")) {
                    return Err(ApiError::invalid_value(
                        &format!("{prefix}eagerness"),
                        "Supported values are: 'low', 'medium', 'high', and 'auto'.",
                    ));
                }
            }
            let mut full = json!({"type": "semantic_vad", "eagerness": "auto", "create_response": true, "interrupt_response": true});
            for (k, v) in o {
                full[k.as_str()] = v.clone();
            }
            Ok(full)
        }
        None => Err(ApiError::missing(&type_param)),
        Some(other) => Err(ApiError::invalid_value(
            &type_param,
            format!(
                "Invalid value: '{other}'. Supported values are: 'server_vad' and 'semantic_vad'."
            ),
        )),
    }
}

fn validate_tools(value: &Value, param: &str) -> Result<(), ApiError> {
    let tools = value
        .as_array()
        .ok_or_else(|| ApiError::invalid_type(param, "an array", value))?;
    for (i, tool) in tools.iter().enumerate() {
        let p = format!("{param}[{i}]");
        let o = expect_obj(tool, &p)?;
        match o.get("type").and_then(Value::as_str) {
            Some("function") => {
                check_fields(
                    o,
                    &["type", "name", "description", "parameters"],
                    &format!("{p}."),
                )?;
                if !o.get("name").is_some_and(Value::is_string) {
                    return Err(ApiError::missing(&format!("{p}.name")));
                }
            }
            Some("mcp") => {}
            None => return Err(ApiError::missing(&format!("{p}.type"))),
            Some(other) => {
                return Err(ApiError::invalid_value(
                    &format!("{p}.type"),
                    format!(
                        "Invalid value: '{other}'. Supported values are: 'function' and 'mcp'."
                    ),
                ))
            }
        }
    }
    Ok(())
}

fn validate_tool_choice(value: &Value, param: &str) -> Result<(), ApiError> {
    match value {
        Value::String(s) if matches!(s.as_str(), "auto" | "none" | "required") => Ok(()),
        Value::Object(o)
            if o.get("type").and_then(Value::as_str) == Some("function")
                && o.get("name").is_some_and(Value::is_string) =>
        {
            check_fields(o, &["type", "name"], &format!("{param}."))
        }
        Value::Object(o) if o.get("type").and_then(Value::as_str) == Some("mcp") => Ok(()),
        other => Err(ApiError::invalid_value(
            param,
            format!("Invalid value for '{param}': {other}."),
        )),
    }
}

pub(crate) fn validate_max_tokens(value: &Value, param: &str) -> Result<(), ApiError> {
    match value {
        Value::String(s) if s == "inf" => Ok(()),
        v if v.as_u64().is_some_and(|n| (1..=4096).contains(&n)) => Ok(()),
        other => Err(ApiError::invalid_value(
            param,
            format!(
                "Invalid '{param}': expected an integer between 1 and 4096 or 'inf', got {other}."
            ),
        )),
    }
}

fn expect_obj<'a>(value: &'a Value, param: &str) -> Result<&'a Map<String, Value>, ApiError> {
    value
        .as_object()
        .ok_or_else(|| ApiError::invalid_type(param, "an object", value))
}

fn expect_str<'a>(value: &'a Value, param: &str) -> Result<&'a str, ApiError> {
    value
        .as_str()
        .ok_or_else(|| ApiError::invalid_type(param, "a string", value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> SessionConfig {
        SessionConfig::new("sess_1", "gpt-realtime", 0)
    }

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn ga_update_merges_and_keeps_other_fields() {
        let mut c = cfg();
        c.apply_update(
            &obj(json!({"type":"realtime","instructions":"Be brief.","audio":{"input":{"turn_detection":{"type":"server_vad","silence_duration_ms":400}},"output":{"voice":"marin"}}})),
            false,
        )
        .unwrap();
        let j = c.to_json();
        assert_eq!(j["instructions"], "Be brief.");
        assert_eq!(j["audio"]["output"]["voice"], "marin");
        assert_eq!(j["audio"]["output"]["format"]["rate"], 24000);
        assert_eq!(c.turn_detection().unwrap().silence_duration_ms, 400);
        assert_eq!(c.turn_detection().unwrap().prefix_padding_ms, 300);
    }

    #[test]
    fn missing_type_rejects_whole_update() {
        let mut c = cfg();
        let err = c
            .apply_update(&obj(json!({"instructions":"x"})), false)
            .unwrap_err();
        assert_eq!(err.param.as_deref(), Some("session.type"));
        assert_ne!(c.to_json()["instructions"], "x");
    }

    #[test]
    fn unknown_nested_field_names_full_param() {
        let err = cfg()
            .apply_update(&obj(json!({"type":"realtime","audio":{"input":{"turn_detection":{"type":"server_vad","bogus":1}}}})), false)
            .unwrap_err();
        assert_eq!(err.code.as_deref(), Some("unknown_parameter"));
        assert_eq!(
            err.param.as_deref(),
            Some("session.audio.input.turn_detection.bogus")
        );
        let err = cfg()
            .apply_update(&obj(json!({"type":"realtime","temperature":0.8})), false)
            .unwrap_err();
        assert_eq!(err.param.as_deref(), Some("session.temperature"));
    }

    #[test]
    fn rate_other_than_24k_and_voice_change_after_audio_are_rejected() {
        let err = cfg()
            .apply_update(&obj(json!({"type":"realtime","audio":{"input":{"format":{"type":"audio/pcm","rate":16000}}}})), false)
            .unwrap_err();
        assert_eq!(err.code.as_deref(), Some("integer_below_min_value"));
        let err = cfg()
            .apply_update(
                &obj(json!({"type":"realtime","audio":{"output":{"voice":"cedar"}}})),
                true,
            )
            .unwrap_err();
        assert_eq!(err.code.as_deref(), Some("cannot_update_voice"));
        cfg()
            .apply_update(
                &obj(json!({"type":"realtime","audio":{"output":{"voice":"alloy"}}})),
                true,
            )
            .unwrap();
    }

    #[test]
    fn beta_shape_detected() {
        assert!(is_beta_shaped(&obj(json!({"modalities":["audio","text"]}))));
        assert!(is_beta_shaped(&obj(json!({"input_audio_format":"pcm16"}))));
        assert!(!is_beta_shaped(&obj(
            json!({"type":"realtime","temperature":0.8})
        )));
    }

    #[test]
    fn null_turn_detection_disables_vad() {
        let mut c = cfg();
        c.apply_update(
            &obj(json!({"type":"realtime","audio":{"input":{"turn_detection":null}}})),
            false,
        )
        .unwrap();
        assert!(c.turn_detection().is_none());
    }
}
