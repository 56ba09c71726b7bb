//! The MCP methods, answered over the gateway's backends: `initialize` and `server/discover`
//! fanned out; lists merged with prefixes; calls routed to the owning server.
//!
//! **Names.** Tools and prompts appear as `prefix__name` ([`TOOL_SEPARATOR`]); resource URIs as
//! `prefix+uri` (a URI scheme may contain `+`, so the rewritten URI is still a URI). A server
//! with an empty prefix (at most one per gateway) keeps its names and URIs unchanged; a name of
//! it that reads as another server's prefixed name (`gh__x` when a server has prefix `gh`) would
//! route there, so it is left out of lists with a warning rather than shadowed silently. Lists
//! are in server prefix order (the unprefixed server first), then in each backend's own order,
//! every backend page followed; the gateway answers with one page.
//!
//! **Policy.** A server's allow/deny globs apply to everyone; `PolicyIndex::check_tool` applies
//! per caller, in lists (tools the caller may not use never appear) and again on every call. A
//! caller sees a server's prompts and resources when it may use some tool of that server (or the
//! default action allows everything).
//!
//! **Failures.** A backend that fails (down, slow, garbage) is left out of lists and counted in
//! `cairn_mcp_backend_errors_total`; a call to it gets a JSON-RPC error.
//!
//! Files: [`super::ctx`] (a request's context), [`super::fanout`] (initialize, pooled sessions),
//! [`super::lists`] (merged lists), [`super::call`] (`tools/call`); this file routes a request to
//! its method and relays prompts, resources, completions, and the client's notifications and
//! responses.

use super::names::{client_uri, parse_relayed_id, rewrite_from_backend};
use super::protocol::{self, Era, META_SERVER_INFO, STATELESS_VERSION};
use super::replies::Replies;
use super::upstream::Outgoing;
use crate::gateway::jsonrpc::{
    INTERNAL_ERROR, INVALID_PARAMS, METHOD_NOT_FOUND, Message, Notification, RESOURCE_NOT_FOUND, Request,
    Response, RpcError,
};
use crate::policy::client_tool_name;
use futures_util::future::join_all;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::ctx::{Ctx, Outcome, ToolCallIn, err, ready};
use super::fanout::{internal_id, merge_init, server_info};
use super::lists::reachable;

