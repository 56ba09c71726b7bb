//! `cairn mcp-bridge -- CMD ARGS…`: one stdio MCP server served over streamable HTTP (session
//! era) at `/mcp`, with `/healthz`.
//!
//! Each client session gets its own child (or, with `--shared`, every session shares one child,
//! initialized once). A child that exits is started again on the next request. The command comes
//! only from the bridge's own command line: no header, body or path can choose or change it.
//! Messages over the size cap are refused (`413`) on the way in and dropped on the way out.

use super::protocol::{self, HEADER_PROTOCOL_VERSION, HEADER_SESSION_ID};
use super::reply::{accepts_event_stream, json_response, plain, sse_event as event, sse_response as sse};
use super::stdio::{StdioError, StdioServer, to_rpc_error};
use crate::gateway::jsonrpc::{self, INVALID_REQUEST, Message, Response as RpcResponse, RpcError};
use crate::gateway::response::Body;
use crate::gateway::sse::encode_comment;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

fn stdio_status(e: &StdioError) -> StatusCode {
    match e {
        StdioError::UnknownSession => StatusCode::NOT_FOUND,
        StdioError::TooLarge(..) => StatusCode::PAYLOAD_TOO_LARGE,
        _ => StatusCode::BAD_GATEWAY,
    }
}

/// Serves one request of the bridge.
pub async fn handle<B>(server: Arc<StdioServer>, req: Request<B>) -> Response<Body>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    match req.uri().path() {
        "/healthz" | "/readyz" => return plain(StatusCode::OK, "ok"),
        "/mcp" | "/" => {}
        _ => return plain(StatusCode::NOT_FOUND, "not found: the MCP endpoint is /mcp"),
    }
    let headers = req.headers().clone();
    if let Ok(Some(v)) = protocol::header(&headers, HEADER_PROTOCOL_VERSION)
        && !protocol::is_session_version(v)
    {
        // The bridge speaks the session era only: that is what it names as supported, so a
        // 2026-07-28 client (the gateway's era detection among them) falls back to initialize.
        let e = protocol::unsupported_version(v)
            .with_data(serde_json::json!({"supported": protocol::SESSION_VERSIONS, "requested": v}));
        return json_response(StatusCode::BAD_REQUEST, &RpcResponse::error(Value::Null, e).to_value());
    }
    let session = protocol::header(&headers, HEADER_SESSION_ID).ok().flatten().map(str::to_string);
    match (req.method().clone(), session) {
        (Method::POST, session) => {
            let max = server.max_message_bytes();
            let bytes = match Limited::new(req.into_body(), max).collect().await {
                Ok(c) => c.to_bytes(),
                Err(_) => return plain(StatusCode::PAYLOAD_TOO_LARGE, "message over the size limit"),
            };
            post(server, session, &headers, &bytes).await
        }
        (Method::GET, Some(s)) => match server.listen(&s).await {
            Ok(mut rx) => {
                let (tx, out) = mpsc::channel(64);
                tokio::spawn(async move {
                    let mut tick = tokio::time::interval(Duration::from_secs(15));
                    tick.tick().await;
                    loop {
                        let b = tokio::select! {
                            m = rx.recv() => match m { Some(m) => event(&m), None => return },
                            _ = tick.tick() => encode_comment("keep-alive"),
                        };
                        if tx.send(b).await.is_err() {
                            return;
                        }
                    }
                });
                sse(out)
            }
            Err(e) => plain(stdio_status(&e), &e.to_string()),
        },
        (Method::DELETE, Some(s)) => {
            if server.close(&s).await {
                plain(StatusCode::OK, "")
            } else {
                plain(StatusCode::NOT_FOUND, "Session not found")
            }
        }
        (Method::GET | Method::DELETE, None) => {
            plain(StatusCode::BAD_REQUEST, "Bad Request: Mcp-Session-Id header is required")
        }
        _ => plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed"),
    }
}

