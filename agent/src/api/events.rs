//! The live event stream (`GET /api/events`, Server-Sent Events).
//!
//! SSE rather than WebSocket: the stream only flows one way, it is plain HTTP (proxies, curl, the
//! bearer header all just work) and browsers parse it natively. Each event is one `data:` line
//! of JSON with a `type` field ([`LiveEvent`]), and the SSE `event:` name set to the same type.
//! A listener too slow to keep up gets `{"type":"lagged","missed":N}` and should re-read
//! `/api/calls`; a comment line every 15 s keeps idle connections open through proxies.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::{self, Stream};
use tokio::sync::broadcast::error::RecvError;

use super::Api;
use crate::live::LiveEvent;

fn to_sse(event: &LiveEvent) -> Event {
    let data = serde_json::to_string(event).unwrap_or_else(|_| "{}".into());
    let kind = serde_json::to_value(event)
        .ok()
        .and_then(|v| v["type"].as_str().map(str::to_owned))
        .unwrap_or_else(|| "message".into());
    Event::default().event(kind).data(data)
}

pub(super) async fn events(
    State(api): State<Api>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let rx = api.shared.live.subscribe();
    let hello = Event::default().event("hello").data(r#"{"type":"hello"}"#);
    let live = stream::unfold(rx, |mut rx| async move {
        match rx.recv().await {
            Ok(e) => Some((Ok(to_sse(&e)), rx)),
            Err(RecvError::Lagged(n)) => {
                let e = Event::default()
                    .event("lagged")
                    .data(format!(r#"{{"type":"lagged","missed":{n}}}"#));
                Some((Ok(e), rx))
            }
            Err(RecvError::Closed) => None,
        }
    });
    let s = stream::once(async move { Ok(hello) });
    Sse::new(futures_util::StreamExt::chain(s, live))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}
