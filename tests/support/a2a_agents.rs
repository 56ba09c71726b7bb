//! Rust A2A test agents for the agent gateway's tests: a small axum server that follows the A2A
//! spec closely enough for the gateway and the official Python SDK (1.0 JSON-RPC and REST
//! bindings, the 0.3 JSON-RPC names with 0.3 shapes, SSE streams, a signed card with `ETag`).
//!
//! (`a2a-server-lf` was not used: the tests need to hold a stream between two events, break a
//! stream on purpose, serve invalid or oversized cards and record every request's headers, which
//! its executor abstraction hides; and it would add its protobuf/gRPC stack to the build.)
//!
//! What the echo agent does with a message's first text part:
//! * `wait…`: the task stays `TASK_STATE_WORKING` (to be cancelled or subscribed to);
//! * `step…` (streams): each event after the first waits for a [`TestAgent::release`];
//! * `break…` (streams): one event, then, after a [`TestAgent::release`], the connection is cut
//!   mid-stream;
//! * anything else: the task completes with an artifact `echo: <text>`.

#![allow(dead_code)]

use axum::body::Body;
use axum::http::{HeaderMap, Request, Response, StatusCode};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{Semaphore, mpsc};

/// What the card endpoint answers.
#[derive(Clone, Debug, PartialEq)]
pub enum CardMode {
    /// The signed card, with `ETag`.
    Normal,
    /// A body that is not JSON.
    Invalid,
    /// A JSON body larger than the gateway's cap.
    Huge,
    /// This HTTP status.
    Status(u16),
}

/// A request the agent received.
#[derive(Clone, Debug)]
pub struct Seen {
    /// Method.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Headers.
    pub headers: HeaderMap,
}

/// The agent's state.
pub struct AgentState {
    /// Base URL.
    pub url: String,
    tasks: Mutex<BTreeMap<String, Value>>,
    push: Mutex<BTreeMap<String, Vec<Value>>>,
    counter: AtomicU64,
    /// Every request, in order.
    pub seen: Mutex<Vec<Seen>>,
    /// Card requests answered 200.
    pub card_full: AtomicUsize,
    /// Card requests answered 304.
    pub card_not_modified: AtomicUsize,
    /// Card version (changes the ETag).
    pub card_version: AtomicU64,
    /// Card mode.
    pub card_mode: Mutex<CardMode>,
    steps: Semaphore,
    key: ring::signature::EcdsaKeyPair,
}

