//! What one exchange with a backend gives: its messages as they come ([`Replies`]: a JSON body's
//! messages at once, an SSE stream's or a stdio child's as they arrive) or why it failed
//! ([`UpstreamError`]). Shared by the transports ([`super::http_backend`], and [`super::stdio`]
//! through [`super::upstream`]) and the stages that read the answers.

use super::stdio::StdioError;
use super::wire::RawResponse;
use crate::gateway::jsonrpc::{Message, Response};
use tokio::sync::mpsc;

/// Why a backend exchange failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum UpstreamError {
    /// Network failure.
    #[error("cannot reach MCP server: {0}")]
    Connect(String),
    /// No answer in time.
    #[error("MCP server did not answer in time")]
    Timeout,
    /// The backend no longer knows the session.
    #[error("MCP server ended the session")]
    SessionGone,
    /// An HTTP status that is not an MCP answer.
    #[error("MCP server answered HTTP {0}")]
    Status(u16),
    /// An answer that is not MCP.
    #[error("MCP server sent an invalid answer: {0}")]
    Protocol(String),
    /// stdio failure.
    #[error("{0}")]
    Stdio(#[from] StdioError),
}

/// Messages of one exchange: notifications and server requests, then the response. A backend
/// that answered with one JSON body has said everything already: its messages are handed over
/// as they are, with no channel and no task in between (the common case of a tool call);
/// an SSE answer (or a stdio child) delivers them as they come.
pub enum Replies {
    /// The messages of a JSON body, in order.
    Ready(std::collections::VecDeque<Message>),
    /// Messages as they arrive.
    Stream(mpsc::Receiver<Message>),
    /// The answer to a tools/call ([`super::upstream::Outgoing::ToolCall`], [`super::upstream::Outgoing::Wire`]) that was one
    /// JSON body holding one successful response, as the backend sent it.
    Raw(RawResponse),
}

impl Replies {
    /// The next message; `None` once the exchange is over.
    pub async fn recv(&mut self) -> Option<Message> {
        match self {
            Replies::Ready(q) => q.pop_front(),
            Replies::Stream(rx) => rx.recv().await,
            Replies::Raw(r) => {
                let m = r.to_message();
                *self = Replies::Ready(Default::default());
                Some(m)
            }
        }
    }
}

/// Waits for the response among an exchange's messages.
pub async fn final_response(rx: &mut Replies) -> Result<Response, UpstreamError> {
    while let Some(m) = rx.recv().await {
        if let Message::Response(r) = m {
            return Ok(r);
        }
    }
    Err(UpstreamError::Protocol("the stream ended without a response".into()))
}
