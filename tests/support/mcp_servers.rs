//! MCP servers for the gateway tests, built with the official Rust SDK (`rmcp`), served over
//! streamable HTTP on free loopback ports in the test process.
//!
//! * [`ToolsServer`]: tools `echo`, `add`, `fail` (a tool error), `explode` (a protocol error),
//!   `search_code`, `delete_repo`, `progress` (sends progress first), `changed` (sends
//!   `notifications/tools/list_changed` on the standalone stream shortly after answering),
//!   `sample` (asks the client for a sampling completion and answers with its text),
//!   `changed_all` (list change to every session and every `subscriptions/listen` stream),
//!   `progress_wait` (progress 1, then waits for [`ToolsServer::release`], progress 2, answers),
//!   `touch` (sends `notifications/resources/updated` for the URI in `text` to the sessions
//!   subscribed to it); a prompt `greet`; a resource `file:///readme.txt` (subscribable).
//! * [`PagedServer`]: 25 tools `t00`…`t24`, 10 per page.
//! * [`serve_modern`]: a server that speaks only 2026-07-28 (rmcp 3.11 speaks it: stateless
//!   requests, `server/discover`, `subscriptions/listen`), here a [`ToolsServer`] with
//!   `modern_only` set.

#![allow(dead_code)]

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, GetPromptRequestParams,
    GetPromptResponse, GetPromptResult, ListPromptsResult, ListResourcesResult, ListToolsResult,
    PaginatedRequestParams, ProgressNotificationParam, ReadResourceRequestParams, ReadResourceResponse,
    ReadResourceResult, ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::{
    StreamableHttpServerConfig, StreamableHttpService, session::local::LocalSessionManager,
};
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A server running on a loopback port; stops when dropped.
pub struct Running {
    /// `http://127.0.0.1:PORT/mcp`.
    pub url: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves `make()` (with `modern_only` set) as a 2026-07-28-only server: no sessions, per-request
/// protocol metadata required, `initialize` refused.
pub async fn serve_modern<F>(make: F) -> Running
where
    F: Fn() -> ToolsServer + Send + Sync + 'static,
{
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_stateless_protocol_metadata_required(true);
    serve_with(move || ToolsServer { modern_only: true, ..make() }, config).await
}

/// Serves `make()` per session on a free port.
pub async fn serve<S, F>(make: F) -> Running
where
    S: ServerHandler + Send + 'static,
    F: Fn() -> S + Send + Sync + 'static,
{
    serve_with(make, StreamableHttpServerConfig::default()).await
}

async fn serve_with<S, F>(make: F, config: StreamableHttpServerConfig) -> Running
where
    S: ServerHandler + Send + 'static,
    F: Fn() -> S + Send + Sync + 'static,
{
    let service: StreamableHttpService<S, LocalSessionManager> =
        StreamableHttpService::new(move || Ok(make()), Default::default(), config);
    let router = axum::Router::new().nest_service("/mcp", service);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Running { url: format!("http://{addr}/mcp"), task }
}

/// Serves `make()` per session on `127.0.0.1:port` (0: a free port) until dropped; unlike
/// [`serve`], dropping it closes every open connection too, as a server process that exits would
/// (so a client holding a keep-alive connection or a stream sees the server go).
pub async fn serve_on<S, F>(port: u16, make: F) -> Running
where
    S: ServerHandler + Send + 'static,
    F: Fn() -> S + Send + Sync + 'static,
{
    use tower_service::Service;
    let service: StreamableHttpService<S, LocalSessionManager> = StreamableHttpService::new(
        move || Ok(make()),
        Default::default(),
        StreamableHttpServerConfig::default(),
    );
    let router = axum::Router::new().nest_service("/mcp", service);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        // Dropped (with every connection in it) when the task is aborted.
        let mut conns = tokio::task::JoinSet::new();
        while let Ok((sock, _)) = listener.accept().await {
            let router = router.clone();
            conns.spawn(async move {
                let svc = hyper::service::service_fn(move |req| router.clone().call(req));
                let _ = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new())
                    .serve_connection_with_upgrades(hyper_util::rt::TokioIo::new(sock), svc)
                    .await;
            });
            while conns.try_join_next().is_some() {}
        }
    });
    Running { url: format!("http://{addr}/mcp"), task }
}