async fn post(
    server: Arc<StdioServer>,
    session: Option<String>,
    headers: &HeaderMap,
    bytes: &[u8],
) -> Response<Body> {
    let v = match jsonrpc::parse_body(bytes) {
        Ok(jsonrpc::Body::Single(v)) => v,
        Ok(jsonrpc::Body::Batch(_)) => {
            let e = RpcError::new(INVALID_REQUEST, "the bridge takes one message per request");
            return json_response(StatusCode::BAD_REQUEST, &RpcResponse::error(Value::Null, e).to_value());
        }
        Err(e) => return json_response(StatusCode::BAD_REQUEST, &e.to_value()),
    };
    let msg = match Message::from_value(v) {
        Ok(m) => m,
        Err(e) => return json_response(StatusCode::BAD_REQUEST, &e.to_value()),
    };
    let session = match (&msg, session) {
        (Message::Request(r), None) if r.method == "initialize" => {
            return match server.open(r.params.clone()).await {
                Ok((id, result)) => {
                    let mut resp = json_response(StatusCode::OK, &r.reply(result).to_value());
                    resp.headers_mut().insert(HEADER_SESSION_ID, HeaderValue::from_str(&id).expect("ascii"));
                    resp
                }
                Err(e) => json_response(StatusCode::OK, &r.error(to_rpc_error(&e)).to_value()),
            };
        }
        (_, None) => return plain(StatusCode::BAD_REQUEST, "Bad Request: Mcp-Session-Id header is required"),
        (_, Some(s)) => s,
    };
    match msg {
        Message::Notification(n) if n.method == "notifications/initialized" => {
            plain(StatusCode::ACCEPTED, "")
        }
        Message::Request(r) if r.method == "initialize" => {
            let e = RpcError::new(INVALID_REQUEST, "the session is already initialized");
            json_response(StatusCode::OK, &r.error(e).to_value())
        }
        m @ (Message::Notification(_) | Message::Response(_)) => match server.send(&session, m).await {
            Ok(()) => plain(StatusCode::ACCEPTED, ""),
            Err(e) => plain(stdio_status(&e), &e.to_string()),
        },
        Message::Request(r) => {
            let mut rx = match server.request(&session, r.clone()).await {
                Ok(rx) => rx,
                Err(e @ StdioError::UnknownSession) => return plain(stdio_status(&e), "Session not found"),
                Err(e) => return json_response(StatusCode::OK, &r.error(to_rpc_error(&e)).to_value()),
            };
            let lost = || {
                json_response(
                    StatusCode::OK,
                    &r.error(RpcError::new(jsonrpc::INTERNAL_ERROR, "MCP server process exited")).to_value(),
                )
            };
            let first = match rx.recv().await {
                None => return lost(),
                Some(Message::Response(resp)) => return json_response(StatusCode::OK, &resp.to_value()),
                Some(m) => m,
            };
            let accepts_sse = accepts_event_stream(headers);
            if !accepts_sse {
                while let Some(m) = rx.recv().await {
                    if let Message::Response(resp) = m {
                        return json_response(StatusCode::OK, &resp.to_value());
                    }
                }
                return lost();
            }
            let (tx, out) = mpsc::channel(64);
            let id = r.id.clone();
            tokio::spawn(async move {
                if tx.send(event(&first)).await.is_err() {
                    return;
                }
                while let Some(m) = rx.recv().await {
                    let last = matches!(m, Message::Response(_));
                    if tx.send(event(&m)).await.is_err() || last {
                        return;
                    }
                }
                let e = RpcResponse::error(
                    id,
                    RpcError::new(jsonrpc::INTERNAL_ERROR, "MCP server process exited"),
                );
                let _ = tx.send(event(&Message::Response(e))).await;
            });
            sse(out)
        }
    }
}

/// Runs the bridge until `shutdown`.
pub async fn run(
    listener: TcpListener,
    server: Arc<StdioServer>,
    shutdown: crate::gateway::server::Shutdown,
) {
    crate::gateway::server::serve(listener, move |req| handle(server.clone(), req), shutdown).await
}

/// What `cairn mcp-bridge` was asked to run.
#[derive(Clone, Debug)]
pub struct BridgeOptions {
    /// Address to listen on.
    pub address: std::net::IpAddr,
    /// Port (0: any free port).
    pub port: u16,
    /// One child shared by all sessions.
    pub shared: bool,
    /// Largest message, either way.
    pub max_message_bytes: usize,
    /// Sessions unused this long are ended (their children stop).
    pub session_idle_timeout: Duration,
    /// The server's program and arguments.
    pub command: Vec<String>,
}

/// Why `cairn mcp-bridge` cannot start.
#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    /// No command was given.
    #[error("mcp-bridge needs the server's command after `--`")]
    NoCommand,
    /// The port cannot be bound.
    #[error("cannot listen on {address}:{port}: {source}")]
    Listen {
        /// Address.
        address: std::net::IpAddr,
        /// Port.
        port: u16,
        /// Why.
        source: std::io::Error,
    },
}

/// `cairn mcp-bridge`: serves until SIGINT or SIGTERM.
pub async fn main(opts: BridgeOptions) -> Result<(), BridgeError> {
    if opts.command.is_empty() {
        return Err(BridgeError::NoCommand);
    }
    let server = StdioServer::new(super::stdio::StdioCommand {
        command: opts.command.clone(),
        env: Default::default(),
        per_session: !opts.shared,
        max_message_bytes: opts.max_message_bytes,
    });
    StdioServer::reap_in_background(&server, opts.session_idle_timeout);
    let (address, port) = (opts.address, opts.port);
    let listener = TcpListener::bind((address, port)).await.map_err(|source| BridgeError::Listen {
        address,
        port,
        source,
    })?;
    let addr = listener.local_addr().map_err(|source| BridgeError::Listen { address, port, source })?;
    tracing::info!(
        "mcp-bridge listening on http://{addr}/mcp ({}): {}",
        if opts.shared { "one shared child" } else { "one child per session" },
        opts.command.join(" ")
    );
    run(listener, server, crate::gateway::supervisor::shutdown_on_signal()).await;
    Ok(())
}
