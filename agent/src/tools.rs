//! The tool registry: which functions the model may call, their JSON schemas, their handlers and
//! how long each may take.
//!
//! Tools come from providers (the ordering product is one) so that a provider can keep per-call
//! state (an order in progress) and learn when a call ends. A handler's failure, a timeout or
//! arguments that are not JSON never reach the caller as silence or a crash: they go back to
//! the model as the tool's output, so it can apologise or ask again.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pjsip_safe::CallId;
use serde_json::{json, Value};

use crate::realtime::conversation::{ToolDefinition, Transcript};

/// What a handler knows about the call it serves.
#[derive(Debug, Clone)]
pub struct ToolContext {
    pub call: CallId,
    /// The caller's SIP URI (`From`).
    pub caller: String,
    /// The number that was called (`To`).
    pub called: String,
}

/// What a tool answers the model: `value` is sent as the `function_call_output` and always
/// carries `"ok"`; a refusal or failure also carries `"error"` (the one place that envelope is
/// built is [`ToolOutput::error`]).
#[derive(Debug, Clone, PartialEq)]
pub struct ToolOutput {
    pub ok: bool,
    pub value: Value,
}

impl ToolOutput {
    /// A failure the model should explain or work around: `{"ok": false, "error": message}`.
    pub fn error(message: impl Into<String>) -> Self {
        Self {
            ok: false,
            value: json!({"ok": false, "error": message.into()}),
        }
    }

    /// A success: `value` is the answer (it carries `"ok": true` for the model).
    pub fn ok(value: Value) -> Self {
        Self { ok: true, value }
    }

    /// The JSON text for `function_call_output`.
    pub fn to_json_text(&self) -> String {
        self.value.to_string()
    }
}

impl std::ops::Index<&str> for ToolOutput {
    type Output = Value;

    /// A field of the answer (`Null` when absent), as on a JSON object.
    fn index(&self, key: &str) -> &Value {
        &self.value[key]
    }
}

impl std::fmt::Display for ToolOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.value.fmt(f)
    }
}

/// A handler's answer for the model (failures are answers too).
pub type ToolFuture = Pin<Box<dyn Future<Output = ToolOutput> + Send>>;

/// A source of tools.
pub trait ToolProvider: Send + Sync {
    /// The tools this provider offers (name, description, JSON schema).
    fn definitions(&self) -> Vec<ToolDefinition>;
    /// Runs tool `name` (one of this provider's) for a call with the parsed arguments.
    fn call(&self, ctx: &ToolContext, name: &str, arguments: &Value) -> ToolFuture;
    /// How long `name` may take; `None` = the registry's default.
    fn timeout(&self, _name: &str) -> Option<Duration> {
        None
    }
    /// The call has ended (after pending tool calls finished); per-call state can be settled.
    fn call_ended(&self, _ctx: &ToolContext, _transcript: &Transcript) {}
}

/// The outcome of one tool call, as reported to the model and kept for the call's record.
#[derive(Debug, Clone)]
pub struct ToolOutcome {
    /// JSON text sent as `function_call_output`.
    pub output: String,
    pub ok: bool,
    pub duration: Duration,
}

/// All tools the model is offered, by name.
#[derive(Clone)]
pub struct ToolRegistry {
    providers: Vec<Arc<dyn ToolProvider>>,
    by_name: HashMap<String, usize>,
    default_timeout: Duration,
    /// Offer `transfer_call` (only when a transfer target is configured).
    transfer: bool,
}