fn tool(name: &str, description: &str) -> rmcp::model::Tool {
    serde_json::from_value(json!({
        "name": name,
        "description": description,
        "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}, "a": {"type": "number"}, "b": {"type": "number"}}}
    }))
    .unwrap()
}

fn text(s: impl Into<String>) -> CallToolResponse {
    CallToolResult::success(vec![ContentBlock::text(s.into())]).into()
}

/// A resource subscription: the URI and the subscribed session's peer.
pub type Subscription = (String, rmcp::Peer<RoleServer>);

/// The general-purpose test server. Clones share `calls` and `peers`: serve it with
/// `serve(move || server.clone())` to have its sessions share them.
#[derive(Clone, Default)]
pub struct ToolsServer {
    /// Tool calls served.
    pub calls: Arc<AtomicUsize>,
    /// Every initialized session's peer (for `changed_all`).
    pub peers: Arc<std::sync::Mutex<Vec<rmcp::Peer<RoleServer>>>>,
    /// `wait` calls that were cancelled.
    pub cancelled: Arc<AtomicUsize>,
    /// Lets a waiting `progress_wait` go on.
    pub release: Arc<tokio::sync::Notify>,
    /// Advertise and accept 2026-07-28 only (see [`serve_modern`]).
    pub modern_only: bool,
    /// Open `subscriptions/listen` streams (2026-07-28), for `changed_all`.
    pub sinks: Arc<std::sync::Mutex<Vec<rmcp::service::SubscriptionSink>>>,
    /// Resource subscriptions: (URI, the subscribed session's peer).
    pub subscribers: Arc<std::sync::Mutex<Vec<Subscription>>>,
    /// More tools to list (names; they answer like `echo`).
    pub extra_tools: Vec<String>,
}