/// A running test agent.
pub struct TestAgent {
    /// Base URL (`http://127.0.0.1:PORT`).
    pub url: String,
    /// State.
    pub state: Arc<AgentState>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestAgent {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestAgent {
    /// Starts the echo agent on a free port.
    pub async fn start() -> TestAgent {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = ring::signature::EcdsaKeyPair::generate_pkcs8(
            &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &rng,
        )
        .expect("key");
        let key = ring::signature::EcdsaKeyPair::from_pkcs8(
            &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            pkcs8.as_ref(),
            &rng,
        )
        .expect("key");
        let state = Arc::new(AgentState {
            url: url.clone(),
            tasks: Mutex::default(),
            push: Mutex::default(),
            counter: AtomicU64::new(0),
            seen: Mutex::default(),
            card_full: AtomicUsize::new(0),
            card_not_modified: AtomicUsize::new(0),
            card_version: AtomicU64::new(1),
            card_mode: Mutex::new(CardMode::Normal),
            steps: Semaphore::new(0),
            key,
        });
        let s = state.clone();
        let app = axum::Router::new().fallback(move |req: Request<Body>| {
            let s = s.clone();
            async move { dispatch(s, req).await }
        });
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        TestAgent { url, state, task }
    }

    /// Lets a `step` stream send its next event.
    pub fn release(&self, n: usize) {
        self.state.steps.add_permits(n);
    }

    /// The requests seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().unwrap().clone()
    }

    /// The last JSON-RPC or REST call (not a card fetch).
    pub fn last_call(&self) -> Seen {
        self.seen().into_iter().rev().find(|s| !s.path.contains("agent-card")).expect("a call")
    }

    /// The task as the agent holds it.
    pub fn task(&self, id: &str) -> Option<Value> {
        self.state.tasks.lock().unwrap().get(id).cloned()
    }

    /// The card as the agent publishes it (unsigned part and signature).
    pub fn card(&self) -> Value {
        card(&self.state)
    }
}

fn card(s: &AgentState) -> Value {
    let mut c = json!({
        "name": "echo",
        "description": "Echoes what it is sent",
        "version": format!("1.0.{}", s.card_version.load(Ordering::SeqCst)),
        "supportedInterfaces": [
            {"url": format!("{}/", s.url), "protocolBinding": "JSONRPC", "protocolVersion": "1.0"},
            {"url": s.url, "protocolBinding": "HTTP+JSON", "protocolVersion": "1.0"},
            {"url": "127.0.0.1:1", "protocolBinding": "GRPC", "protocolVersion": "1.0"}
        ],
        "provider": {"organization": "Cairn tests", "url": "https://cairn.dev"},
        "capabilities": {"streaming": true, "pushNotifications": true, "extendedAgentCard": true},
        "securitySchemes": {"agentKey": {"apiKeySecurityScheme": {"location": "header", "name": "x-agent-key"}}},
        "securityRequirements": [{"schemes": {"agentKey": {"list": []}}}],
        "defaultInputModes": ["text/plain"],
        "defaultOutputModes": ["text/plain"],
        "skills": [
            {"id": "echo", "name": "Echo", "description": "Echoes text", "tags": ["test"]},
            {"id": "refund", "name": "Refund lookup", "description": "Looks up a refund", "tags": ["billing"],
             "securityRequirements": [{"schemes": {"agentKey": {"list": []}}}]}
        ]
    });
    let protected =
        URL_SAFE_NO_PAD.encode(json!({"alg": "ES256", "typ": "JOSE", "kid": "echo-agent"}).to_string());
    let payload = URL_SAFE_NO_PAD.encode(c.to_string());
    let sig = s
        .key
        .sign(&ring::rand::SystemRandom::new(), format!("{protected}.{payload}").as_bytes())
        .expect("sign");
    c["signatures"] = json!([{"protected": protected, "signature": URL_SAFE_NO_PAD.encode(sig.as_ref())}]);
    c
}

fn json_resp(status: StatusCode, v: &Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::from(v.to_string()))
        .expect("response")
}

async fn dispatch(s: Arc<AgentState>, req: Request<Body>) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path_and_query().map(|p| p.to_string()).unwrap_or_default();
    s.seen.lock().unwrap().push(Seen {
        method: parts.method.to_string(),
        path: path.clone(),
        headers: parts.headers.clone(),
    });
    let bytes = body.collect().await.map(|c| c.to_bytes()).unwrap_or_default();
    let p = parts.uri.path().to_string();
    if p == "/.well-known/agent-card.json" {
        return serve_card(&s, &parts.headers);
    }
    if parts.method == "POST" && p == "/" {
        return jsonrpc(&s, &bytes).await;
    }
    rest(&s, parts.method.as_str(), &p, &bytes).await
}

fn serve_card(s: &AgentState, headers: &HeaderMap) -> Response<Body> {
    let mode = s.card_mode.lock().unwrap().clone();
    match mode {
        CardMode::Invalid => {
            return Response::builder()
                .header("content-type", "application/json")
                .body(Body::from("{\"name\": "))
                .unwrap();
        }
        CardMode::Huge => {
            let big = "x".repeat(2 << 20);
            return json_resp(StatusCode::OK, &json!({"name": "echo", "description": big}));
        }
        CardMode::Status(code) => return json_resp(StatusCode::from_u16(code).unwrap(), &json!({})),
        CardMode::Normal => {}
    }
    let etag = format!("\"v{}\"", s.card_version.load(Ordering::SeqCst));
    if headers.get("if-none-match").and_then(|v| v.to_str().ok()) == Some(etag.as_str()) {
        s.card_not_modified.fetch_add(1, Ordering::SeqCst);
        return Response::builder()
            .status(304)
            .header("etag", etag)
            .header("cache-control", "no-cache")
            .body(Body::empty())
            .unwrap();
    }
    s.card_full.fetch_add(1, Ordering::SeqCst);
    let mut r = json_resp(StatusCode::OK, &card(s));
    r.headers_mut().insert("etag", etag.parse().unwrap());
    r.headers_mut().insert("cache-control", "no-cache".parse().unwrap());
    r
}

fn text_of(params: &Value) -> String {
    params
        .pointer("/message/parts")
        .and_then(Value::as_array)
        .and_then(|ps| ps.iter().find_map(|p| p.get("text").and_then(Value::as_str)))
        .unwrap_or_default()
        .to_string()
}