impl Ctx {
    /// Answers one request.
    pub async fn handle(&self, req: Request) -> Outcome {
        match req.method.as_str() {
            "ping" => Outcome::Done(req.reply(json!({}))),
            "server/discover" => self.discover(&req).await,
            "tools/list" => {
                let cursor = match self.list_cursor(&req) {
                    Ok(c) => c,
                    Err(o) => return o,
                };
                let subject = self.subject.clone();
                let rt = self.rt.clone();
                let items = self
                    .merged(
                        "tools/list",
                        "tools",
                        |_| true,
                        |i, mut t| {
                            let name = t.get("name")?.as_str()?.to_string();
                            let server = &rt.servers[i];
                            if !rt.server_exposes(i, &name)
                                || !rt.policy.check_tool(&subject, &server.name, &name).is_allowed()
                                || !reachable(&rt, i, &name, false)
                            {
                                return None;
                            }
                            t["name"] = client_tool_name(&server.prefix, &name).into();
                            Some(t)
                        },
                    )
                    .await;
                Outcome::Done(req.reply(self.list_page(&req, "tools", "name", items, cursor)))
            }
            "prompts/list" => {
                let cursor = match self.list_cursor(&req) {
                    Ok(c) => c,
                    Err(o) => return o,
                };
                let rt = self.rt.clone();
                let items = self
                    .merged(
                        "prompts/list",
                        "prompts",
                        |i| rt.server_visible(&self.subject, i),
                        |i, mut p| {
                            let name = p.get("name")?.as_str()?.to_string();
                            if !reachable(&rt, i, &name, false) {
                                return None;
                            }
                            p["name"] = client_tool_name(&rt.servers[i].prefix, &name).into();
                            Some(p)
                        },
                    )
                    .await;
                Outcome::Done(req.reply(self.list_page(&req, "prompts", "name", items, cursor)))
            }
            "resources/list" | "resources/templates/list" => {
                let (key, field) = if req.method == "resources/list" {
                    ("resources", "uri")
                } else {
                    ("resourceTemplates", "uriTemplate")
                };
                let cursor = match self.list_cursor(&req) {
                    Ok(c) => c,
                    Err(o) => return o,
                };
                let rt = self.rt.clone();
                let items = self
                    .merged(
                        &req.method,
                        key,
                        |i| rt.server_visible(&self.subject, i),
                        |i, mut r| {
                            let uri = r.get(field)?.as_str()?.to_string();
                            if !reachable(&rt, i, &uri, true) {
                                return None;
                            }
                            r[field] = client_uri(&rt.servers[i].prefix, &uri).into();
                            Some(r)
                        },
                    )
                    .await;
                Outcome::Done(req.reply(self.list_page(&req, key, field, items, cursor)))
            }
            "tools/call" => self.call_tool(ToolCallIn::Request(req)).await,
            "prompts/get" => self.get_prompt(req).await,
            "resources/read" | "resources/subscribe" | "resources/unsubscribe" => self.resource(req).await,
            "completion/complete" => self.complete(req).await,
            "logging/setLevel" => {
                let futs = (0..self.rt.upstreams.len())
                    .filter(|i| self.backends.contains_key(&self.rt.upstreams[*i].prefix))
                    .map(|i| {
                        let r = Request::new(internal_id(), "logging/setLevel", req.params.clone());
                        async move { self.call(i, r).await }
                    });
                join_all(futs).await;
                Outcome::Done(req.reply(json!({})))
            }
            "initialize" => {
                err(&req, crate::gateway::jsonrpc::INVALID_REQUEST, "the session is already initialized")
            }
            m => err(&req, METHOD_NOT_FOUND, format!("Method not found: {m}")),
        }
    }

    async fn discover(&self, req: &Request) -> Outcome {
        // Capabilities come from the pooled sessions' backends; every backend speaks the session
        // era to the gateway, which translates.
        let (caps, _) = merge_init(&[]);
        let mut result = json!({
            "resultType": "complete",
            "supportedVersions": protocol::supported_versions(),
            "capabilities": caps,
            "ttlMs": 0,
            "cacheScope": "private",
            "_meta": { META_SERVER_INFO: server_info() },
        });
        if self.era == Era::Session {
            result["supportedVersions"] = json!([STATELESS_VERSION]);
        }
        Outcome::Done(req.reply(result))
    }

    async fn get_prompt(&self, req: Request) -> Outcome {
        let Some(name) = req.param_str("name").map(str::to_string) else {
            return err(&req, INVALID_PARAMS, "prompts/get needs params.name");
        };
        let Some((i, prompt)) = self.rt.route_name(&name) else {
            return err(&req, INVALID_PARAMS, format!("Unknown prompt: {name}"));
        };
        if !self.rt.server_visible(&self.subject, i) {
            return err(&req, INVALID_PARAMS, format!("Unknown prompt: {name}"));
        }
        let mut params = req.params.clone().unwrap_or_else(|| json!({}));
        params["name"] = prompt.into();
        self.relay(i, &req, params).await
    }

    async fn resource(&self, req: Request) -> Outcome {
        let Some(uri) = req.param_str("uri").map(str::to_string) else {
            return err(&req, INVALID_PARAMS, format!("{} needs params.uri", req.method));
        };
        let Some((i, orig)) = self.split_uri(&uri) else {
            return err(&req, RESOURCE_NOT_FOUND, format!("Resource not found: {uri}"));
        };
        let mut params = req.params.clone().unwrap_or_else(|| json!({}));
        params["uri"] = orig.into();
        self.relay(i, &req, params).await
    }