impl ServerHandler for ToolsServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_tool_list_changed()
                .enable_prompts()
                .enable_resources()
                .enable_resources_subscribe()
                .build(),
        )
    }

    fn supported_protocol_versions(&self) -> std::borrow::Cow<'static, [rmcp::model::ProtocolVersion]> {
        if self.modern_only {
            std::borrow::Cow::Owned(vec![rmcp::model::ProtocolVersion::V_2026_07_28])
        } else {
            std::borrow::Cow::Borrowed(rmcp::model::ProtocolVersion::KNOWN_VERSIONS)
        }
    }

    async fn on_initialized(&self, context: rmcp::service::NotificationContext<RoleServer>) {
        self.peers.lock().unwrap().push(context.peer);
    }

    async fn list_tools(
        &self,
        _: Option<PaginatedRequestParams>,
        _: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let tools = [
            ("echo", "Echoes text"),
            ("add", "Adds a and b"),
            ("fail", "Always fails (tool error)"),
            ("explode", "Always fails (protocol error)"),
            ("search_code", "Searches"),
            ("delete_repo", "Deletes a repository"),
            ("progress", "Reports progress, then answers"),
            ("changed", "Announces a tool list change"),
            ("sample", "Asks the client's model (sampling), answers with its text"),
            ("changed_all", "Announces a tool list change to every session"),
            ("wait", "Waits until cancelled (or 30 s)"),
            ("progress_wait", "Progress, waits to be released, progress, answers"),
            ("touch", "Announces an update of the resource `text` to its subscribers"),
        ];
        let extra = self.extra_tools.iter().map(|n| tool(n, "An extra tool"));
        Ok(serde_json::from_value(
            json!({"tools": tools.iter().map(|(n, d)| tool(n, d)).chain(extra).collect::<Vec<_>>()}),
        )
        .unwrap())
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let args: Value = request.arguments.clone().map(Value::Object).unwrap_or(json!({}));
        match request.name.as_ref() {
            "echo" => Ok(text(args.get("text").and_then(Value::as_str).unwrap_or_default())),
            "add" => {
                let a = args.get("a").and_then(Value::as_f64).unwrap_or(0.0);
                let b = args.get("b").and_then(Value::as_f64).unwrap_or(0.0);
                Ok(text(format!("{}", a + b)))
            }
            "fail" => Ok(CallToolResult::error(vec![ContentBlock::text("it failed, as asked")]).into()),
            "explode" => Err(ErrorData::internal_error("exploded", None)),
            "search_code" => Ok(text("found 3 results")),
            "delete_repo" => Ok(text("deleted")),
            "progress" => {
                if let Some(token) = context.meta.get_progress_token() {
                    for i in 1..=2 {
                        let _ = context
                            .peer
                            .notify_progress(
                                ProgressNotificationParam::new(token.clone(), f64::from(i)).with_total(2.0),
                            )
                            .await;
                    }
                }
                Ok(text("progressed"))
            }
            "progress_wait" => {
                let token = context.meta.get_progress_token();
                let progress = |i: u32| {
                    let (peer, token) = (context.peer.clone(), token.clone());
                    async move {
                        if let Some(t) = token {
                            let p = ProgressNotificationParam::new(t, f64::from(i)).with_total(2.0);
                            let _ = peer.notify_progress(p).await;
                        }
                    }
                };
                progress(1).await;
                let _ =
                    tokio::time::timeout(std::time::Duration::from_secs(30), self.release.notified()).await;
                progress(2).await;
                Ok(text("resumed"))
            }
            "touch" => {
                let uri = args.get("text").and_then(Value::as_str).unwrap_or_default().to_string();
                let peers: Vec<_> = self
                    .subscribers
                    .lock()
                    .unwrap()
                    .iter()
                    .filter(|(u, _)| *u == uri)
                    .map(|(_, p)| p.clone())
                    .collect();
                for p in &peers {
                    let _ = p
                        .notify_resource_updated(rmcp::model::ResourceUpdatedNotificationParam::new(
                            uri.clone(),
                        ))
                        .await;
                }
                Ok(text(format!("touched {} subscribers", peers.len())))
            }
            "changed" => {
                let peer = context.peer.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                    let _ = peer.notify_tool_list_changed().await;
                });
                Ok(text("will change"))
            }
            "wait" => {
                tokio::select! {
                    _ = context.ct.cancelled() => {
                        self.cancelled.fetch_add(1, Ordering::SeqCst);
                        Err(ErrorData::internal_error("cancelled", None))
                    }
                    _ = tokio::time::sleep(std::time::Duration::from_secs(30)) => Ok(text("waited")),
                }
            }
            "changed_all" => {
                let peers = self.peers.lock().unwrap().clone();
                for p in peers {
                    let _ = p.notify_tool_list_changed().await;
                }
                let sinks = self.sinks.lock().unwrap().clone();
                for s in sinks {
                    let _ = s.notify_tool_list_changed().await;
                }
                Ok(text("announced"))
            }
            // Sampling is deprecated in 2026-07-28 but still part of the session era, which the
            // gateway relays.
            #[allow(deprecated)]
            "sample" => {
                let params: rmcp::model::CreateMessageRequestParams = serde_json::from_value(json!({
                    "messages": [{"role": "user", "content": {"type": "text", "text": "say something"}}],
                    "maxTokens": 10
                }))
                .unwrap();
                let r = context
                    .peer
                    .create_message(params)
                    .await
                    .map_err(|e| ErrorData::internal_error(format!("sampling failed: {e}"), None))?;
                let v = serde_json::to_value(&r).unwrap();
                Ok(text(format!("sampled: {}", v["content"]["text"].as_str().unwrap_or_default())))
            }
            other => Err(ErrorData::invalid_params(format!("no tool {other}"), None)),
        }
    }

    fn accepted_subscription_filter(
        &self,
        requested: &rmcp::model::SubscriptionFilter,
    ) -> Option<rmcp::model::SubscriptionFilter> {
        Some(requested.clone())
    }

    async fn listen(&self, context: rmcp::service::SubscriptionContext) -> Result<(), ErrorData> {
        self.sinks.lock().unwrap().push(context.sink().clone());
        context.cancelled().await;
        Ok(())
    }

    async fn subscribe(
        &self,
        request: rmcp::model::SubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        if request.uri != "file:///readme.txt" {
            return Err(ErrorData::resource_not_found(format!("no resource {}", request.uri), None));
        }
        self.subscribers.lock().unwrap().push((request.uri, context.peer));
        Ok(())
    }

    async fn unsubscribe(
        &self,
        request: rmcp::model::UnsubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        let _ = context;
        self.subscribers.lock().unwrap().retain(|(u, _)| *u != request.uri);
        Ok(())
    }

    async fn list_prompts(
        &self,
        _: Option<PaginatedRequestParams>,
        _: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        Ok(serde_json::from_value(json!({"prompts": [{"name": "greet", "description": "Greets", "arguments": [{"name": "who", "required": true}]}]})).unwrap())
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        _: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        if request.name != "greet" {
            return Err(ErrorData::invalid_params(format!("no prompt {}", request.name), None));
        }
        let who = request
            .arguments
            .as_ref()
            .and_then(|a| a.get("who"))
            .and_then(Value::as_str)
            .unwrap_or("you")
            .to_string();
        let r: GetPromptResult = serde_json::from_value(json!({
            "description": "A greeting",
            "messages": [{"role": "user", "content": {"type": "text", "text": format!("Hello, {who}!")}}]
        }))
        .unwrap();
        Ok(r.into())
    }

    async fn list_resources(
        &self,
        _: Option<PaginatedRequestParams>,
        _: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        Ok(serde_json::from_value(
            json!({"resources": [{"uri": "file:///readme.txt", "name": "readme", "mimeType": "text/plain"}]}),
        )
        .unwrap())
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        if request.uri != "file:///readme.txt" {
            return Err(ErrorData::resource_not_found(format!("no resource {}", request.uri), None));
        }
        let r: ReadResourceResult = serde_json::from_value(json!({
            "contents": [{"uri": "file:///readme.txt", "mimeType": "text/plain", "text": "read me"}]
        }))
        .unwrap();
        Ok(r.into())
    }
}