fn agent_message(text: &str, task: &str, ctx: &str) -> Value {
    json!({"messageId": format!("m-{task}"), "role": "ROLE_AGENT", "taskId": task, "contextId": ctx, "parts": [{"text": text}]})
}

fn status(state: &str) -> Value {
    json!({"state": state})
}

/// Creates (or continues) a task for a message; returns it.
fn create_task(s: &AgentState, params: &Value) -> Value {
    let text = text_of(params);
    if let Some(id) = params.pointer("/message/taskId").and_then(Value::as_str)
        && let Some(t) = s.tasks.lock().unwrap().get_mut(id)
    {
        if let Some(h) = t["history"].as_array_mut() {
            h.push(params["message"].clone());
        }
        t["status"] = status("TASK_STATE_COMPLETED");
        return t.clone();
    }
    let n = s.counter.fetch_add(1, Ordering::SeqCst) + 1;
    let id = format!("task-{n}");
    let ctx = params
        .pointer("/message/contextId")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or(format!("ctx-{n}"));
    let waiting = text.starts_with("wait") || text.starts_with("step") || text.starts_with("break");
    let mut t = json!({
        "id": id,
        "contextId": ctx,
        "status": status(if waiting { "TASK_STATE_WORKING" } else { "TASK_STATE_COMPLETED" }),
        "history": [params["message"].clone()],
    });
    if !waiting {
        t["artifacts"] = json!([{"artifactId": format!("a-{n}"), "name": "echo", "parts": [{"text": format!("echo: {text}")}]}]);
    }
    s.tasks.lock().unwrap().insert(id, t.clone());
    t
}

/// 1.0 → 0.3 shapes.
fn state_v03(state: &str) -> String {
    state.trim_start_matches("TASK_STATE_").to_ascii_lowercase().replace('_', "-")
}

fn parts_v03(parts: &Value) -> Value {
    Value::Array(
        parts
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .map(|p| json!({"kind": "text", "text": p.get("text").cloned().unwrap_or(json!(""))}))
            .collect(),
    )
}

fn task_v03(t: &Value) -> Value {
    let mut o = json!({
        "kind": "task",
        "id": t["id"],
        "contextId": t["contextId"],
        "status": {"state": state_v03(t["status"]["state"].as_str().unwrap_or(""))},
    });
    if let Some(a) = t.get("artifacts").and_then(Value::as_array) {
        o["artifacts"] = Value::Array(
            a.iter().map(|a| json!({"artifactId": a["artifactId"], "name": a["name"], "parts": parts_v03(&a["parts"])})).collect(),
        );
    }
    o
}

fn rpc_ok(id: &Value, result: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "result": result})
}

fn rpc_err(id: &Value, code: i64, message: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})
}

/// The stream of events for a new task (or a subscription), as `StreamResponse`s (1.0) or 0.3 results.
fn stream_events(task: &Value, v03: bool, subscribe: bool) -> Vec<Value> {
    let (id, ctx) = (task["id"].clone(), task["contextId"].clone());
    let text = text_of(&json!({"message": task["history"][0]}));
    let working = json!({"state": "TASK_STATE_WORKING", "message": agent_message("working", id.as_str().unwrap_or(""), ctx.as_str().unwrap_or(""))});
    let artifact =
        json!({"artifactId": "a-stream", "name": "echo", "parts": [{"text": format!("echo: {text}")}]});
    let mut first = task.clone();
    first["status"] = json!({"state": "TASK_STATE_WORKING"});
    if v03 {
        let mut out = vec![task_v03(&first)];
        if !subscribe {
            out.push(json!({"kind": "status-update", "taskId": id, "contextId": ctx, "status": {"state": "working"}, "final": false}));
            out.push(json!({"kind": "artifact-update", "taskId": id, "contextId": ctx,
                "artifact": {"artifactId": "a-stream", "parts": parts_v03(&artifact["parts"])}, "lastChunk": true}));
        }
        out.push(json!({"kind": "status-update", "taskId": id, "contextId": ctx, "status": {"state": "completed"}, "final": true}));
        return out;
    }
    let mut out = vec![json!({"task": first})];
    if !subscribe {
        out.push(json!({"statusUpdate": {"taskId": id, "contextId": ctx, "status": working}}));
        out.push(json!({"artifactUpdate": {"taskId": id, "contextId": ctx, "artifact": artifact, "lastChunk": true}}));
    }
    out.push(json!({"statusUpdate": {"taskId": id, "contextId": ctx, "status": {"state": "TASK_STATE_COMPLETED"}}}));
    out
}

