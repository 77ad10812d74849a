//! The Realtime client's I/O: opening the WebSocket (GA: no beta header, the model in the
//! query string) and the start-up probe.
//!
//! Nothing here decides anything about a conversation; that is [`super::conversation`]. The
//! probe reads the typed wire ([`ServerEvent`]) like the conversation does, so both agree on
//! what `session.created` and `error` look like.

use futures_util::StreamExt;
use pjsip_safe::Secret;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::wire::{ParseError, ServerEvent};

/// An open Realtime session's socket.
pub type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Where the Realtime session lives.
#[derive(Debug, Clone)]
pub struct RealtimeTarget {
    /// `ws://` or `wss://` URL of the Realtime endpoint, without the model parameter.
    pub url: String,
    pub model: String,
    pub api_key: Option<Secret>,
}

/// Connects to the Realtime endpoint (GA: no beta header), with the model in the query string.
pub async fn connect(target: &RealtimeTarget) -> anyhow::Result<Socket> {
    let sep = if target.url.contains('?') { '&' } else { '?' };
    let url = format!("{}{sep}model={}", target.url, target.model);
    let mut request = url.as_str().into_client_request()?;
    if let Some(key) = &target.api_key {
        let value = format!("Bearer {}", key.expose()).parse().map_err(|_| {
            anyhow::anyhow!("OPENAI_API_KEY contains characters not allowed in an HTTP header")
        })?;
        request.headers_mut().insert("Authorization", value);
    }
    let (socket, _response) = tokio_tungstenite::connect_async(request)
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot connect to the Realtime endpoint {}: {e}",
                target.url
            )
        })?;
    Ok(socket)
}

/// Connects and waits for `session.created`: proves the endpoint accepts the key and model.
pub async fn probe(target: &RealtimeTarget) -> anyhow::Result<()> {
    let mut socket = connect(target).await?;
    while let Some(message) = socket.next().await {
        match message? {
            Message::Text(text) => match ServerEvent::parse(&text) {
                Ok(ServerEvent::SessionCreated { .. }) => {
                    let _ = socket.close(None).await;
                    return Ok(());
                }
                Ok(ServerEvent::Error { error, .. }) => anyhow::bail!(
                    "the endpoint answered with an error: {} ({}): {}",
                    error.code.as_deref().unwrap_or("-"),
                    error.kind,
                    error.message
                ),
                Ok(_) => {}
                Err(e @ ParseError::NotAnEvent(_)) => anyhow::bail!("{e}"),
                // A known event in an unexpected shape is not the probe's business.
                Err(ParseError::Malformed { .. }) => {}
            },
            Message::Close(frame) => anyhow::bail!(
                "the endpoint closed the connection: {}",
                frame.map_or("no reason".into(), |f| format!("{} {}", f.code, f.reason))
            ),
            _ => {}
        }
    }
    anyhow::bail!("the endpoint closed the connection before session.created")
}