/// 25 tools, 10 per page.
#[derive(Clone, Default)]
pub struct PagedServer;

impl ServerHandler for PagedServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }

    async fn list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        _: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let start: usize = request.and_then(|r| r.cursor).and_then(|c| c.parse().ok()).unwrap_or(0);
        let end = (start + 10).min(25);
        let tools: Vec<_> = (start..end).map(|i| tool(&format!("t{i:02}"), "paged")).collect();
        let mut v = json!({"tools": tools});
        if end < 25 {
            v["nextCursor"] = end.to_string().into();
        }
        Ok(serde_json::from_value(v).unwrap())
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        Ok(text(format!("paged {}", request.name)))
    }
}

/// A server whose one tool, `elicit_now`, sends an elicitation request to the client the instant
/// it starts, on the session's standalone stream (from a task of its own, so rmcp does not tie
/// the request to the call's stream), and answers `elicited: <action> <content>` with the
/// client's answer.
#[derive(Clone, Default)]
pub struct ElicitServer;

impl ServerHandler for ElicitServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }

    async fn list_tools(
        &self,
        _: Option<PaginatedRequestParams>,
        _: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let tools =
            [tool("elicit_now", "Asks the user (elicitation, standalone stream), answers with the reply")];
        Ok(serde_json::from_value(json!({ "tools": tools })).unwrap())
    }

    async fn call_tool(
        &self,
        _: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let params: rmcp::model::ElicitRequestParams = serde_json::from_value(json!({
            "mode": "form",
            "message": "Go on?",
            "requestedSchema": {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
        }))
        .unwrap();
        let peer = context.peer.clone();
        let answer = tokio::spawn(async move { peer.create_elicitation(params).await })
            .await
            .map_err(|e| ErrorData::internal_error(format!("elicitation task failed: {e}"), None))?
            .map_err(|e| ErrorData::internal_error(format!("elicitation failed: {e}"), None))?;
        let v = serde_json::to_value(&answer).unwrap();
        Ok(text(format!("elicited: {} {}", v["action"].as_str().unwrap_or_default(), v["content"])))
    }
}

/// A server offering exactly the tools it is given, each answering `named <tool>` (for names
/// that collide with another server's prefixed ones).
#[derive(Clone, Default)]
pub struct NamedToolsServer(pub Vec<&'static str>);

impl ServerHandler for NamedToolsServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }

    async fn list_tools(
        &self,
        _: Option<PaginatedRequestParams>,
        _: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let tools: Vec<_> = self.0.iter().map(|n| tool(n, "named")).collect();
        Ok(serde_json::from_value(json!({ "tools": tools })).unwrap())
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        Ok(text(format!("named {}", request.name)))
    }
}