/// An SSE response whose events are sent by a task; `step` gates each event after the first on
/// a permit; `broken` cuts the connection after the first event.
fn sse(
    s: &Arc<AgentState>,
    events: Vec<Value>,
    wrap: Option<Value>,
    step: bool,
    broken: bool,
    task_id: String,
) -> Response<Body> {
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(16);
    let s = s.clone();
    tokio::spawn(async move {
        let n = events.len();
        for (i, e) in events.into_iter().enumerate() {
            if i > 0 && step {
                match s.steps.acquire().await {
                    Ok(p) => p.forget(),
                    Err(_) => return,
                }
            }
            let payload = match &wrap {
                Some(id) => rpc_ok(id, e),
                None => e,
            };
            if tx.send(Ok(Bytes::from(format!("data: {payload}\n\n")))).await.is_err() {
                return;
            }
            if broken {
                // Cut the connection only once the test has seen the first event.
                if let Ok(p) = s.steps.acquire().await {
                    p.forget();
                }
                let _ = tx.send(Err(std::io::Error::other("agent crashed"))).await;
                return;
            }
            if i + 1 == n
                && let Some(t) = s.tasks.lock().unwrap().get_mut(&task_id)
            {
                t["status"] = json!({"state": "TASK_STATE_COMPLETED"});
            }
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|x| (x, rx)) });
    Response::builder()
        .header("content-type", "text/event-stream")
        .header("cache-control", "no-cache")
        .body(Body::from_stream(stream))
        .unwrap()
}

async fn jsonrpc(s: &Arc<AgentState>, bytes: &[u8]) -> Response<Body> {
    let Ok(req) = serde_json::from_slice::<Value>(bytes) else {
        return json_resp(StatusCode::OK, &rpc_err(&Value::Null, -32700, "parse error"));
    };
    let id = req["id"].clone();
    let method = req["method"].as_str().unwrap_or_default().to_string();
    let params = req.get("params").cloned().unwrap_or(json!({}));
    let v03 = method.contains('/');
    let task_param = |k: &str| params.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
    let answer = match method.as_str() {
        "SendMessage" | "message/send" => {
            let t = create_task(s, &params);
            if v03 { task_v03(&t) } else { json!({"task": t}) }
        }
        "SendStreamingMessage" | "message/stream" => {
            let t = create_task(s, &params);
            let text = text_of(&params);
            let events = stream_events(&t, v03, false);
            let tid = t["id"].as_str().unwrap_or_default().to_string();
            return sse(s, events, Some(id), text.starts_with("step"), text.starts_with("break"), tid);
        }
        "GetTask" | "tasks/get" => match s.tasks.lock().unwrap().get(&task_param("id")) {
            Some(t) if v03 => task_v03(t),
            Some(t) => t.clone(),
            None => return json_resp(StatusCode::OK, &rpc_err(&id, -32001, "task not found")),
        },
        "ListTasks" | "tasks/list" => {
            let tasks: Vec<Value> = s.tasks.lock().unwrap().values().cloned().collect();
            json!({"tasks": tasks, "nextPageToken": "", "pageSize": 50, "totalSize": tasks.len()})
        }
        "CancelTask" | "tasks/cancel" => {
            let mut tasks = s.tasks.lock().unwrap();
            match tasks.get_mut(&task_param("id")) {
                Some(t) if t["status"]["state"] == "TASK_STATE_WORKING" => {
                    t["status"] = json!({"state": "TASK_STATE_CANCELED"});
                    if v03 { task_v03(t) } else { t.clone() }
                }
                Some(_) => {
                    return json_resp(StatusCode::OK, &rpc_err(&id, -32002, "task cannot be canceled"));
                }
                None => return json_resp(StatusCode::OK, &rpc_err(&id, -32001, "task not found")),
            }
        }
        "SubscribeToTask" | "tasks/resubscribe" => {
            let t = s.tasks.lock().unwrap().get(&task_param("id")).cloned();
            let Some(t) = t else {
                return json_resp(StatusCode::OK, &rpc_err(&id, -32001, "task not found"));
            };
            let tid = t["id"].as_str().unwrap_or_default().to_string();
            return sse(s, stream_events(&t, v03, true), Some(id), false, false, tid);
        }
        "CreateTaskPushNotificationConfig" | "tasks/pushNotificationConfig/set" => {
            let task = params.get("taskId").and_then(Value::as_str).unwrap_or_default().to_string();
            let mut cfg = params.clone();
            cfg["id"] = json!("cfg-1");
            s.push.lock().unwrap().entry(task).or_default().push(cfg.clone());
            cfg
        }
        "GetTaskPushNotificationConfig" | "tasks/pushNotificationConfig/get" => {
            let task = params
                .get("taskId")
                .or(params.get("id"))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            s.push.lock().unwrap().get(&task).and_then(|v| v.first().cloned()).unwrap_or(json!({}))
        }
        "ListTaskPushNotificationConfigs" | "tasks/pushNotificationConfig/list" => {
            let task = params
                .get("taskId")
                .or(params.get("id"))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            json!({"configs": s.push.lock().unwrap().get(&task).cloned().unwrap_or_default()})
        }
        "DeleteTaskPushNotificationConfig" | "tasks/pushNotificationConfig/delete" => json!({}),
        "GetExtendedAgentCard" | "agent/getAuthenticatedExtendedCard" => {
            let mut c = card(s);
            if let Some(a) = c["skills"].as_array_mut() {
                a.push(json!({"id": "secret", "name": "Secret", "description": "", "tags": []}));
            }
            c
        }
        other => {
            return json_resp(StatusCode::OK, &rpc_err(&id, -32601, &format!("method not found: {other}")));
        }
    };
    json_resp(StatusCode::OK, &rpc_ok(&id, answer))
}

