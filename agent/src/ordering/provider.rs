//! The ordering tools as a [`ToolProvider`] of the agent's registry.
//!
//! Handlers and SQLite are blocking, so every call runs on tokio's blocking pool. Each phone call
//! has its own [`OrderSession`] and its own SQLite connection (WAL lets connections write
//! concurrently), so a slow or locked database delays only the calls that write, never the
//! tools of every call. When the call ends, an unconfirmed order is stored as
//! abandoned and a confirmed one gets the complete transcript (the conversation continues after
//! `confirm_order`: the order number is read out, goodbyes are said).

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use chrono::Utc;
use pjsip_safe::CallId;
use serde_json::Value;

use super::{handle_tool_call, tool_definitions, Catalog, OrderContext, OrderSession, OrderStore};
use crate::realtime::conversation::{ToolDefinition, Transcript, TranscriptEvent};
use crate::tools::{ToolContext, ToolFuture, ToolOutput, ToolProvider};

/// One call's order and its database connection (opened on the call's first tool use).
struct CallOrder {
    session: OrderSession,
    store: Option<OrderStore>,
}

type CallOrders = Arc<Mutex<HashMap<CallId, Arc<Mutex<CallOrder>>>>>;

/// Catalog, where orders are stored, and the orders of calls in progress.
pub struct OrderingTools {
    catalog: Arc<Catalog>,
    data_dir: Arc<std::path::PathBuf>,
    calls: CallOrders,
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
        // Opening once at start-up creates the schema and reports a bad DATA_DIR right away.
        OrderStore::open_in(data_dir).map_err(|e| {
            anyhow::anyhow!(
                "cannot open the order database in {}: {e}",
                data_dir.display()
            )
        })?;
        Ok(Self {
            catalog: Arc::new(catalog),
            data_dir: Arc::new(data_dir.to_path_buf()),
            calls: Arc::default(),
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
    }

    fn call(&self, ctx: &ToolContext, name: &str, arguments: &Value) -> ToolFuture {
        let catalog = self.catalog.clone();
        let data_dir = self.data_dir.clone();
        let call = {
            let Ok(mut calls) = self.calls.lock() else {
                return Box::pin(async { ToolOutput::error("order sessions unavailable") });
            };
            calls
                .entry(ctx.call)
                .or_insert_with(|| {
                    Arc::new(Mutex::new(CallOrder {
                        session: OrderSession::new(
                            ctx.call.to_string(),
                            caller_number(&ctx.caller),
                            Utc::now(),
                        ),
                        store: None,
                    }))
                })
                .clone()
        };
        let name = name.to_string();
        let arguments = arguments.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                // Only this call's lock: other calls' tools run in parallel.
                let Ok(mut call) = call.lock() else {
                    return ToolOutput::error("order session unavailable");
                };
                let CallOrder { session, store } = &mut *call;
                if store.is_none() {
                    match OrderStore::open_in(&data_dir) {
                        Ok(opened) => *store = Some(opened),
                        Err(e) => {
                            return ToolOutput::error(format!(
                                "the order database is unavailable: {e}"
                            ))
                        }
                    }
                }
                let store = store.as_mut().expect("opened above");
                let mut order = OrderContext {
                    catalog: &catalog,
                    session,
                    store,
                    now: Utc::now(),
                };
                handle_tool_call(&mut order, &name, &arguments)
            })
            .await
            .unwrap_or_else(|e| ToolOutput::error(format!("the order system failed: {e}")))
        })
    }

    fn call_ended(&self, ctx: &ToolContext, transcript: &Transcript) {
        let Some(call) = self.calls.lock().ok().and_then(|mut c| c.remove(&ctx.call)) else {
            return;
        };
        let Ok(mut call) = call.lock() else {
            return;
        };
        let CallOrder { session, store } = &mut *call;
        let store = match store {
            Some(store) => store,
            None => return, // no tool was used: there is no order
        };
        let lines = transcript_lines(transcript);
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
        match session.finish(store, Utc::now()) {
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
