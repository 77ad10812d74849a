//! The ordering tools as a [`ToolProvider`] of the agent's registry.
//!
//! Handlers and SQLite are blocking, so every call runs on tokio's blocking pool. Each phone call
//! has its own [`OrderSession`]; when the call ends, an unconfirmed order is stored as
//! abandoned and a confirmed one gets the complete transcript (the conversation continues after
//! `confirm_order`: the order number is read out, goodbyes are said).

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use chrono::Utc;
use pjsip_safe::CallId;
use serde_json::Value;

use super::{handle_tool_call, tool_definitions, Catalog, OrderSession, OrderStore};
use crate::realtime::conversation::{ToolDefinition, Transcript, TranscriptEvent};
use crate::tools::{ToolContext, ToolFuture, ToolProvider};

/// Catalog, order store and the order sessions of calls in progress.
pub struct OrderingTools {
    catalog: Arc<Catalog>,
    store: Arc<Mutex<OrderStore>>,
    sessions: Arc<Mutex<HashMap<CallId, OrderSession>>>,
}

impl OrderingTools {
    /// Loads the catalog from `catalog_dir` and opens (creating) `data_dir/orders.sqlite3`.
    pub fn open(catalog_dir: &Path, data_dir: &Path) -> anyhow::Result<Self> {
        let catalog = Catalog::load_dir(catalog_dir).map_err(|e| {
            anyhow::anyhow!(
                "cannot load the product catalog from {} (CATALOG_DIR): {e}",
                catalog_dir.display()
            )
        })?;
        std::fs::create_dir_all(data_dir)
            .map_err(|e| anyhow::anyhow!("cannot create DATA_DIR {}: {e}", data_dir.display()))?;
        let store = OrderStore::open_in(data_dir).map_err(|e| {
            anyhow::anyhow!(
                "cannot open the order database in {}: {e}",
                data_dir.display()
            )
        })?;
        Ok(Self {
            catalog: Arc::new(catalog),
            store: Arc::new(Mutex::new(store)),
            sessions: Arc::default(),
        })
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }
}

fn transcript_lines(transcript: &Transcript) -> Vec<(String, String)> {
    transcript
        .entries
        .iter()
        .filter_map(|e| match &e.event {
            TranscriptEvent::Caller { text, .. } => Some(("Anrufer".to_string(), text.clone())),
            TranscriptEvent::Agent { text, .. } => Some(("Agent".to_string(), text.clone())),
            _ => None,
        })
        .collect()
}

impl ToolProvider for OrderingTools {
    fn definitions(&self) -> Vec<ToolDefinition> {
        tool_definitions()
            .into_iter()
            .map(|d| ToolDefinition::external(d.name, d.description, d.parameters))
            .collect()
    }

    fn call(&self, ctx: &ToolContext, name: &str, arguments: Value) -> ToolFuture {
        let catalog = self.catalog.clone();
        let store = self.store.clone();
        let sessions = self.sessions.clone();
        let ctx = ctx.clone();
        let name = name.to_string();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                let now = Utc::now();
                let mut sessions = sessions.lock().map_err(|_| "order sessions unavailable")?;
                let session = sessions.entry(ctx.call).or_insert_with(|| {
                    OrderSession::new(ctx.call.to_string(), caller_number(&ctx.caller), now)
                });
                let mut store = store.lock().map_err(|_| "order store unavailable")?;
                let mut tool_ctx = super::ToolContext {
                    catalog: &catalog,
                    session,
                    store: &mut store,
                    now,
                };
                Ok(handle_tool_call(
                    &mut tool_ctx,
                    &name,
                    &arguments.to_string(),
                ))
            })
            .await
            .map_err(|e| format!("the order system failed: {e}"))?
            .map_err(|e: &str| e.to_string())
        })
    }

    fn call_ended(&self, ctx: &ToolContext, transcript: &Transcript) {
        let Some(mut session) = self
            .sessions
            .lock()
            .ok()
            .and_then(|mut s| s.remove(&ctx.call))
        else {
            return;
        };
        let lines = transcript_lines(transcript);
        let Ok(mut store) = self.store.lock() else {
            return;
        };
        if let Some(order_no) = session.order_no().map(str::to_string) {
            let text: Vec<String> = lines
                .iter()
                .map(|(who, what)| format!("{who}: {what}"))
                .collect();
            if let Err(e) = store.set_transcript(&order_no, &text.join("\n")) {
                tracing::warn!(call = %ctx.call, %order_no, "storing the transcript failed: {e}");
            }
            return;
        }
        for (who, what) in &lines {
            session.add_transcript(who, what);
        }
        match session.finish(&mut store, Utc::now()) {
            Ok(Some(id)) => {
                tracing::info!(call = %ctx.call, id, "unconfirmed order kept as abandoned")
            }
            Ok(None) => {}
            Err(e) => tracing::error!(call = %ctx.call, "storing the abandoned order failed: {e}"),
        }
    }
}

/// The caller's number from a SIP URI like `"Name" <sip:+4930123@host>;tag=…`.
pub fn caller_number(uri: &str) -> String {
    let inner = uri
        .split_once('<')
        .map_or(uri, |(_, rest)| rest.split('>').next().unwrap_or(rest));
    let user = inner
        .trim_start_matches("sips:")
        .trim_start_matches("sip:")
        .split(['@', ';'])
        .next()
        .unwrap_or("");
    if user.is_empty() {
        uri.to_string()
    } else {
        user.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::caller_number;

    #[test]
    fn caller_numbers_come_from_the_uri_user_part() {
        assert_eq!(
            caller_number("\"Max\" <sip:+4930123456@sipgate.de>;tag=abc"),
            "+4930123456"
        );
        assert_eq!(caller_number("<sip:caller@127.0.0.1:5062>"), "caller");
        assert_eq!(caller_number("sip:0301234@example.com"), "0301234");
    }
}