fn rest_err(status: StatusCode, message: &str) -> Response<Body> {
    json_resp(status, &json!({"error": {"code": status.as_u16(), "status": "NOT_FOUND", "message": message}}))
}

async fn rest(s: &Arc<AgentState>, method: &str, path: &str, bytes: &[u8]) -> Response<Body> {
    let params: Value = serde_json::from_slice(bytes).unwrap_or(json!({}));
    // One tenant, `acme`, served under `/acme/…` as under `/…`.
    let path = path.strip_prefix("/acme").filter(|p| p.starts_with('/')).unwrap_or(path);
    match (method, path) {
        ("POST", "/message:send") => {
            return json_resp(StatusCode::OK, &json!({"task": create_task(s, &params)}));
        }
        ("POST", "/message:stream") => {
            let t = create_task(s, &params);
            let text = text_of(&params);
            let tid = t["id"].as_str().unwrap_or_default().to_string();
            return sse(
                s,
                stream_events(&t, false, false),
                None,
                text.starts_with("step"),
                text.starts_with("break"),
                tid,
            );
        }
        ("GET", "/tasks") => {
            let tasks: Vec<Value> = s.tasks.lock().unwrap().values().cloned().collect();
            return json_resp(
                StatusCode::OK,
                &json!({"tasks": tasks, "nextPageToken": "", "pageSize": 50, "totalSize": tasks.len()}),
            );
        }
        _ => {}
    }
    let Some(rest) = path.strip_prefix("/tasks/") else { return rest_err(StatusCode::NOT_FOUND, "no route") };
    if let Some(id) = rest.strip_suffix(":cancel") {
        let mut tasks = s.tasks.lock().unwrap();
        return match tasks.get_mut(id) {
            Some(t) => {
                t["status"] = json!({"state": "TASK_STATE_CANCELED"});
                json_resp(StatusCode::OK, t)
            }
            None => rest_err(StatusCode::NOT_FOUND, "task not found"),
        };
    }
    if let Some(id) = rest.strip_suffix(":subscribe") {
        let t = s.tasks.lock().unwrap().get(id).cloned();
        return match t {
            Some(t) => sse(s, stream_events(&t, false, true), None, false, false, id.to_string()),
            None => rest_err(StatusCode::NOT_FOUND, "task not found"),
        };
    }
    if let Some((id, _)) = rest.split_once("/pushNotificationConfigs") {
        let mut cfg = params.clone();
        cfg["id"] = json!("cfg-1");
        cfg["taskId"] = json!(id);
        return json_resp(StatusCode::OK, &cfg);
    }
    match s.tasks.lock().unwrap().get(rest) {
        Some(t) if method == "GET" => json_resp(StatusCode::OK, t),
        _ => rest_err(StatusCode::NOT_FOUND, "task not found"),
    }
}
