//! Serde types for the OpenAI Realtime **GA** WebSocket protocol.
//!
//! Only GA shapes exist here: the session is nested (`audio.input.format`, `audio.output.voice`)
//! and carries `type: "realtime"`, and audio arrives as `response.output_audio.delta`. The legacy
//! beta protocol was removed from api.openai.com and a beta-shaped payload gets the socket closed
//! (reference §0, §16.1), so the types make it impossible to produce one.
//!
//! - [`session`]: the session object, sent in `session.update` and echoed back.
//! - [`client`]: events we send.
//! - [`server`]: events we receive, parsed tolerantly.
//! - [`audio`]: base64 PCM16 payload helpers and sample/ms arithmetic.

pub mod audio;
pub mod client;
pub mod server;
pub mod session;

pub use audio::{decode_pcm16, encode_pcm16, AudioDecodeError};
pub use client::{ClientEvent, InputContent, InputItem, ResponseParams, Role};
pub use server::{
    Content, ErrorDetails, Item, ParseError, RateLimit, Response, ResponseStatus, ServerEvent,
    StatusDetails,
};
pub use session::{
    AudioFormat, AudioInput, AudioOutput, Eagerness, FunctionTool, Modality, NoiseReduction,
    NoiseReductionKind, Session, SessionAudio, SessionType, Tool, ToolChoice, ToolChoiceMode,
    Transcription, TurnDetection, Voice,
};

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn fixture(name: &str) -> Vec<Value> {
        let path = format!("{}/tests/data/realtime/{name}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    #[test]
    fn every_recorded_server_event_parses_to_its_own_variant() {
        let events = fixture("server_events.json");
        let mut seen = std::collections::BTreeSet::new();
        for value in events {
            let wire_type = value["type"].as_str().unwrap().to_owned();
            let event = ServerEvent::parse(&value.to_string())
                .unwrap_or_else(|e| panic!("{wire_type}: {e}"));
            assert!(
                !matches!(event, ServerEvent::Unknown { .. }),
                "{wire_type} parsed as Unknown"
            );
            assert_eq!(event.event_type(), wire_type);
            seen.insert(wire_type);
        }
        // Every known type has a fixture, so the list and the enum cannot drift apart.
        for known in server::KNOWN_SERVER_EVENT_TYPES {
            assert!(seen.contains(*known), "no fixture for {known}");
        }
    }

    #[test]
    fn unknown_and_beta_events_are_unknown_not_errors() {
        for value in fixture("unknown_server_events.json") {
            let wire_type = value["type"].as_str().unwrap();
            match ServerEvent::parse(&value.to_string()).unwrap() {
                ServerEvent::Unknown { event_type } => assert_eq!(event_type, wire_type),
                other => panic!("{wire_type} parsed as {other:?}"),
            }
        }
    }

    #[test]
    fn malformed_known_event_is_an_error_naming_the_type() {
        let err = ServerEvent::parse(r#"{"type":"response.output_audio.delta"}"#).unwrap_err();
        assert!(matches!(err, ParseError::Malformed { ref event_type, .. }
            if event_type == "response.output_audio.delta"));
        assert!(matches!(
            ServerEvent::parse("[1,2]"),
            Err(ParseError::NotAnEvent(_))
        ));
        assert!(matches!(
            ServerEvent::parse("not json"),
            Err(ParseError::NotAnEvent(_))
        ));
    }

    #[test]
    fn session_created_fields_are_read() {
        let value = &fixture("server_events.json")[0];
        let ServerEvent::SessionCreated { session } =
            ServerEvent::parse(&value.to_string()).unwrap()
        else {
            panic!("not session.created")
        };
        let audio = session.audio.unwrap();
        let input = audio.input.unwrap();
        assert_eq!(input.format, Some(AudioFormat::PCM_24K));
        assert_eq!(
            input.turn_detection,
            Some(TurnDetection::ServerVad {
                threshold: Some(0.5),
                prefix_padding_ms: Some(300),
                silence_duration_ms: Some(200),
                idle_timeout_ms: None,
                create_response: Some(true),
                interrupt_response: Some(true),
            })
        );
        let output = audio.output.unwrap();
        assert_eq!(output.voice, Some(Voice::Named("alloy".into())));
        assert_eq!(session.output_modalities, Some(vec![Modality::Audio]));
        assert_eq!(
            session.tool_choice,
            Some(ToolChoice::Mode(ToolChoiceMode::Auto))
        );
    }

    #[test]
    fn error_event_keeps_code_message_and_client_event_id() {
        let value = &fixture("server_events.json")[4];
        let ServerEvent::Error { error, .. } = ServerEvent::parse(&value.to_string()).unwrap()
        else {
            panic!("not error")
        };
        assert_eq!(error.code.as_deref(), Some("invalid_event"));
        assert_eq!(error.message, "The 'type' field is missing.");
        assert_eq!(error.event_id.as_deref(), Some("event_567"));
    }

    #[test]
    fn response_done_keeps_status_and_output() {
        let events = fixture("server_events.json");
        let done: Vec<Response> = events
            .iter()
            .filter_map(|v| match ServerEvent::parse(&v.to_string()).unwrap() {
                ServerEvent::ResponseDone { response } => Some(response),
                _ => None,
            })
            .collect();
        assert_eq!(done.len(), 2);
        assert_eq!(done[0].status, ResponseStatus::Completed);
        assert!(
            matches!(&done[0].output[0], Item::Message { role: Role::Assistant, content, .. }
            if content == &vec![Content::OutputAudio { transcript: Some("Loud and clear!".into()) }])
        );
        assert_eq!(done[1].status, ResponseStatus::Cancelled);
        assert_eq!(
            done[1].status_details.as_ref().unwrap().reason.as_deref(),
            Some("turn_detected")
        );
    }

    #[test]
    fn function_call_done_has_name_and_arguments() {
        let event = ServerEvent::parse(
            &fixture("server_events.json")
                .into_iter()
                .find(|v| v["type"] == "response.function_call_arguments.done")
                .unwrap()
                .to_string(),
        )
        .unwrap();
        assert_eq!(
            event,
            ServerEvent::ResponseFunctionCallArgumentsDone {
                response_id: "resp_002".into(),
                item_id: "fc_001".into(),
                output_index: 0,
                call_id: "call_001".into(),
                name: Some("get_weather".into()),
                arguments: r#"{"location": "San Francisco"}"#.into(),
            }
        );
    }

    #[test]
    fn recorded_client_events_round_trip_exactly() {
        for value in fixture("client_events.json") {
            let event: ClientEvent =
                serde_json::from_value(value.clone()).unwrap_or_else(|e| panic!("{value}: {e}"));
            assert_eq!(event.event_type(), value["type"].as_str().unwrap());
            let back: Value = serde_json::from_str(&event.to_json()).unwrap();
            assert_eq!(back, value);
        }
    }

    #[test]
    fn full_session_update_is_ga_shaped() {
        let mut session = Session::realtime();
        session.model = Some("gpt-realtime".into());
        session.output_modalities = Some(vec![Modality::Audio]);
        session.audio = Some(SessionAudio {
            input: Some(AudioInput {
                format: Some(AudioFormat::PCM_24K),
                transcription: None,
                noise_reduction: Some(NoiseReduction {
                    kind: NoiseReductionKind::NearField,
                }),
                turn_detection: Some(TurnDetection::SemanticVad {
                    eagerness: Some(Eagerness::Low),
                    create_response: Some(true),
                    interrupt_response: Some(true),
                }),
            }),
            output: Some(AudioOutput {
                format: Some(AudioFormat::PCM_24K),
                voice: Some(Voice::Named("marin".into())),
                speed: None,
            }),
        });
        session.tools = Some(vec![Tool::Function(FunctionTool {
            name: "end_call".into(),
            description: "Hang up.".into(),
            parameters: json!({"type": "object", "properties": {}}),
        })]);
        let event = ClientEvent::SessionUpdate {
            event_id: None,
            session: Box::new(session),
        };
        let value: Value = serde_json::from_str(&event.to_json()).unwrap();
        assert_eq!(
            value,
            json!({"type": "session.update", "session": {
                "type": "realtime",
                "model": "gpt-realtime",
                "output_modalities": ["audio"],
                "audio": {
                    "input": {
                        "format": {"type": "audio/pcm", "rate": 24000},
                        "transcription": null,
                        "noise_reduction": {"type": "near_field"},
                        "turn_detection": {"type": "semantic_vad", "eagerness": "low",
                            "create_response": true, "interrupt_response": true}
                    },
                    "output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": "marin"}
                },
                "tools": [{"type": "function", "name": "end_call", "description": "Hang up.",
                    "parameters": {"type": "object", "properties": {}}}]
            }})
        );
        // No beta field names anywhere.
        let text = event.to_json();
        for beta in [
            "\"modalities\"",
            "input_audio_format",
            "output_audio_format",
            "temperature",
            "pcm16",
        ] {
            assert!(!text.contains(beta), "beta field {beta} in {text}");
        }
    }

    #[test]
    fn append_audio_encodes_pcm16() {
        let event = ClientEvent::append_audio(&[0x0102]);
        assert_eq!(
            serde_json::from_str::<Value>(&event.to_json()).unwrap(),
            json!({"type": "input_audio_buffer.append", "audio": "AgE="})
        );
    }

    #[test]
    fn unknown_enum_values_do_not_fail_the_session() {
        let event = ServerEvent::parse(
            r#"{"type":"session.updated","session":{"type":"realtime",
            "output_modalities":["hologram"],
            "audio":{"input":{"format":{"type":"audio/opus"},"turn_detection":{"type":"magic_vad"},
            "noise_reduction":{"type":"space_field"}},"output":{"voice":{"id":"voice_123"}}},
            "tools":[{"type":"mcp","server_label":"x"}],
            "tool_choice":{"type":"mcp","server_label":"x"}}}"#,
        )
        .unwrap();
        let ServerEvent::SessionUpdated { session } = event else {
            panic!("not session.updated")
        };
        let audio = session.audio.unwrap();
        let input = audio.input.unwrap();
        assert_eq!(input.format, Some(AudioFormat::Other));
        assert_eq!(input.turn_detection, Some(TurnDetection::Other));
        assert_eq!(
            audio.output.unwrap().voice,
            Some(Voice::Custom {
                id: "voice_123".into()
            })
        );
        assert_eq!(session.tools, Some(vec![Tool::Other]));
        assert!(matches!(session.tool_choice, Some(ToolChoice::Other(_))));
    }
}