impl std::fmt::Debug for ToolRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ToolRegistry")
            .field("tools", &self.by_name.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl ToolRegistry {
    pub fn new(default_timeout: Duration, transfer: bool) -> Self {
        Self {
            providers: Vec::new(),
            by_name: HashMap::new(),
            default_timeout,
            transfer,
        }
    }

    /// Adds a provider; a later provider's tool with the same name replaces an earlier one.
    pub fn register(&mut self, provider: Arc<dyn ToolProvider>) {
        let index = self.providers.len();
        for def in provider.definitions() {
            self.by_name.insert(def.name, index);
        }
        self.providers.push(provider);
    }

    /// Every tool for the session: the providers' tools plus the built-ins `end_call` and (when
    /// a transfer target exists) `transfer_call`.
    pub fn definitions(&self) -> Vec<ToolDefinition> {
        let mut defs: Vec<ToolDefinition> = self
            .providers
            .iter()
            .flat_map(|p| p.definitions())
            .collect();
        defs.push(ToolDefinition::end_call());
        if self.transfer {
            defs.push(ToolDefinition::transfer_call());
        }
        defs
    }

    /// Runs a tool with the model's raw argument text; never fails: problems become outputs.
    /// The arguments are parsed here, once; the handler's [`ToolOutput`] says whether it worked.
    pub async fn run(&self, ctx: &ToolContext, name: &str, arguments: &str) -> ToolOutcome {
        let started = Instant::now();
        let output = self.output(ctx, name, arguments).await;
        ToolOutcome {
            output: output.to_json_text(),
            ok: output.ok,
            duration: started.elapsed(),
        }
    }

    async fn output(&self, ctx: &ToolContext, name: &str, arguments: &str) -> ToolOutput {
        let Some(&index) = self.by_name.get(name) else {
            return ToolOutput::error(format!(
                "unknown tool `{name}`; use only the tools listed in the session"
            ));
        };
        let args: Value = if arguments.trim().is_empty() {
            json!({})
        } else {
            match serde_json::from_str(arguments) {
                Ok(v) => v,
                Err(e) => {
                    return ToolOutput::error(format!(
                        "the arguments are not valid JSON ({e}); call the tool again with a JSON object"
                    ))
                }
            }
        };
        let provider = &self.providers[index];
        let timeout = provider.timeout(name).unwrap_or(self.default_timeout);
        match tokio::time::timeout(timeout, provider.call(ctx, name, &args)).await {
            Ok(output) => output,
            Err(_) => ToolOutput::error(format!(
                "`{name}` did not answer within {} ms; tell the caller there is a technical delay and try once more or offer a callback",
                timeout.as_millis()
            )),
        }
    }

    /// Tells every provider that a call ended.
    pub fn call_ended(&self, ctx: &ToolContext, transcript: &Transcript) {
        for p in &self.providers {
            p.call_ended(ctx, transcript);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Echo;

    impl ToolProvider for Echo {
        fn definitions(&self) -> Vec<ToolDefinition> {
            vec![
                ToolDefinition::external("echo", "echoes", json!({"type": "object"})),
                ToolDefinition::external("slow", "sleeps", json!({"type": "object"})),
                ToolDefinition::external("fail", "fails", json!({"type": "object"})),
            ]
        }
        fn call(&self, _ctx: &ToolContext, name: &str, arguments: &Value) -> ToolFuture {
            let name = name.to_string();
            let arguments = arguments.clone();
            Box::pin(async move {
                match name.as_str() {
                    "slow" => {
                        tokio::time::sleep(Duration::from_secs(5)).await;
                        ToolOutput::ok(json!({}))
                    }
                    "fail" => ToolOutput::error("the shop system is down"),
                    _ => ToolOutput::ok(json!({"ok": true, "got": arguments})),
                }
            })
        }
        fn timeout(&self, name: &str) -> Option<Duration> {
            (name == "slow").then_some(Duration::from_millis(50))
        }
    }

    fn ctx() -> ToolContext {
        ToolContext {
            call: CallId(1),
            caller: "sip:+49301234@example.com".into(),
            called: "sip:bot@example.com".into(),
        }
    }

    fn registry() -> ToolRegistry {
        let mut r = ToolRegistry::new(Duration::from_secs(1), false);
        r.register(Arc::new(Echo));
        r
    }

    #[tokio::test]
    async fn a_tool_gets_parsed_arguments() {
        let out = registry().run(&ctx(), "echo", r#"{"a": 1}"#).await;
        assert!(out.ok);
        assert_eq!(out.output, r#"{"got":{"a":1},"ok":true}"#);
    }

    #[tokio::test]
    async fn problems_become_outputs_for_the_model() {
        let r = registry();
        let bad_json = r.run(&ctx(), "echo", "{oops").await;
        assert!(!bad_json.ok && bad_json.output.contains("not valid JSON"));
        let unknown = r.run(&ctx(), "nope", "{}").await;
        assert!(!unknown.ok && unknown.output.contains("unknown tool"));
        let failed = r.run(&ctx(), "fail", "{}").await;
        assert!(!failed.ok && failed.output.contains("shop system is down"));
        let slow = r.run(&ctx(), "slow", "{}").await;
        assert!(!slow.ok && slow.output.contains("did not answer within 50 ms"));
        assert!(slow.duration < Duration::from_secs(1));
    }

    #[test]
    fn builtins_are_offered_and_transfer_only_with_a_target() {
        let names = |r: &ToolRegistry| {
            r.definitions()
                .into_iter()
                .map(|d| d.name)
                .collect::<Vec<_>>()
        };
        assert!(names(&registry()).contains(&"end_call".to_string()));
        assert!(!names(&registry()).contains(&"transfer_call".to_string()));
        let mut with_transfer = ToolRegistry::new(Duration::from_secs(1), true);
        with_transfer.register(Arc::new(Echo));
        assert!(names(&with_transfer).contains(&"transfer_call".to_string()));
    }
}