    async fn complete(&self, req: Request) -> Outcome {
        let mut params = req.params.clone().unwrap_or_else(|| json!({}));
        let target = match params.pointer("/ref/type").and_then(Value::as_str) {
            Some("ref/prompt") => params
                .pointer("/ref/name")
                .and_then(Value::as_str)
                .and_then(|n| self.rt.route_name(n))
                .map(|(i, n)| (i, ("name", n.to_string()))),
            Some("ref/resource") => params
                .pointer("/ref/uri")
                .and_then(Value::as_str)
                .and_then(|u| self.split_uri(u))
                .map(|(i, u)| (i, ("uri", u))),
            _ => None,
        };
        let Some((i, (field, value))) = target else {
            return err(&req, INVALID_PARAMS, "completion/complete: unknown ref");
        };
        params["ref"][field] = value.into();
        self.relay(i, &req, params).await
    }

    /// `prefix+uri` (or an unprefixed server's URI) → (server, uri), for servers the caller may
    /// see.
    fn split_uri(&self, uri: &str) -> Option<(usize, String)> {
        let (i, orig) = self.rt.route_uri(uri)?;
        self.rt.server_visible(&self.subject, i).then(|| (i, orig.to_string()))
    }

    /// Forwards and rewrites what comes back.
    async fn relay(&self, i: usize, req: &Request, params: Value) -> Outcome {
        let out = Outgoing::Request(self.outgoing(&req.id, &req.method, params));
        match self.forward(i, &req.id, &req.method, out).await {
            Outcome::Stream(Replies::Ready(messages)) => {
                let (mut out, answered) = ready(&self.rt.servers[i].prefix, messages, |_| ());
                if answered.is_none() {
                    let e = RpcError::new(INTERNAL_ERROR, "MCP server did not answer");
                    out.push_back(Message::Response(Response::error(req.id.clone(), e)));
                }
                Outcome::Stream(Replies::Ready(out))
            }
            Outcome::Stream(Replies::Stream(mut rx)) => {
                let prefix = self.rt.servers[i].prefix.clone();
                let timeout = self.upstream(i).timeout;
                let id = req.id.clone();
                let (tx, out) = mpsc::channel(64);
                tokio::spawn(async move {
                    let r = tokio::time::timeout(timeout, async {
                        while let Some(m) = rx.recv().await {
                            let last = matches!(m, Message::Response(_));
                            if tx.send(rewrite_from_backend(&prefix, m)).await.is_err() || last {
                                return true;
                            }
                        }
                        false
                    })
                    .await;
                    if r != Ok(true) {
                        let e = RpcError::new(INTERNAL_ERROR, "MCP server did not answer");
                        let _ = tx.send(Message::Response(Response::error(id, e))).await;
                    }
                });
                Outcome::Stream(Replies::Stream(out))
            }
            o => o,
        }
    }

    /// A notification from the client: `cancelled` and `roots/list_changed` go to every
    /// backend of the session; others need no backend.
    pub async fn notify(&self, n: Notification) {
        if !matches!(n.method.as_str(), "notifications/cancelled" | "notifications/roots/list_changed") {
            return;
        }
        let futs = self.rt.upstreams.iter().filter_map(|u| {
            let s = self.backends.get(&u.prefix)?;
            let m = Message::Notification(n.clone());
            Some(async move { u.send(s, m).await })
        });
        join_all(futs).await;
    }

    /// A response from the client to a request a backend sent through the gateway: routed back
    /// by its rewritten id.
    pub async fn respond(&self, mut r: Response) {
        let Some((i, id)) =
            r.id.as_str().and_then(parse_relayed_id).and_then(|(p, id)| Some((self.rt.server_index(p)?, id)))
        else {
            return;
        };
        let up = self.upstream(i);
        if let Some(s) = self.backends.get(&up.prefix) {
            r.id = id;
            let _ = up.send(s, Message::Response(r)).await;
        }
    }
}
