//! The MCP gateway (layer 2) end to end over HTTP, with MCP servers built on the official Rust
//! SDK (`rmcp`) as backends, all on loopback in this process.

#[path = "support/mcp_servers.rs"]
mod mcp_servers;
mod support;

use bytes::Bytes;
use cairn::config::CompiledGateway;
use cairn::config::{
    AuthConfig, Credentials, DefaultAction, GatewayConfig, GatewayId, IdentityConfig, Layer, LimitsConfig,
    ListenerConfig, McpConfig, McpEndpoint, McpServerConfig, OAuthConfig, PolicyConfig, PolicyRules,
    SESSION_KEY, SubjectConfig, TelemetryConfig, ToolGrantConfig, hash_virtual_key,
};
use cairn::gateway::core::{Core, Env};
use cairn::gateway::layer::Layer as _;
use cairn::gateway::mcp::{McpLayer, McpRuntime, handle};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioExecutor;
use mcp_servers::{ElicitServer, NamedToolsServer, PagedServer, ToolsServer, serve, serve_modern};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use support::Proc;

const SALT: &str = "0011";
const BOT_KEY: &str = "bot-key-0123456789abcdef";
const OTHER_KEY: &str = "other-key-0123456789abcdef";

fn server(name: &str, url: &str) -> McpServerConfig {
    McpServerConfig {
        name: name.into(),
        prefix: name.into(),
        endpoint: McpEndpoint::Http { url: url.into() },
        headers: vec![],
        allow: vec!["*".into()],
        deny: vec![],
        timeout_ms: 5_000,
        audit_arguments: false,
    }
}

fn config(name: &str, servers: Vec<McpServerConfig>, policy: PolicyConfig) -> GatewayConfig {
    GatewayConfig {
        version: cairn::config::CONFIG_VERSION,
        gateway: GatewayId { namespace: "test".into(), name: name.into(), layer: Layer::Mcp },
        listener: ListenerConfig { port: 0, max_request_bytes: 64 * 1024 },
        auth: AuthConfig {
            allow_anonymous: true,
            jwt: vec![],
            service_account_tokens: None,
            virtual_key_salt: SALT.into(),
        },
        store: None,
        telemetry: TelemetryConfig { otlp: None, access_log: false, subject_labels: true },
        policy,
        // Its servers listen on loopback, as in local mode.
        egress: cairn::config::EgressConfig { allow_loopback: true, ..Default::default() },
        ai: None,
        mcp: Some(McpConfig {
            servers,
            session_idle_timeout_ms: 600_000,
            oauth: None,
            allowed_origins: vec![],
        }),
        agent: None,
    }
}

fn allow_all() -> PolicyConfig {
    PolicyConfig { default_action: DefaultAction::Allow, subjects: vec![], policies: vec![] }
}

/// `bot` may use gh's `search_*` and `echo` (echo limited to 2 calls a minute); `other` is
/// named by no policy; the default is Deny.
fn bot_policy() -> PolicyConfig {
    PolicyConfig {
        default_action: DefaultAction::Deny,
        subjects: vec![
            SubjectConfig {
                name: "bot".into(),
                identities: vec![IdentityConfig::VirtualKey { hash: hash_virtual_key(SALT, BOT_KEY) }],
                team: None,
            },
            SubjectConfig {
                name: "other".into(),
                identities: vec![IdentityConfig::VirtualKey { hash: hash_virtual_key(SALT, OTHER_KEY) }],
                team: None,
            },
        ],
        policies: vec![PolicyRules {
            name: "bots".into(),
            subjects: vec!["bot".into()],
            models: vec![],
            tools: vec![
                ToolGrantConfig {
                    id: "bots/tools/0".into(),
                    server: "gh".into(),
                    prefix: "gh".into(),
                    tools: vec!["search_*".into(), "delete_*".into()],
                    limits: None,
                },
                ToolGrantConfig {
                    id: "bots/tools/1".into(),
                    server: "gh".into(),
                    prefix: "gh".into(),
                    tools: vec!["echo".into()],
                    limits: Some(LimitsConfig { requests_per_minute: Some(2), tokens_per_minute: None }),
                },
            ],
            agents: vec![],
            budgets: vec![],
        }],
    }
}

fn creds() -> Credentials {
    Credentials([(SESSION_KEY.to_string(), "test-session-key".to_string())].into())
}

/// A gateway serving `cfg` on a free port.
struct Gateway {
    url: String,
    core: Arc<Core>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn gateway(cfg: GatewayConfig) -> Gateway {
    gateway_with(cfg, |_| {}).await
}

/// A gateway serving `cfg`, its runtime adjusted by `adjust` first.
async fn gateway_with(cfg: GatewayConfig, adjust: impl FnOnce(&mut McpRuntime)) -> Gateway {
    gateway_in(Core::new(Env::from_process()), cfg, adjust).await
}

async fn gateway_in(core: Arc<Core>, cfg: GatewayConfig, adjust: impl FnOnce(&mut McpRuntime)) -> Gateway {
    let mut rt = build(&core, cfg, creds()).expect("config builds");
    adjust(&mut rt);
    serve_runtime(Arc::new(rt), core).await
}

/// A runtime of `cfg` with `credentials`, by the MCP layer of `core`.
fn build(core: &Arc<Core>, config: GatewayConfig, credentials: Credentials) -> Result<McpRuntime, String> {
    McpLayer::new(core).build(&CompiledGateway { config, credentials }).map_err(|e| e.to_string())
}

/// Serves `rt` on a free port with the gateway's own accept loop.
async fn serve_runtime(rt: Arc<McpRuntime>, core: Arc<Core>) -> Gateway {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // Never told to stop: the task is aborted when the Gateway is dropped.
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(async move {
        let _stop = stop;
        cairn::gateway::server::serve(listener, move |req| handle(rt.clone(), req), shutdown).await
    });
    Gateway { url: format!("http://{addr}/mcp"), core, task }
}

struct Reply {
    status: u16,
    headers: http::HeaderMap,
    body: String,
}

impl Reply {
    /// The JSON body, or the last JSON-RPC response of an SSE body.
    fn json(&self) -> Value {
        if self.is_sse() {
            return self
                .messages()
                .into_iter()
                .rev()
                .find(|m| m.get("id").is_some())
                .expect("a response in the stream");
        }
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    fn is_sse(&self) -> bool {
        self.headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"))
    }

    /// Every message of an SSE body.
    fn messages(&self) -> Vec<Value> {
        self.body
            .lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .filter_map(|d| serde_json::from_str(d.trim()).ok())
            .collect()
    }

    fn session(&self) -> String {
        self.headers.get("mcp-session-id").expect("a session id").to_str().unwrap().to_string()
    }
}

type Client =
    hyper_util::client::legacy::Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

fn client() -> Client {
    hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build_http()
}

/// Sends a request as an MCP client would (JSON body, accepting JSON and SSE); the response with
/// its body unread.
async fn request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: String,
) -> http::Response<hyper::body::Incoming> {
    let mut b = http::Request::builder()
        .method(method)
        .uri(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    tokio::time::timeout(
        Duration::from_secs(20),
        client().request(b.body(Full::new(Bytes::from(body))).unwrap()),
    )
    .await
    .expect("gateway answers")
    .expect("request")
}

async fn send(method: &str, url: &str, headers: &[(&str, &str)], body: String) -> Reply {
    let resp = request(method, url, headers, body).await;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = tokio::time::timeout(Duration::from_secs(20), resp.into_body().collect())
        .await
        .expect("body in time")
        .unwrap()
        .to_bytes();
    Reply { status, headers, body: String::from_utf8_lossy(&body).into_owned() }
}

async fn post(url: &str, headers: &[(&str, &str)], body: Value) -> Reply {
    send("POST", url, headers, body.to_string()).await
}

fn init_body(version: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": version, "capabilities": {}, "clientInfo": {"name": "test", "version": "1"}}})
}

fn req(id: u64, method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
}

/// A session-era client.
struct Session {
    url: String,
    id: String,
    version: String,
    auth: Option<String>,
}

impl Session {
    async fn open(url: &str, auth: Option<&str>) -> Session {
        Self::open_version(url, auth, "2025-06-18").await
    }

    async fn open_version(url: &str, auth: Option<&str>, version: &str) -> Session {
        let bearer = auth.map(|k| format!("Bearer {k}"));
        let mut h: Vec<(&str, &str)> = vec![];
        if let Some(b) = &bearer {
            h.push(("authorization", b));
        }
        let r = post(url, &h, init_body(version)).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.json()["result"]["protocolVersion"], version);
        let s = Session { url: url.into(), id: r.session(), version: version.into(), auth: bearer };
        let n = s.post(json!({"jsonrpc": "2.0", "method": "notifications/initialized"})).await;
        assert_eq!(n.status, 202);
        s
    }

    async fn post(&self, body: Value) -> Reply {
        self.post_to(&self.url, body).await
    }

    async fn post_to(&self, url: &str, body: Value) -> Reply {
        let mut h =
            vec![("mcp-session-id", self.id.as_str()), ("mcp-protocol-version", self.version.as_str())];
        if let Some(b) = &self.auth {
            h.push(("authorization", b));
        }
        post(url, &h, body).await
    }

    async fn call(&self, id: u64, method: &str, params: Value) -> Value {
        let r = self.post(req(id, method, params)).await;
        assert_eq!(r.status, 200, "{method}: {}", r.body);
        r.json()
    }

    async fn tool_names(&self) -> Vec<String> {
        let v = self.call(100, "tools/list", json!({})).await;
        v["result"]["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_string())
            .collect()
    }
}

fn text_of(v: &Value) -> &str {
    v["result"]["content"][0]["text"].as_str().unwrap_or_else(|| panic!("no text in {v}"))
}

#[tokio::test]
async fn aggregates_tools_prompts_and_resources_with_prefixes() {
    let gh = serve(ToolsServer::default).await;
    let fs = serve(ToolsServer::default).await;
    let pg = serve(|| PagedServer).await;
    let gw = gateway(config(
        "agg",
        vec![server("gh", &gh.url), server("fs", &fs.url), server("pg", &pg.url)],
        allow_all(),
    ))
    .await;
    let s = Session::open(&gw.url, None).await;

    let names = s.tool_names().await;
    let base = [
        "echo",
        "add",
        "fail",
        "explode",
        "search_code",
        "delete_repo",
        "progress",
        "changed",
        "sample",
        "changed_all",
        "wait",
        "progress_wait",
        "touch",
    ];
    let mut want: Vec<String> = base.iter().map(|t| format!("fs__{t}")).collect();
    want.extend(base.iter().map(|t| format!("gh__{t}")));
    want.extend((0..25).map(|i| format!("pg__t{i:02}")));
    assert_eq!(names, want, "server prefix order, each backend's own order, every page followed");
    assert_eq!(s.tool_names().await, want, "deterministic");

    let v = s.call(1, "tools/call", json!({"name": "gh__echo", "arguments": {"text": "hi"}})).await;
    assert_eq!(text_of(&v), "hi");
    let v = s.call(2, "tools/call", json!({"name": "fs__add", "arguments": {"a": 2, "b": 3}})).await;
    assert_eq!(text_of(&v), "5");
    let v = s.call(3, "tools/call", json!({"name": "pg__t24", "arguments": {}})).await;
    assert_eq!(text_of(&v), "paged t24");
    assert_eq!(v["id"], 3);

    // A tool error is the tool's result; a protocol error stays a protocol error.
    let v = s.call(4, "tools/call", json!({"name": "gh__fail", "arguments": {}})).await;
    assert_eq!(v["result"]["isError"], true);
    let v = s.call(5, "tools/call", json!({"name": "gh__explode", "arguments": {}})).await;
    assert!(v["error"]["code"].is_i64(), "{v}");

    // Unknown prefix, no prefix.
    for name in ["zz__echo", "echo", "gh__"] {
        let v = s.call(6, "tools/call", json!({"name": name, "arguments": {}})).await;
        assert_eq!(v["error"]["code"], -32602, "{name}: {v}");
    }

    let v = s.call(7, "prompts/list", json!({})).await;
    let prompts: Vec<&str> =
        v["result"]["prompts"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(prompts, ["fs__greet", "gh__greet"]);
    let v = s.call(8, "prompts/get", json!({"name": "gh__greet", "arguments": {"who": "Ada"}})).await;
    assert_eq!(v["result"]["messages"][0]["content"]["text"], "Hello, Ada!");

    let v = s.call(9, "resources/list", json!({})).await;
    let uris: Vec<&str> =
        v["result"]["resources"].as_array().unwrap().iter().map(|r| r["uri"].as_str().unwrap()).collect();
    assert_eq!(uris, ["fs+file:///readme.txt", "gh+file:///readme.txt"]);
    let v = s.call(10, "resources/read", json!({"uri": "gh+file:///readme.txt"})).await;
    assert_eq!(v["result"]["contents"][0]["text"], "read me");
    assert_eq!(v["result"]["contents"][0]["uri"], "gh+file:///readme.txt", "URIs route back");
    let v = s.call(11, "resources/read", json!({"uri": "zz+file:///readme.txt"})).await;
    assert_eq!(v["error"]["code"], -32002);

    let v = s.call(12, "ping", json!({})).await;
    assert_eq!(v["result"], json!({}));
    let v = s.call(13, "no/such/method", json!({})).await;
    assert_eq!(v["error"]["code"], -32601);
}

#[tokio::test]
async fn server_allow_deny_and_per_caller_policy() {
    let gh = serve(ToolsServer::default).await;
    let mut g = server("gh", &gh.url);
    g.deny = vec!["delete_*".into()];
    let mut cfg = config("policy", vec![g], bot_policy());
    cfg.auth.allow_anonymous = false;
    let gw = gateway(cfg).await;

    // No credentials: 401.
    let r = post(&gw.url, &[], init_body("2025-06-18")).await;
    assert_eq!(r.status, 401);
    assert!(r.headers.get("www-authenticate").is_some());

    let bot = Session::open(&gw.url, Some(BOT_KEY)).await;
    assert_eq!(
        bot.tool_names().await,
        ["gh__echo", "gh__search_code"],
        "deny beats the grant; ungranted tools never appear"
    );
    let v = bot.call(1, "tools/call", json!({"name": "gh__search_code", "arguments": {}})).await;
    assert_eq!(text_of(&v), "found 3 results");
    // A name it never listed is refused on call.
    let v = bot.call(2, "tools/call", json!({"name": "gh__add", "arguments": {"a": 1, "b": 1}})).await;
    assert_eq!(v["error"]["code"], -32602);
    assert!(v["error"]["message"].as_str().unwrap().contains("not allowed"), "{v}");
    let v = bot.call(3, "tools/call", json!({"name": "gh__delete_repo", "arguments": {}})).await;
    assert_eq!(v["error"]["code"], -32602, "denied by the server for everyone");
    // Prompts of a server it may use are visible.
    let v = bot.call(4, "prompts/list", json!({})).await;
    assert_eq!(v["result"]["prompts"][0]["name"], "gh__greet");

    // Rate limit on echo: 2 per minute.
    for i in 0..2 {
        let v = bot.call(10 + i, "tools/call", json!({"name": "gh__echo", "arguments": {"text": "x"}})).await;
        assert_eq!(text_of(&v), "x");
    }
    let v = bot.call(12, "tools/call", json!({"name": "gh__echo", "arguments": {"text": "x"}})).await;
    assert_eq!(v["error"]["code"], -32029, "{v}");

    // A caller no policy names gets the default: Deny, so nothing.
    let other = Session::open(&gw.url, Some(OTHER_KEY)).await;
    assert!(other.tool_names().await.is_empty());
    let v = other.call(1, "tools/call", json!({"name": "gh__search_code", "arguments": {}})).await;
    assert_eq!(v["error"]["code"], -32602);
    let v = other.call(2, "prompts/list", json!({})).await;
    assert_eq!(v["result"]["prompts"], json!([]));

    // A session belongs to its caller.
    let stolen = Session {
        url: gw.url.clone(),
        id: bot.id.clone(),
        version: bot.version.clone(),
        auth: other.auth.clone(),
    };
    assert_eq!(stolen.post(req(1, "tools/list", json!({}))).await.status, 404);
}

#[tokio::test]
async fn a_broken_backend_is_left_out() {
    let good = serve(ToolsServer::default).await;
    // A port nobody listens on, and a server answering garbage.
    let dead = format!("http://127.0.0.1:{}/mcp", support::free_port());
    let garbage = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let garbage_url = format!("http://{}/mcp", garbage.local_addr().unwrap());
    let junk = tokio::spawn(async move {
        let app = axum::Router::new()
            .fallback(|| async { ([("content-type", "application/json")], "this is not json") });
        let _ = axum::serve(garbage, app).await;
    });
    let mut d = server("dead", &dead);
    d.timeout_ms = 2_000;
    let gw = gateway(config(
        "broken",
        vec![server("gh", &good.url), d, server("junk", &garbage_url)],
        allow_all(),
    ))
    .await;
    let s = Session::open(&gw.url, None).await;
    let names = s.tool_names().await;
    assert_eq!(names.len(), 13, "{names:?}");
    assert!(names.iter().all(|n| n.starts_with("gh__")));
    let v = s.call(1, "tools/call", json!({"name": "dead__echo", "arguments": {}})).await;
    assert!(v["error"]["code"].is_i64(), "{v}");
    let metrics = gw.core.metrics.encode();
    assert!(
        metrics.contains(
            "cairn_mcp_backend_errors_total{gateway=\"test/broken\",server=\"dead\",operation=\"initialize\"}"
        ),
        "{metrics}"
    );
    junk.abort();
}

/// The egress rule where the gateway connects: a server whose host name resolves to the cloud
/// metadata address is never connected to and is left out, logged with the server, the URL and
/// the rule; the other server serves.
#[tokio::test]
async fn a_server_whose_name_resolves_to_the_metadata_address_is_refused_at_connect() {
    use support::hosts;
    let (logs, _guard) = support::logs::capture("cairn=warn");
    let good = serve(ToolsServer::default).await;
    let core = Core::with_resolver(Env::from_process(), hosts::resolver());
    let meta_url = format!("http://{}/mcp", hosts::METADATA);
    // (The test server checks its Host header, so it is named by its address.)
    let servers = vec![server("gh", &good.url), server("meta", &meta_url)];
    let gw = gateway_in(core, config("egress", servers, allow_all()), |_| {}).await;
    let s = Session::open(&gw.url, None).await;
    let names = s.tool_names().await;
    assert!(!names.is_empty() && names.iter().all(|n| n.starts_with("gh__")), "{names:?}");
    let logged = logs.text();
    let line = logged.lines().find(|l| l.contains("server=\"meta\"")).unwrap_or_else(|| panic!("{logged}"));
    assert!(line.contains("MCP server failed; left out"), "{line}");
    assert!(
        line.contains(
            "error=cannot reach MCP server: url \"http://metadata.test/mcp\": the gateway's egress rule \
             refuses host metadata.test, which resolves to 169.254.169.254, a cloud metadata address: \
             link-local, cloud metadata, multicast and reserved addresses are refused unless \
             spec.egress.allowedCIDRs lists them"
        ),
        "{line}"
    );
}

/// A message nested 10,000 deep is refused before it is read (nothing reaches a server), and
/// headers over the limits get 431: JSON-RPC errors, as every refusal of the endpoint.
#[tokio::test]
async fn request_size_limits_are_answered_as_json_rpc_errors() {
    let gh = serve(ToolsServer::default).await;
    let gw = gateway(config("limits", vec![server("gh", &gh.url)], allow_all())).await;
    let s = Session::open(&gw.url, None).await;
    let deep = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"gh__echo","arguments":{{"text":{}{}}}}}}}"#,
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    let depth =
        "the request body nests JSON arrays and objects deeper than the 64 levels this gateway accepts";
    let r = send("POST", &gw.url, &[("mcp-session-id", &s.id), ("mcp-protocol-version", "2025-06-18")], deep)
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(
        serde_json::from_str::<Value>(&r.body).unwrap(),
        json!({"jsonrpc": "2.0", "id": null, "error": {"code": -32600, "message": depth}})
    );
    let many: Vec<(String, String)> = (0..101).map(|i| (format!("x-h{i}"), "v".to_string())).collect();
    let many: Vec<(&str, &str)> = many.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let r = post(&gw.url, &many, init_body("2025-06-18")).await;
    assert_eq!(r.status, 431, "{}", r.body);
    let v: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(v["error"]["code"], -32600, "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("header fields, more than the 100"), "{v}");
    // The session still works.
    let v = s.call(2, "tools/call", json!({"name": "gh__echo", "arguments": {"text": "ok"}})).await;
    assert_eq!(text_of(&v), "ok");
}

#[tokio::test]
async fn one_session_served_by_two_gateways_alternately() {
    let gh = serve(ToolsServer::default).await;
    let a = gateway(config("pair", vec![server("gh", &gh.url)], allow_all())).await;
    let b = gateway(config("pair", vec![server("gh", &gh.url)], allow_all())).await;
    let s = Session::open(&a.url, None).await;
    for i in 0..4u64 {
        let url = if i % 2 == 0 { &b.url } else { &a.url };
        let r = s
            .post_to(
                url,
                req(i, "tools/call", json!({"name": "gh__echo", "arguments": {"text": format!("n{i}")}})),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(text_of(&r.json()), format!("n{i}"));
    }
    // Ending it on one ends it at the backend, so the other answers 404 too.
    let mut del = vec![("mcp-session-id", s.id.as_str())];
    del.push(("mcp-protocol-version", "2025-06-18"));
    assert_eq!(send("DELETE", &b.url, &del, String::new()).await.status, 200);
    assert_eq!(s.post_to(&b.url, req(9, "tools/list", json!({}))).await.status, 404);
    assert_eq!(
        s.post_to(&a.url, req(9, "tools/call", json!({"name": "gh__echo", "arguments": {}}))).await.status,
        404
    );
}

#[tokio::test]
async fn tampered_or_foreign_session_ids_get_404() {
    let gh = serve(ToolsServer::default).await;
    let gw = gateway(config("tamper", vec![server("gh", &gh.url)], allow_all())).await;
    let other = gateway(config("elsewhere", vec![server("gh", &gh.url)], allow_all())).await;
    let s = Session::open(&gw.url, None).await;
    let mut bytes = s.id.clone().into_bytes();
    let i = bytes.len() / 2;
    bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
    let tampered = Session {
        id: String::from_utf8(bytes).unwrap(),
        ..Session { url: gw.url.clone(), id: String::new(), version: s.version.clone(), auth: None }
    };
    assert_eq!(tampered.post(req(1, "tools/list", json!({}))).await.status, 404);
    // Sealed for another gateway.
    assert_eq!(s.post_to(&other.url, req(1, "tools/list", json!({}))).await.status, 404);
    // No session at all: 400.
    assert_eq!(post(&gw.url, &[], req(1, "tools/list", json!({}))).await.status, 400);
    // The real one still works.
    assert_eq!(s.post(req(1, "tools/list", json!({}))).await.status, 200);
}

fn modern_headers<'a>(method: &'a str, name: Option<&'a str>) -> Vec<(&'a str, &'a str)> {
    let mut h = vec![("mcp-protocol-version", "2026-07-28"), ("mcp-method", method)];
    if let Some(n) = name {
        h.push(("mcp-name", n));
    }
    h
}

fn modern(id: u64, method: &str, mut params: Value) -> Value {
    params["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "test", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": {}
    });
    req(id, method, params)
}

#[tokio::test]
async fn stateless_era_discover_list_call_and_header_checks() {
    let gh = serve(ToolsServer::default).await;
    let gw = gateway(config("modern", vec![server("gh", &gh.url)], allow_all())).await;

    let r = post(&gw.url, &modern_headers("server/discover", None), modern(1, "server/discover", json!({})))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert!(v["result"]["supportedVersions"].as_array().unwrap().contains(&json!("2026-07-28")));
    assert_eq!(v["result"]["resultType"], "complete");
    assert!(r.headers.get("mcp-session-id").is_none(), "no sessions in this era");

    let r = post(&gw.url, &modern_headers("tools/list", None), modern(2, "tools/list", json!({}))).await;
    let v = r.json();
    assert_eq!(v["result"]["tools"].as_array().unwrap().len(), 13, "{v}");
    assert_eq!(v["result"]["ttlMs"], 0);
    assert_eq!(v["result"]["cacheScope"], "private");

    let r = post(
        &gw.url,
        &modern_headers("tools/call", Some("gh__echo")),
        modern(3, "tools/call", json!({"name": "gh__echo", "arguments": {"text": "stateless"}})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(text_of(&r.json()), "stateless");

    // Header/body mismatch, missing Mcp-Name, unknown version, unknown method, missing _meta.
    let call = modern(4, "tools/call", json!({"name": "gh__echo", "arguments": {}}));
    let r = post(&gw.url, &modern_headers("tools/call", Some("gh__add")), call.clone()).await;
    assert_eq!((r.status, r.json()["error"]["code"].clone()), (400, json!(-32020)));
    let r = post(&gw.url, &modern_headers("tools/list", Some("gh__echo")), call.clone()).await;
    assert_eq!((r.status, r.json()["error"]["code"].clone()), (400, json!(-32020)));
    let r = post(&gw.url, &modern_headers("tools/call", None), call.clone()).await;
    assert_eq!((r.status, r.json()["error"]["code"].clone()), (400, json!(-32020)));
    let mut h = modern_headers("tools/call", Some("gh__echo"));
    h[0].1 = "2099-01-01";
    let mut future = call.clone();
    future["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"] = "2099-01-01".into();
    let r = post(&gw.url, &h, future).await;
    assert_eq!((r.status, r.json()["error"]["code"].clone()), (400, json!(-32022)));
    assert!(r.json()["error"]["data"]["supported"].as_array().unwrap().contains(&json!("2026-07-28")));
    let r = post(&gw.url, &modern_headers("no/such", None), modern(5, "no/such", json!({}))).await;
    assert_eq!((r.status, r.json()["error"]["code"].clone()), (404, json!(-32601)));
    let r = post(&gw.url, &modern_headers("tools/list", None), req(6, "tools/list", json!({}))).await;
    assert_eq!(r.status, 400, "_meta protocolVersion is required: {}", r.body);

    // Batches, GET and DELETE do not exist in this era.
    let r = send(
        "POST",
        &gw.url,
        &modern_headers("tools/list", None),
        json!([modern(7, "tools/list", json!({}))]).to_string(),
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(send("GET", &gw.url, &modern_headers("tools/list", None), String::new()).await.status, 405);
    assert_eq!(send("DELETE", &gw.url, &modern_headers("tools/list", None), String::new()).await.status, 405);
}

#[tokio::test]
async fn session_era_wire_errors() {
    let gh = serve(ToolsServer::default).await;
    let mut cfg = config("wire", vec![server("gh", &gh.url)], allow_all());
    cfg.mcp.as_mut().unwrap().allowed_origins = vec!["https://app.example.com".into()];
    let gw = gateway(cfg).await;

    let r = post(&gw.url, &[("origin", "https://evil.example")], init_body("2025-06-18")).await;
    assert_eq!(r.status, 403);
    let r = post(&gw.url, &[("origin", "https://app.example.com")], init_body("2025-06-18")).await;
    assert_eq!(r.status, 200);

    let r = send("POST", &gw.url, &[], "{not json".into()).await;
    assert_eq!((r.status, r.json()["error"]["code"].clone()), (400, json!(-32700)));
    let r = post(&gw.url, &[], json!({"jsonrpc": "1.0", "id": 1, "method": "initialize"})).await;
    assert_eq!((r.status, r.json()["error"]["code"].clone()), (400, json!(-32600)));

    let s = Session::open(&gw.url, None).await;
    let r = post(
        &gw.url,
        &[("mcp-session-id", &s.id), ("mcp-protocol-version", "1999-01-01")],
        req(1, "tools/list", json!({})),
    )
    .await;
    assert_eq!(r.status, 400, "unknown MCP-Protocol-Version");

    // Batches: refused after 2025-03-26, served in 2025-03-26.
    let batch = json!([
        req(1, "ping", json!({})),
        req(2, "tools/call", json!({"name": "gh__echo", "arguments": {"text": "b"}}))
    ]);
    assert_eq!(s.post(batch.clone()).await.status, 400);
    let old = Session::open_version(&gw.url, None, "2025-03-26").await;
    let r = old.post(batch).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let v: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(v[0]["result"], json!({}));
    assert_eq!(v[1]["result"]["content"][0]["text"], "b");

    // Oversize body.
    let big = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "gh__echo", "arguments": {"text": "x".repeat(100_000)}}});
    assert_eq!(s.post(big).await.status, 413);

    // Unknown version in initialize: the gateway offers its own.
    let r = post(&gw.url, &[], init_body("2024-01-01")).await;
    assert_eq!(r.json()["result"]["protocolVersion"], "2025-11-25");
}

/// `Origin` against DNS rebinding, with and without `allowedOrigins`: absent and the gateway's
/// own host are served; a listed origin is served; any other is 403 with a JSON-RPC error.
#[tokio::test]
async fn origin_table_absent_same_host_allowed_foreign() {
    let gh = serve(ToolsServer::default).await;
    for allowed in [vec![], vec!["https://app.example.com".to_string()]] {
        let mut cfg = config("origins", vec![server("gh", &gh.url)], allow_all());
        cfg.mcp.as_mut().unwrap().allowed_origins = allowed.clone();
        let gw = gateway(cfg).await;
        // The client sends `Host: 127.0.0.1:PORT`.
        let own = gw.url.trim_end_matches("/mcp").to_string();
        let listed = if allowed.is_empty() { 403 } else { 200 };
        let cases = [
            (None, 200),
            (Some(own.as_str()), 200),
            (Some("https://app.example.com"), listed),
            (Some("http://evil.example.com"), 403),
            (Some("http://127.0.0.1:1"), 403),
            (Some("null"), 403),
        ];
        for (origin, want) in cases {
            let h: Vec<(&str, &str)> = origin.map(|o| vec![("origin", o)]).unwrap_or_default();
            let r = post(&gw.url, &h, init_body("2025-11-25")).await;
            assert_eq!(r.status, want, "Origin {origin:?}, allowedOrigins {allowed:?}: {}", r.body);
            if want == 403 {
                let v = r.json();
                assert_eq!((v["jsonrpc"].clone(), v["id"].clone()), (json!("2.0"), Value::Null), "{v}");
                assert_eq!(v["error"]["code"], -32600, "{v}");
                let msg = v["error"]["message"].as_str().unwrap();
                assert!(
                    msg.starts_with(&format!("Forbidden: Origin {} is not allowed", origin.unwrap())),
                    "{msg}"
                );
            }
        }
        // DNS rebinding: a page at evil.example re-resolved to the gateway sends an Origin equal
        // to the Host it asks for; a public name is no proof of being the gateway's own.
        let port = own.rsplit(':').next().unwrap();
        let (evil, host) = (format!("http://evil.example:{port}"), format!("evil.example:{port}"));
        let r = post(&gw.url, &[("origin", &evil), ("host", &host)], init_body("2025-11-25")).await;
        assert_eq!(r.status, 403, "rebinding: {}", r.body);
        let local = (format!("http://localhost:{port}"), format!("localhost:{port}"));
        let r = post(&gw.url, &[("origin", &local.0), ("host", &local.1)], init_body("2025-11-25")).await;
        assert_eq!(r.status, 200, "localhost is the gateway's own: {}", r.body);
    }
}

/// On a session negotiated at 2025-11-25, a request whose `MCP-Protocol-Version` names another
/// version the gateway speaks is served (the spec refuses only invalid or unsupported ones, and
/// clients opening extra streams may send a default); an unknown or malformed one is 400.
#[tokio::test]
async fn a_supported_version_header_other_than_the_sessions_is_served() {
    let gh = serve(ToolsServer::default).await;
    let gw = gateway(config("versions", vec![server("gh", &gh.url)], allow_all())).await;
    let s = Session::open_version(&gw.url, None, "2025-11-25").await;
    for (i, v) in ["2025-03-26", "2025-06-18", "2024-11-05", "2025-11-25"].into_iter().enumerate() {
        let h = [("mcp-session-id", s.id.as_str()), ("mcp-protocol-version", v)];
        let r = post(&gw.url, &h, req(i as u64, "tools/list", json!({}))).await;
        assert_eq!(r.status, 200, "{v}: {}", r.body);
        assert!(!r.json()["result"]["tools"].as_array().unwrap().is_empty(), "{v}");
        // The wire path of a plain tools/call, and the standalone stream.
        let call = req(10 + i as u64, "tools/call", json!({"name": "gh__echo", "arguments": {"text": v}}));
        let r = post(&gw.url, &h, call).await;
        assert_eq!((r.status, text_of(&r.json()).to_string()), (200, v.to_string()), "{}", r.body);
        let resp = request("GET", &gw.url, &h, String::new()).await;
        assert_eq!(resp.status(), 200, "GET with {v}");
    }
    for v in ["2099-01-01", "not-a-version", "2026-07-28x"] {
        let h = [("mcp-session-id", s.id.as_str()), ("mcp-protocol-version", v)];
        let r = post(&gw.url, &h, req(1, "tools/list", json!({}))).await;
        // (A version after 2026-07-28 is refused as that era refuses one: -32022 and the list.)
        assert_eq!(r.status, 400, "{v}: {}", r.body);
        assert!(r.body.contains("Unsupported"), "{}", r.body);
        assert_eq!(request("GET", &gw.url, &h, String::new()).await.status(), 400, "GET with {v}");
        assert_eq!(request("DELETE", &gw.url, &h, String::new()).await.status(), 400, "DELETE with {v}");
    }
}

#[tokio::test]
async fn progress_is_relayed_on_the_request_stream() {
    let gh = serve(ToolsServer::default).await;
    let gw = gateway(config("progress", vec![server("gh", &gh.url)], allow_all())).await;
    let s = Session::open(&gw.url, None).await;
    let r = s
        .post(req(
            1,
            "tools/call",
            json!({"name": "gh__progress", "arguments": {}, "_meta": {"progressToken": "tok"}}),
        ))
        .await;
    assert!(r.is_sse(), "{}", r.body);
    let msgs = r.messages();
    let progress: Vec<&Value> = msgs.iter().filter(|m| m["method"] == "notifications/progress").collect();
    assert_eq!(progress.len(), 2, "{msgs:?}");
    assert!(progress.iter().all(|p| p["params"]["progressToken"] == "tok"));
    assert_eq!(text_of(msgs.last().unwrap()), "progressed");
}

#[tokio::test]
async fn list_changed_reaches_the_standalone_stream() {
    let gh = serve(ToolsServer::default).await;
    let fs = serve(ToolsServer::default).await;
    let gw = gateway(config("notify", vec![server("gh", &gh.url), server("fs", &fs.url)], allow_all())).await;
    let s = Session::open(&gw.url, None).await;
    let req_get = http::Request::builder()
        .method("GET")
        .uri(&gw.url)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &s.id)
        .header("mcp-protocol-version", "2025-06-18")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = client().request(req_get).await.unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    let v = s.call(1, "tools/call", json!({"name": "gh__changed", "arguments": {}})).await;
    assert_eq!(text_of(&v), "will change");
    let mut seen = String::new();
    let found = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(Ok(f)) = body.frame().await {
            if let Ok(d) = f.into_data() {
                seen.push_str(&String::from_utf8_lossy(&d));
                if seen.contains("notifications/tools/list_changed") {
                    return true;
                }
            }
        }
        false
    })
    .await;
    assert_eq!(found, Ok(true), "{seen}");
}

/// What a backend sends on its standalone stream before the client opens its own is held for
/// it (the backend's stream is opened when the session starts); what a session ends with,
/// undelivered, is counted as dropped.
#[tokio::test]
async fn standalone_messages_wait_for_the_client_and_undelivered_ones_are_counted() {
    let gh = serve(ToolsServer::default).await;
    let gw = gateway(config("early", vec![server("gh", &gh.url)], allow_all())).await;
    let dropped = |gw: &Gateway| {
        let m = gw.core.metrics.encode();
        m.lines()
            .find(|l| {
                l.starts_with(
                    "cairn_mcp_dropped_messages_total{gateway=\"test/early\",reason=\"session_ended\"}",
                )
            })
            .map(|l| l.rsplit(' ').next().unwrap().to_string())
    };
    // The notification comes 200 ms after the call, long before the client listens.
    let s = Session::open(&gw.url, None).await;
    assert_eq!(
        text_of(&s.call(1, "tools/call", json!({"name": "gh__changed", "arguments": {}})).await),
        "will change"
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    let h = [("mcp-session-id", s.id.as_str()), ("mcp-protocol-version", "2025-06-18")];
    let mut body = request("GET", &gw.url, &h, String::new()).await.into_body();
    let mut seen = String::new();
    let found = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(Ok(f)) = body.frame().await {
            seen.push_str(&String::from_utf8_lossy(&f.into_data().unwrap_or_default()));
            if seen.contains("notifications/tools/list_changed") {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(found, Ok(true), "{seen}");
    // A second stream while the first is open: one reads the session's messages at a time.
    assert_eq!(request("GET", &gw.url, &h, String::new()).await.status(), 409);
    drop(body);
    assert_eq!(dropped(&gw), None);

    // A session that ends before its client listens: the waiting notification is counted.
    let s = Session::open(&gw.url, None).await;
    s.call(1, "tools/call", json!({"name": "gh__changed", "arguments": {}})).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let h = [("mcp-session-id", s.id.as_str()), ("mcp-protocol-version", "2025-06-18")];
    assert_eq!(send("DELETE", &gw.url, &h, String::new()).await.status, 200);
    assert_eq!(dropped(&gw).as_deref(), Some("1"), "{}", gw.core.metrics.encode());
}

#[tokio::test]
async fn oauth_protected_resource_metadata_and_401() {
    let gh = serve(ToolsServer::default).await;
    let mut cfg = config("oauth", vec![server("gh", &gh.url)], bot_policy());
    cfg.auth.allow_anonymous = false;
    cfg.mcp.as_mut().unwrap().oauth = Some(OAuthConfig {
        resource: "https://mcp.example.com/mcp".into(),
        authorization_servers: vec!["https://login.example.com".into()],
        scopes: vec!["mcp:tools".into()],
    });
    let gw = gateway(cfg).await;
    let r = post(&gw.url, &[], init_body("2025-06-18")).await;
    assert_eq!(r.status, 401);
    let www = r.headers.get("www-authenticate").unwrap().to_str().unwrap();
    assert!(
        www.starts_with(
            "Bearer resource_metadata=\"https://mcp.example.com/.well-known/oauth-protected-resource/mcp\""
        ),
        "{www}"
    );
    let base = gw.url.trim_end_matches("/mcp");
    for path in ["/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource"] {
        let r = send("GET", &format!("{base}{path}"), &[], String::new()).await;
        assert_eq!(r.status, 200, "{path}");
        let doc = r.json();
        assert_eq!(doc["resource"], "https://mcp.example.com/mcp");
        assert_eq!(doc["authorization_servers"], json!(["https://login.example.com"]));
    }
    // A bad token is refused with invalid_token.
    let r = post(&gw.url, &[("authorization", "Bearer nope")], init_body("2025-06-18")).await;
    assert_eq!(r.status, 401);
    assert!(r.headers.get("www-authenticate").unwrap().to_str().unwrap().contains("invalid_token"));
}

#[tokio::test]
async fn backend_credentials_come_from_the_bundle_never_from_the_client() {
    // A backend that records the Authorization header it gets.
    let seen = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let gh = serve(ToolsServer::default).await;
    let upstream = gh.url.clone();
    let rec = seen.clone();
    let proxy = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_url = format!("http://{}/mcp", proxy.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
            let rec = rec.clone();
            let upstream = upstream.clone();
            async move {
                let auth = req
                    .headers()
                    .get("authorization")
                    .map(|v| v.to_str().unwrap().to_string())
                    .unwrap_or_default();
                rec.lock().unwrap().push(auth);
                let (parts, body) = req.into_parts();
                let bytes = body.collect().await.unwrap().to_bytes();
                let mut b = http::Request::builder().method(parts.method).uri(&upstream);
                for (k, v) in parts.headers.iter() {
                    if k != "host" && k != "authorization" {
                        b = b.header(k, v);
                    }
                }
                let resp = client().request(b.body(Full::new(bytes)).unwrap()).await.unwrap();
                let (mut parts, body) = resp.into_parts();
                let bytes = body.collect().await.unwrap().to_bytes();
                parts.headers.remove("transfer-encoding");
                parts.headers.remove("content-length");
                axum::response::Response::from_parts(parts, axum::body::Body::from(bytes))
            }
        });
        let _ = axum::serve(proxy, app).await;
    });
    let mut g = server("gh", &proxy_url);
    g.headers = vec![cairn::config::HeaderConfig {
        name: "Authorization".into(),
        value: None,
        credential: Some(cairn::config::CredentialRef { id: "gh-token".into() }),
        prefix: "Bearer ".into(),
    }];
    let cfg = config("creds", vec![g], bot_policy());
    let core = Core::new(Env::from_process());
    let mut c = creds();
    c.0.insert("gh-token".into(), "backend-secret".into());
    let gw = serve_runtime(Arc::new(build(&core, cfg, c).unwrap()), core).await;
    let url = gw.url.clone();
    let s = Session::open(&url, Some(BOT_KEY)).await;
    let v = s.call(1, "tools/call", json!({"name": "gh__search_code", "arguments": {}})).await;
    assert_eq!(text_of(&v), "found 3 results");
    let seen = seen.lock().unwrap().clone();
    assert!(!seen.is_empty());
    assert!(seen.iter().all(|a| a == "Bearer backend-secret"), "{seen:?}");
    task.abort();
}

/// Runs tests/conformance/test_mcp_sdk.py (the official MCP Python SDK client, both eras)
/// against a gateway over rmcp servers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_conformance() {
    support::python(); // fails here, before any set-up, when the SDK venv is missing
    let gh = serve(ToolsServer::default).await;
    let fs = serve(ToolsServer::default).await;
    let mut g = server("gh", &gh.url);
    g.deny = vec!["delete_*".into()];
    let mut policy = bot_policy();
    policy.policies[0].tools.push(ToolGrantConfig {
        id: "bots/tools/2".into(),
        server: "gh".into(),
        prefix: "gh".into(),
        tools: vec!["fail".into(), "progress".into(), "changed".into()],
        limits: None,
    });
    policy.policies[0].tools[1].limits = None;
    let mut cfg = config("sdk", vec![g, server("fs", &fs.url)], policy);
    cfg.auth.allow_anonymous = false;
    let gw = gateway(cfg).await;
    let env = [
        ("CAIRN_MCP_URL", gw.url.as_str()),
        ("CAIRN_MCP_KEY", BOT_KEY),
        // tests/conformance/conftest.py (shared with the AI SDK suite) wants these set.
        ("CAIRN_GATEWAY_URL", gw.url.as_str()),
        ("CAIRN_GATEWAY_KEY", BOT_KEY),
    ];
    let stdout =
        support::pytest(&["tests/conformance/test_mcp_sdk.py"], &env).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(!stdout.contains("skipped"), "{stdout}");
}

/// No server→client request is lost: a backend sends an elicitation request on its standalone
/// stream the instant a tool starts, while the official MCP Python SDK client opens its own
/// standalone stream concurrently with the call; 200 sessions in a row, every request answered
/// (tests/conformance/test_mcp_elicitation.py), nothing counted as dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_server_to_client_request_is_lost() {
    support::python(); // fails here, before any set-up, when the SDK venv is missing
    let el = serve(ElicitServer::default).await;
    let gw = gateway(config("elicit", vec![server("el", &el.url)], allow_all())).await;
    support::pytest(&["tests/conformance/test_mcp_elicitation.py"], &[("CAIRN_MCP_URL", gw.url.as_str())])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let metrics = gw.core.metrics.encode();
    assert!(
        metrics.contains("cairn_mcp_tool_calls_total{gateway=\"test/elicit\",server=\"el\",tool=\"elicit_now\",subject=\"anonymous\",outcome=\"ok\"} 200"),
        "{metrics}"
    );
    assert!(!metrics.contains("cairn_mcp_dropped_messages_total{"), "{metrics}");
}

/// A server with an empty prefix keeps its tools', prompts' and resources' names, beside a
/// prefixed one, through the official MCP Python SDK client (both eras), and the policy
/// (`tools: [{server, tools}]`) applies to its unprefixed names
/// (tests/conformance/test_mcp_unprefixed.py).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unprefixed_server_keeps_its_names() {
    support::python(); // fails here, before any set-up, when the SDK venv is missing
    let files = serve(ToolsServer::default).await;
    let gh = serve(ToolsServer::default).await;
    let mut policy = bot_policy();
    policy.policies[0].tools = vec![
        ToolGrantConfig {
            id: "bots/tools/0".into(),
            server: "files".into(),
            prefix: String::new(),
            tools: vec!["echo".into(), "search_*".into()],
            limits: None,
        },
        ToolGrantConfig {
            id: "bots/tools/1".into(),
            server: "gh".into(),
            prefix: "gh".into(),
            tools: vec!["echo".into()],
            limits: None,
        },
    ];
    let unprefixed = McpServerConfig { prefix: String::new(), ..server("files", &files.url) };
    let mut cfg = config("unprefixed", vec![server("gh", &gh.url), unprefixed], policy);
    cfg.auth.allow_anonymous = false;
    let gw = gateway(cfg).await;
    let env = [("CAIRN_MCP_URL", gw.url.as_str()), ("CAIRN_MCP_KEY", BOT_KEY)];
    let stdout = support::pytest(&["tests/conformance/test_mcp_unprefixed.py"], &env)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(stdout.contains("4 passed"), "{stdout}");
    // The audit and metrics name the server, with the tool's own name.
    let metrics = gw.core.metrics.encode();
    assert!(
        metrics.contains("cairn_mcp_tool_calls_total{gateway=\"test/unprefixed\",server=\"files\",tool=\"echo\",subject=\"bot\",outcome=\"ok\"} 2"),
        "{metrics}"
    );
}

/// A name of the unprefixed server that reads as another server's prefixed name (`gh__echo`
/// beside a server with prefix `gh`) would route to that other server: it is left out of lists
/// (never shadowed, never served by the wrong server), while its other names, `__` included,
/// are listed and served by it.
#[tokio::test]
async fn an_unprefixed_name_that_reads_as_another_servers_is_left_out() {
    let gh = serve(ToolsServer::default).await;
    let own = serve(|| NamedToolsServer(vec!["gh__echo", "zz__own", "plain"])).await;
    let unprefixed = McpServerConfig { prefix: String::new(), ..server("files", &own.url) };
    let gw = gateway(config("shadow", vec![server("gh", &gh.url), unprefixed], allow_all())).await;
    let s = Session::open(&gw.url, None).await;
    let names = s.tool_names().await;
    assert_eq!(names.iter().filter(|n| *n == "gh__echo").count(), 1, "listed once: {names:?}");
    assert!(names.contains(&"zz__own".to_string()) && names.contains(&"plain".to_string()), "{names:?}");
    let v = s.call(1, "tools/call", json!({"name": "gh__echo", "arguments": {"text": "hi"}})).await;
    assert_eq!(text_of(&v), "hi", "gh__echo is gh's echo");
    let v = s.call(2, "tools/call", json!({"name": "zz__own", "arguments": {}})).await;
    assert_eq!(text_of(&v), "named zz__own", "no server has prefix zz: the unprefixed one serves it");
    let v = s.call(3, "tools/call", json!({"name": "plain", "arguments": {}})).await;
    assert_eq!(text_of(&v), "named plain");
}

/// A stdio MCP server built on the official Python SDK.
const PY_STDIO_SERVER: &str = r#"
import os
from mcp.server.mcpserver import MCPServer

app = MCPServer("py-stdio")

@app.tool()
def add(a: int, b: int) -> int:
    """Adds two numbers."""
    return a + b

@app.tool()
def pid() -> str:
    """The server's process id."""
    return str(os.getpid())

@app.tool()
def crash() -> str:
    """Ends the server process."""
    os._exit(3)

app.run()
"#;

/// Python servers take a while to start on a busy machine.
fn slow_start(mut s: McpServerConfig) -> McpServerConfig {
    s.timeout_ms = 60_000;
    s
}

fn py_server_script() -> tempfile::TempPath {
    let mut f = tempfile::Builder::new().suffix(".py").tempfile().unwrap();
    std::io::Write::write_all(&mut f, PY_STDIO_SERVER.as_bytes()).unwrap();
    f.into_temp_path()
}

/// `cairn mcp-bridge` as a process.
struct Bridge {
    url: String,
    child: std::process::Child,
}

impl Drop for Bridge {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn bridge(extra: &[&str], script: &std::path::Path) -> Bridge {
    let port = support::free_port();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["mcp-bridge", "--address", "127.0.0.1", "--port", &port.to_string()])
        .args(extra)
        .arg("--")
        .arg(support::python())
        .arg(script)
        .spawn()
        .expect("starting cairn mcp-bridge");
    let b = Bridge { url: format!("http://127.0.0.1:{port}/mcp"), child };
    let health = format!("http://127.0.0.1:{port}/healthz");
    support::wait_until(Duration::from_secs(30), "the bridge answers /healthz", || {
        let health = health.clone();
        async move {
            let r = client().get(health.parse().unwrap()).await.ok()?;
            (r.status() == 200).then_some(())
        }
    })
    .await;
    b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridge_serves_a_stdio_server_one_child_per_session_and_restarts_it() {
    let script = py_server_script();
    let b = bridge(&[], &script).await;
    let gw = gateway(config("bridged", vec![slow_start(server("py", &b.url))], allow_all())).await;
    let s1 = Session::open(&gw.url, None).await;
    assert_eq!(s1.tool_names().await, ["py__add", "py__pid", "py__crash"]);
    let v = s1.call(1, "tools/call", json!({"name": "py__add", "arguments": {"a": 2, "b": 3}})).await;
    assert_eq!(text_of(&v), "5");
    let pid1 =
        text_of(&s1.call(2, "tools/call", json!({"name": "py__pid", "arguments": {}})).await).to_string();
    let s2 = Session::open(&gw.url, None).await;
    let pid2 =
        text_of(&s2.call(1, "tools/call", json!({"name": "py__pid", "arguments": {}})).await).to_string();
    assert_ne!(pid1, pid2, "one child per session");

    // The child dies mid-call: the call fails, the next one gets a new child.
    let v = s1.call(3, "tools/call", json!({"name": "py__crash", "arguments": {}})).await;
    assert!(v["error"]["code"].is_i64(), "{v}");
    let v = s1.call(4, "tools/call", json!({"name": "py__pid", "arguments": {}})).await;
    let pid3 = text_of(&v).to_string();
    assert_ne!(pid3, pid1, "restarted");
    let v = s1.call(5, "tools/call", json!({"name": "py__add", "arguments": {"a": 1, "b": 1}})).await;
    assert_eq!(text_of(&v), "2");

    // Ending the session stops its child; the bridge forgets it.
    let h = [("mcp-session-id", s2.id.as_str()), ("mcp-protocol-version", "2025-06-18")];
    assert_eq!(send("DELETE", &gw.url, &h, String::new()).await.status, 200);

    // Oversize messages are refused at the bridge; a request cannot pick the command.
    let big = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "x".repeat(5 << 20), "version": "1"}}});
    assert_eq!(post(&b.url, &[], big).await.status, 413);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridge_shares_one_child_with_shared() {
    let script = py_server_script();
    let b = bridge(&["--shared"], &script).await;
    let gw = gateway(config("bridged-shared", vec![slow_start(server("py", &b.url))], allow_all())).await;
    let s1 = Session::open(&gw.url, None).await;
    let s2 = Session::open(&gw.url, None).await;
    let p1 =
        text_of(&s1.call(1, "tools/call", json!({"name": "py__pid", "arguments": {}})).await).to_string();
    let p2 =
        text_of(&s2.call(1, "tools/call", json!({"name": "py__pid", "arguments": {}})).await).to_string();
    assert_eq!(p1, p2);
    let v = s2.call(2, "tools/call", json!({"name": "py__add", "arguments": {"a": 20, "b": 22}})).await;
    assert_eq!(text_of(&v), "42");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_mode_runs_stdio_servers_in_process() {
    let script = py_server_script();
    let mut s = server("py", "");
    s.endpoint = McpEndpoint::Stdio {
        command: vec![
            support::python().to_string_lossy().into_owned(),
            script.to_string_lossy().into_owned(),
        ],
        env: Default::default(),
        secret_env: Default::default(),
        per_session: true,
    };
    s.timeout_ms = 30_000;
    let gw = gateway(config("local-stdio", vec![s], allow_all())).await;
    let sess = Session::open(&gw.url, None).await;
    assert_eq!(sess.tool_names().await, ["py__add", "py__pid", "py__crash"]);
    let v = sess.call(1, "tools/call", json!({"name": "py__add", "arguments": {"a": 4, "b": 5}})).await;
    assert_eq!(text_of(&v), "9");
}

/// `cairn run -f` serves MCPGateways from manifests: a remote server and a stdio server run as a
/// child process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cairn_run_serves_the_mcp_layer() {
    let gh = serve(ToolsServer::default).await;
    let script = py_server_script();
    let dir = tempfile::tempdir().unwrap();
    let port = support::free_port();
    let admin = support::free_port();
    let manifests = format!(
        r#"apiVersion: cairn.dev/v1alpha1
kind: MCPGateway
metadata: {{name: tools}}
spec:
  listener: {{port: {port}}}
  defaultAction: Allow
  auth: {{allowAnonymous: true}}
---
apiVersion: cairn.dev/v1alpha1
kind: MCPServer
metadata: {{name: gh}}
spec:
  gatewayRefs: [{{name: tools}}]
  url: {url}
  tools: {{allow: ["*"], deny: ["delete_*"]}}
---
apiVersion: cairn.dev/v1alpha1
kind: MCPServer
metadata: {{name: py}}
spec:
  gatewayRefs: [{{name: tools}}]
  timeout: 60s
  deployment:
    image: python:3.12-slim
    command: ["{python}", "{script}"]
    transport: Stdio
    sessions: PerSession
"#,
        url = gh.url,
        python = support::python().display(),
        script = script.display(),
    );
    std::fs::write(dir.path().join("tools.yaml"), manifests).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["run", "-f"])
        .arg(dir.path())
        .args(["--admin-port", &admin.to_string()])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // stdout carries the audit lines.
    let (lines_tx, lines) = std::sync::mpsc::channel::<String>();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)).map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    let url = format!("http://127.0.0.1:{port}/mcp");
    let probe = url.clone();
    support::wait_until(Duration::from_secs(30), "cairn run serves the MCP gateway", || {
        let probe = probe.clone();
        async move {
            let r = client().get(probe.parse().unwrap()).await.ok()?;
            (r.status() != 0).then_some(())
        }
    })
    .await;
    let s = Session::open(&url, None).await;
    let names = s.tool_names().await;
    assert!(names.contains(&"gh__echo".to_string()) && names.contains(&"py__add".to_string()), "{names:?}");
    assert!(!names.contains(&"gh__delete_repo".to_string()));
    let v = s.call(1, "tools/call", json!({"name": "py__add", "arguments": {"a": 1, "b": 2}})).await;
    assert_eq!(text_of(&v), "3");

    // One audit line per tool call, with a digest of the arguments and not the arguments.
    let audit: Value = loop {
        let line = lines.recv_timeout(Duration::from_secs(20)).expect("an audit line on stdout");
        if let Ok(v) = serde_json::from_str::<Value>(&line)
            && v["kind"] == "mcp.tool_call"
        {
            break v;
        }
    };
    assert_eq!(audit["server"], "py");
    assert_eq!(audit["tool"], "add");
    assert_eq!(audit["subject"], "anonymous");
    assert_eq!(audit["outcome"], "ok");
    assert_eq!(audit["gateway"], "default/tools");
    assert_eq!(audit["arguments_sha256"].as_str().unwrap().len(), 64);
    assert!(audit.get("arguments").is_none());
    assert!(audit["latency_ms"].as_f64().is_some());
    assert!(!audit["session"].as_str().unwrap().is_empty());
    // The line names its request's span (exported or not).
    assert_eq!(audit["trace_id"].as_str().map(str::len), Some(32), "{audit}");
    assert_eq!(audit["span_id"].as_str().map(str::len), Some(16), "{audit}");

    // The MCP metrics are on the admin port.
    let m = client().get(format!("http://127.0.0.1:{admin}/metrics").parse().unwrap()).await.unwrap();
    let text = String::from_utf8_lossy(&m.into_body().collect().await.unwrap().to_bytes()).into_owned();
    // Without `telemetry.subjectLabels` the caller is not a label value.
    assert!(text.contains("cairn_mcp_tool_calls_total{gateway=\"default/tools\",server=\"py\",tool=\"add\",subject=\"\",outcome=\"ok\"} 1"), "{text}");
    let _ = child.kill();
    let _ = child.wait();
}

/// The reference "everything" server from the npm registry (installed once into the test
/// platform's cache with `npm install`), as a stdio server behind `cairn mcp-bridge` behind the
/// gateway.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reference_everything_server_behind_the_bridge() {
    const PACKAGE: &str = "@modelcontextprotocol/server-everything@2026.8.31";
    let home = std::env::var("HOME").expect("HOME");
    let prefix = std::path::PathBuf::from(home).join(".cache/cairn-test-platform/npm-everything");
    let entry = prefix.join("node_modules/@modelcontextprotocol/server-everything/dist/index.js");
    if !entry.exists() {
        let st = tokio::process::Command::new("npm")
            .args(["install", "--silent", "--no-audit", "--no-fund", "--prefix"])
            .arg(&prefix)
            .arg(PACKAGE)
            .status()
            .await
            .expect("npm is installed");
        assert!(st.success(), "npm install {PACKAGE} failed");
    }
    let port = support::free_port();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["mcp-bridge", "--address", "127.0.0.1", "--port", &port.to_string(), "--", "node"])
        .arg(&entry)
        .arg("stdio")
        .spawn()
        .unwrap();
    let bridge_url = format!("http://127.0.0.1:{port}/mcp");
    let health = format!("http://127.0.0.1:{port}/healthz");
    support::wait_until(Duration::from_secs(30), "the bridge answers /healthz", || {
        let health = health.clone();
        async move { (client().get(health.parse().unwrap()).await.ok()?.status() == 200).then_some(()) }
    })
    .await;
    let gw = gateway(config("everything", vec![slow_start(server("ev", &bridge_url))], allow_all())).await;
    let s = Session::open(&gw.url, None).await;
    let names = s.tool_names().await;
    for want in ["ev__echo", "ev__get-sum", "ev__trigger-long-running-operation"] {
        assert!(names.iter().any(|n| n == want), "{want} in {names:?}");
    }
    let v = s.call(1, "tools/call", json!({"name": "ev__echo", "arguments": {"message": "hi"}})).await;
    assert_eq!(text_of(&v), "Echo: hi");
    let v = s.call(2, "tools/call", json!({"name": "ev__get-sum", "arguments": {"a": 1, "b": 2}})).await;
    assert_eq!(text_of(&v), "The sum of 1 and 2 is 3.");
    // Progress from the stdio server reaches the client through bridge and gateway.
    let r = s
        .post(req(3, "tools/call", json!({"name": "ev__trigger-long-running-operation", "arguments": {"duration": 1, "steps": 2}, "_meta": {"progressToken": 7}})))
        .await;
    let msgs = r.messages();
    assert!(
        msgs.iter().any(|m| m["method"] == "notifications/progress" && m["params"]["progressToken"] == 7),
        "{}",
        r.body
    );
    assert!(r.json()["result"]["content"].is_array(), "{}", r.body);
    // Prompts and resources are listed under the prefix and read back through it.
    let v = s.call(4, "resources/list", json!({})).await;
    let uri = v["result"]["resources"][0]["uri"].as_str().expect("a resource").to_string();
    assert!(uri.starts_with("ev+"), "{uri}");
    let v = s.call(5, "resources/read", json!({"uri": uri})).await;
    assert_eq!(v["result"]["contents"][0]["uri"], uri);
    let v = s.call(6, "prompts/list", json!({})).await;
    assert!(
        v["result"]["prompts"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["name"].as_str().unwrap().starts_with("ev__"))
    );
    let _ = child.kill();
    let _ = child.wait();
}

/// A backend's request to the client (sampling) reaches the client on the call's stream with a
/// routable id, and the client's answer goes back to that backend.
#[tokio::test]
async fn server_to_client_requests_are_routed_back() {
    let gh = serve(ToolsServer::default).await;
    let gw = gateway(config("sampling", vec![server("gh", &gh.url)], allow_all())).await;
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {"sampling": {}}, "clientInfo": {"name": "test", "version": "1"}}});
    let r = post(&gw.url, &[], init).await;
    let sid = r.session();
    let h = |b: http::request::Builder| {
        b.header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-session-id", &sid)
            .header("mcp-protocol-version", "2025-06-18")
    };
    let call = req(1, "tools/call", json!({"name": "gh__sample", "arguments": {}}));
    let resp = client()
        .request(
            h(http::Request::builder().method("POST").uri(&gw.url))
                .body(Full::new(Bytes::from(call.to_string())))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    let mut buf = String::new();
    let mut answered = false;
    let result = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(Ok(f)) = body.frame().await {
            let Ok(d) = f.into_data() else { continue };
            buf.push_str(&String::from_utf8_lossy(&d));
            for m in buf.lines().filter_map(|l| l.strip_prefix("data:")).filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok()) {
                if m["method"] == "sampling/createMessage" && !answered {
                    let id = m["id"].clone();
                    assert!(id.as_str().unwrap().starts_with("cairn:gh:"), "{id}");
                    let answer = json!({"jsonrpc": "2.0", "id": id, "result": {
                        "role": "assistant", "content": {"type": "text", "text": "from the client"}, "model": "test-model"}});
                    let r = client()
                        .request(h(http::Request::builder().method("POST").uri(&gw.url)).body(Full::new(Bytes::from(answer.to_string()))).unwrap())
                        .await
                        .unwrap();
                    assert_eq!(r.status(), 202);
                    answered = true;
                }
                if m["id"] == 1 {
                    return m;
                }
            }
        }
        panic!("the stream ended without the call's response: {buf}");
    })
    .await
    .expect("the call completes");
    assert!(answered);
    assert_eq!(text_of(&result), "sampled: from the client");
}

/// A session unused for longer than the idle timeout is gone (404); one in use lives on.
#[tokio::test]
async fn idle_sessions_expire() {
    let gh = serve(ToolsServer::default).await;
    let mut cfg = config("idle", vec![server("gh", &gh.url)], allow_all());
    cfg.mcp.as_mut().unwrap().session_idle_timeout_ms = 2_000;
    let gw = gateway(cfg).await;
    let idle = Session::open(&gw.url, None).await;
    let busy = Session::open(&gw.url, None).await;
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(busy.post(req(1, "ping", json!({}))).await.status, 200);
    }
    assert_eq!(idle.post(req(1, "ping", json!({}))).await.status, 404);
}

/// The gateway as an OAuth resource server: a JWT from the trusted issuer whose audience is the
/// gateway's resource is served; one minted for another audience is refused with 401.
#[tokio::test]
async fn jwt_callers_and_the_audience_check() {
    use base64::Engine;
    use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap();
    let public = pair.public_key().as_ref();
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let jwks = json!({"keys": [{"kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": "k1",
        "x": b64(&public[1..33]), "y": b64(&public[33..65])}]});
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let jwks_url = format!("http://{}/jwks", listener.local_addr().unwrap());
    let jwks_task = tokio::spawn(async move {
        let app = axum::Router::new().fallback(move || {
            let body = jwks.to_string();
            async move { ([("content-type", "application/json")], body) }
        });
        let _ = axum::serve(listener, app).await;
    });
    const ISSUER: &str = "https://login.example.com";
    const RESOURCE: &str = "https://mcp.example.com/mcp";
    let sign = |aud: &str| {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.kid = Some("k1".into());
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        let claims = json!({"iss": ISSUER, "sub": "user-42", "aud": aud, "exp": now + 600, "iat": now});
        jsonwebtoken::encode(&header, &claims, &jsonwebtoken::EncodingKey::from_ec_der(pkcs8.as_ref()))
            .unwrap()
    };

    let gh = serve(ToolsServer::default).await;
    let mut policy = bot_policy();
    policy.subjects[0]
        .identities
        .push(IdentityConfig::Jwt { issuer: ISSUER.into(), subject: "user-42".into() });
    let mut cfg = config("jwt", vec![server("gh", &gh.url)], policy);
    cfg.auth.allow_anonymous = false;
    cfg.auth.jwt = vec![cairn::config::JwtIssuerConfig {
        issuer: ISSUER.into(),
        audiences: vec![RESOURCE.into()],
        jwks_uri: Some(jwks_url),
        subject_claim: "sub".into(),
    }];
    cfg.mcp.as_mut().unwrap().oauth = Some(OAuthConfig {
        resource: RESOURCE.into(),
        authorization_servers: vec![ISSUER.into()],
        scopes: vec![],
    });
    let gw = gateway(cfg).await;

    let good = sign(RESOURCE);
    let s = Session::open(&gw.url, Some(&good)).await;
    assert_eq!(
        s.tool_names().await,
        ["gh__echo", "gh__search_code", "gh__delete_repo"],
        "the JWT's subject is the Agent bot"
    );

    let wrong = sign("https://other.example.com");
    let r = post(&gw.url, &[("authorization", &format!("Bearer {wrong}"))], init_body("2025-06-18")).await;
    assert_eq!(r.status, 401, "{}", r.body);
    let www = r.headers.get("www-authenticate").unwrap().to_str().unwrap();
    assert!(www.contains("resource_metadata=") && www.contains("invalid_token"), "{www}");
    jwks_task.abort();
}

/// `subscriptions/listen` (2026-07-28): an acknowledgement, then the list changes the client
/// opted in to, tagged with its subscription id.
#[tokio::test]
async fn stateless_subscriptions_listen_relays_list_changes() {
    let tools = ToolsServer::default();
    let gh = serve(move || tools.clone()).await;
    let gw = gateway(config("listen", vec![server("gh", &gh.url)], allow_all())).await;
    let mut b = http::Request::builder()
        .method("POST")
        .uri(&gw.url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream");
    for (k, v) in modern_headers("subscriptions/listen", None) {
        b = b.header(k, v);
    }
    let listen = modern(41, "subscriptions/listen", json!({"notifications": {"toolsListChanged": true}}));
    let resp = client().request(b.body(Full::new(Bytes::from(listen.to_string()))).unwrap()).await.unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    let mut buf = String::new();
    let ack = next_message(&mut body, &mut buf, "notifications/subscriptions/acknowledged").await;
    assert_eq!(ack["params"]["notifications"], json!({"toolsListChanged": true}));
    assert_eq!(ack["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"], 41);
    let r = post(
        &gw.url,
        &modern_headers("tools/call", Some("gh__changed_all")),
        modern(42, "tools/call", json!({"name": "gh__changed_all", "arguments": {}})),
    )
    .await;
    assert_eq!(text_of(&r.json()), "announced");
    let changed = next_message(&mut body, &mut buf, "notifications/tools/list_changed").await;
    assert_eq!(changed["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"], 41);
}

/// Reads an SSE body until a message with `method` arrives.
async fn next_message(body: &mut hyper::body::Incoming, buf: &mut String, method: &str) -> Value {
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            if let Some(m) = buf
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
                .find(|m| m["method"] == method)
            {
                return m;
            }
            match body.frame().await {
                Some(Ok(f)) => {
                    if let Ok(d) = f.into_data() {
                        buf.push_str(&String::from_utf8_lossy(&d));
                    }
                }
                _ => panic!("the stream ended before {method}: {buf}"),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {method} in time"))
}

/// The bridge ends sessions nobody uses (their children stop): a client that went away without
/// DELETE does not leave a process behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridge_ends_idle_sessions() {
    let script = py_server_script();
    let b = bridge(&["--session-idle-timeout-secs", "1"], &script).await;
    let r = post(&b.url, &[], init_body("2025-06-18")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let sid = r.session();
    let h = [("mcp-session-id", sid.as_str()), ("mcp-protocol-version", "2025-06-18")];
    assert_eq!(post(&b.url, &h, req(1, "tools/list", json!({}))).await.status, 200);
    // Unused for well over the timeout (and the reaper runs every second): gone. Any request
    // would count as use, so the check comes once, at the end.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(post(&b.url, &h, req(2, "ping", json!({}))).await.status, 404);
}

/// `notifications/cancelled` from the client reaches the backend working on the request.
#[tokio::test]
async fn cancellation_reaches_the_backend() {
    let tools = ToolsServer::default();
    let (calls, cancelled) = (tools.calls.clone(), tools.cancelled.clone());
    let gh = serve(move || tools.clone()).await;
    let gw = gateway(config("cancel", vec![server("gh", &gh.url)], allow_all())).await;
    let s = Arc::new(Session::open(&gw.url, None).await);
    let caller = s.clone();
    let call = tokio::spawn(async move {
        caller.post(req(7, "tools/call", json!({"name": "gh__wait", "arguments": {}}))).await
    });
    support::wait_until(Duration::from_secs(20), "the backend works on the call", || {
        let calls = calls.clone();
        async move { (calls.load(std::sync::atomic::Ordering::SeqCst) >= 1).then_some(()) }
    })
    .await;
    let r = s.post(json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 7, "reason": "user"}})).await;
    assert_eq!(r.status, 202);
    support::wait_until(Duration::from_secs(20), "the backend saw the cancellation", || {
        let cancelled = cancelled.clone();
        async move { (cancelled.load(std::sync::atomic::Ordering::SeqCst) >= 1).then_some(()) }
    })
    .await;
    call.abort();
}

/// One SSE event: its id and data.
#[derive(Debug)]
struct Event {
    id: Option<String>,
    data: String,
}

impl Event {
    fn json(&self) -> Value {
        serde_json::from_str(&self.data).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"))
    }
}

/// An SSE body read event by event.
struct Events {
    body: Option<hyper::body::Incoming>,
    buf: String,
}

impl Events {
    /// The next event (comments skipped).
    async fn next(&mut self) -> Event {
        tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                if let Some(end) = self.buf.find("\n\n") {
                    let raw: String = self.buf.drain(..end + 2).collect();
                    let mut ev = Event { id: None, data: String::new() };
                    let mut has_field = false;
                    for line in raw.lines() {
                        if let Some(v) = line.strip_prefix("id:") {
                            ev.id = Some(v.trim_start().to_string());
                            has_field = true;
                        } else if let Some(v) = line.strip_prefix("data:") {
                            ev.data.push_str(v.trim_start());
                            has_field = true;
                        }
                    }
                    if has_field {
                        return ev;
                    }
                    continue;
                }
                match self.body.as_mut().expect("a 200 with a body").frame().await {
                    Some(Ok(f)) => {
                        if let Ok(d) = f.into_data() {
                            self.buf.push_str(&String::from_utf8_lossy(&d));
                        }
                    }
                    _ => panic!("the stream ended: {}", self.buf),
                }
            }
        })
        .await
        .expect("an event in time")
    }
}

/// Sends a request and returns the status and, for a 200, its SSE body.
async fn open_stream(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: String,
) -> (u16, Events, String) {
    let resp = request(method, url, headers, body).await;
    let status = resp.status().as_u16();
    if status != 200 {
        let text = resp.into_body().collect().await.unwrap().to_bytes();
        let empty = Events { body: None, buf: String::new() };
        return (status, empty, String::from_utf8_lossy(&text).into_owned());
    }
    (status, Events { body: Some(resp.into_body()), buf: String::new() }, String::new())
}

fn spawn_mcp_gateway(dir: &std::path::Path, cfg: &GatewayConfig, port: u16) -> Proc {
    let creds = json!({SESSION_KEY: "test-session-key"}).to_string();
    Proc(support::spawn_gateway("mcp", dir, &cfg.to_json(), port, &creds))
}

/// An answer on SSE cut after its first progress event is resumed with `Last-Event-ID` on a
/// second gateway process sharing the first one's Redis: the events after the id, then the
/// response; the priming event's id replays the whole answer; ids that cannot be resumed from
/// get a 400 saying why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_answer_resumes_on_another_gateway_process_sharing_redis() {
    let redis = support::Redis::start();
    let tools = ToolsServer::default();
    let release = tools.release.clone();
    let gh = serve(move || tools.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let (pa, pb) = (support::free_port(), support::free_port());
    let mut cfgs = vec![];
    for port in [pa, pb] {
        let mut cfg = config("resume", vec![server("gh", &gh.url)], allow_all());
        cfg.listener.port = port;
        cfg.store =
            Some(serde_json::from_value(json!({"redisUrl": redis.url, "failureMode": "closed"})).unwrap());
        cfgs.push(cfg);
    }
    let _a = spawn_mcp_gateway(dir.path(), &cfgs[0], pa);
    let _b = spawn_mcp_gateway(dir.path(), &cfgs[1], pb);
    for port in [pa, pb] {
        support::wait_until(Duration::from_secs(20), "the gateway listens", || async move {
            tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok().map(|_| ())
        })
        .await;
    }
    let (url_a, url_b) = (format!("http://127.0.0.1:{pa}/mcp"), format!("http://127.0.0.1:{pb}/mcp"));
    let s = Session::open_version(&url_a, None, "2025-11-25").await;
    let h = [("mcp-session-id", s.id.as_str()), ("mcp-protocol-version", "2025-11-25")];
    let call = req(
        5,
        "tools/call",
        json!({"name": "gh__progress_wait", "arguments": {}, "_meta": {"progressToken": "p"}}),
    );
    let (status, mut events, _) = open_stream("POST", &url_a, &h, call.to_string()).await;
    assert_eq!(status, 200);
    let priming = events.next().await;
    assert_eq!(priming.data, "", "a 2025-11-25 stream starts with a priming event: {priming:?}");
    let priming_id = priming.id.expect("the priming event has an id");
    let first = events.next().await;
    assert_eq!(first.json()["params"]["progress"], 1.0, "{first:?}");
    let first_id = first.id.expect("events have ids");
    assert_ne!(first_id, priming_id);
    drop(events); // the connection breaks
    release.notify_one();

    let resume = |id: &str| {
        let mut h = h.to_vec();
        h.push(("last-event-id", id));
        h.into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<Vec<_>>()
    };
    let get = |url: String, h: Vec<(String, String)>| async move {
        let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        open_stream("GET", &url, &h, String::new()).await
    };
    let (status, mut events, body) = get(url_b.clone(), resume(&first_id)).await;
    assert_eq!(status, 200, "{body}");
    let second = events.next().await;
    assert_eq!(second.json()["params"]["progress"], 2.0, "{second:?}");
    let last = events.next().await;
    assert_eq!(text_of(&last.json()), "resumed");
    assert_eq!(last.json()["id"], 5);
    let ids = [&first_id, second.id.as_ref().unwrap(), last.id.as_ref().unwrap()];
    let stream = |id: &str| id.rsplit_once('-').unwrap().0.to_string();
    assert!(ids.iter().all(|i| stream(i) == stream(&priming_id)), "one stream: {ids:?}");

    // From the priming event: the whole answer, on either gateway.
    let (status, mut events, body) = get(url_a.clone(), resume(&priming_id)).await;
    assert_eq!(status, 200, "{body}");
    let replayed: Vec<Value> =
        [events.next().await, events.next().await, events.next().await].iter().map(Event::json).collect();
    assert_eq!(replayed[0]["params"]["progress"], 1.0);
    assert_eq!(replayed[1]["params"]["progress"], 2.0);
    assert_eq!(text_of(&replayed[2]), "resumed");

    // Ids that cannot be resumed from.
    let (status, _, body) = get(url_b.clone(), resume("not-an-id")).await;
    assert_eq!(
        (status, body.as_str()),
        (400, "Bad Request: Last-Event-ID \"not-an-id\" is not an event id of this gateway")
    );
    let unknown = "r0123456789abcdef-1";
    let (status, _, body) = get(url_b.clone(), resume(unknown)).await;
    assert_eq!(status, 400);
    assert!(
        body.starts_with(&format!(
            "Bad Request: Last-Event-ID {unknown} names no stream of this session that is still held"
        )),
        "{body}"
    );
    assert!(body.ends_with("open a new stream without Last-Event-ID"), "{body}");
    let beyond = format!("{}-99", stream(&priming_id));
    let (status, _, body) = get(url_a.clone(), resume(&beyond)).await;
    assert_eq!(status, 400);
    assert!(body.contains("names no stream of this session"), "{body}");
    // Another session cannot read this one's streams.
    let other = Session::open_version(&url_b, None, "2025-11-25").await;
    let h2 = vec![
        ("mcp-session-id".to_string(), other.id.clone()),
        ("mcp-protocol-version".to_string(), "2025-11-25".to_string()),
        ("last-event-id".to_string(), first_id.clone()),
    ];
    let (status, _, body) = get(url_b.clone(), h2).await;
    assert_eq!(status, 400);
    assert!(body.contains("names no stream of this session"), "{body}");
}

/// The standalone stream: a priming event, ids on its events; resumed from the priming id it
/// replays what was sent after it and goes on live on the same stream.
#[tokio::test]
async fn the_standalone_stream_resumes_from_last_event_id() {
    let gh = serve(ToolsServer::default).await;
    let gw = gateway(config("resume-get", vec![server("gh", &gh.url)], allow_all())).await;
    let s = Session::open_version(&gw.url, None, "2025-11-25").await;
    let h = [("mcp-session-id", s.id.as_str()), ("mcp-protocol-version", "2025-11-25")];
    let (status, mut events, body) = open_stream("GET", &gw.url, &h, String::new()).await;
    assert_eq!(status, 200, "{body}");
    let priming = events.next().await;
    assert_eq!(priming.data, "");
    let priming_id = priming.id.unwrap();
    let v = s.call(1, "tools/call", json!({"name": "gh__changed", "arguments": {}})).await;
    assert_eq!(text_of(&v), "will change");
    let changed = events.next().await;
    assert_eq!(changed.json()["method"], "notifications/tools/list_changed");
    let changed_id = changed.id.unwrap();
    drop(events);

    let mut hr = h.to_vec();
    hr.push(("last-event-id", priming_id.as_str()));
    let (status, mut events, body) = open_stream("GET", &gw.url, &hr, String::new()).await;
    assert_eq!(status, 200, "{body}");
    let replayed = events.next().await;
    assert_eq!(replayed.id.as_deref(), Some(changed_id.as_str()));
    assert_eq!(replayed.json()["method"], "notifications/tools/list_changed");
    // Live again: a new change arrives on the same stream, numbered after the replayed event.
    let seq = |id: &str| id.rsplit_once('-').unwrap().1.parse::<u64>().unwrap();
    let stream = |id: &str| id.rsplit_once('-').unwrap().0.to_string();
    s.call(2, "tools/call", json!({"name": "gh__changed", "arguments": {}})).await;
    let live = events.next().await;
    assert_eq!(live.json()["method"], "notifications/tools/list_changed");
    let live_id = live.id.unwrap();
    assert_eq!(stream(&live_id), stream(&priming_id));
    assert!(seq(&live_id) > seq(&changed_id), "{live_id} after {changed_id}");
}

/// `subscriptions/listen` with `resourceSubscriptions`: the resources the caller may see and
/// their servers accept are subscribed at those servers (under their own URIs) and acknowledged;
/// their updates come back with the gateway's URI and the subscription id; a malformed list is
/// -32602.
#[tokio::test]
async fn stateless_listen_subscribes_resources_at_their_servers() {
    let tools = ToolsServer::default();
    let gh = serve(move || tools.clone()).await;
    let gw = gateway(config("listen-res", vec![server("gh", &gh.url)], allow_all())).await;
    let listen = |params: Value| {
        let url = gw.url.clone();
        async move {
            let h = modern_headers("subscriptions/listen", None);
            open_stream("POST", &url, &h, modern(51, "subscriptions/listen", params).to_string()).await
        }
    };
    let bad = json!({"notifications": {"resourceSubscriptions": "gh+file:///readme.txt"}});
    let r =
        post(&gw.url, &modern_headers("subscriptions/listen", None), modern(50, "subscriptions/listen", bad))
            .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["error"]["code"], -32602, "{v}");
    assert_eq!(
        v["error"]["message"],
        "subscriptions/listen: notifications.resourceSubscriptions must be a list of resource URIs"
    );

    let wanted =
        ["gh+file:///readme.txt", "gh+file:///nothing", "zz+file:///readme.txt", "file:///readme.txt"];
    let (status, mut events, body) =
        listen(json!({"notifications": {"toolsListChanged": true, "resourceSubscriptions": wanted}})).await;
    assert_eq!(status, 200, "{body}");
    let ack = events.next().await.json();
    assert_eq!(ack["method"], "notifications/subscriptions/acknowledged");
    assert_eq!(
        ack["params"]["notifications"],
        json!({"toolsListChanged": true, "resourceSubscriptions": ["gh+file:///readme.txt"]})
    );
    let r = post(
        &gw.url,
        &modern_headers("tools/call", Some("gh__touch")),
        modern(52, "tools/call", json!({"name": "gh__touch", "arguments": {"text": "file:///readme.txt"}})),
    )
    .await;
    assert_eq!(text_of(&r.json()), "touched 1 subscribers");
    let updated = events.next().await.json();
    assert_eq!(updated["method"], "notifications/resources/updated", "{updated}");
    assert_eq!(updated["params"]["uri"], "gh+file:///readme.txt");
    assert_eq!(updated["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"], 51);
}

/// Session era: `resources/subscribe` and `unsubscribe` reach the owning server with its own URI;
/// updates come on the standalone stream with the gateway's URI.
#[tokio::test]
async fn session_resource_subscriptions_route_to_the_owning_server() {
    let tools = ToolsServer::default();
    let gh = serve(move || tools.clone()).await;
    let gw = gateway(config("subscribe", vec![server("gh", &gh.url)], allow_all())).await;
    let s = Session::open(&gw.url, None).await;
    let v = s.call(1, "resources/subscribe", json!({"uri": "gh+file:///readme.txt"})).await;
    assert_eq!(v["result"], json!({}), "{v}");
    let v = s.call(2, "resources/subscribe", json!({"uri": "gh+file:///nothing"})).await;
    assert_eq!(v["error"]["code"], -32002, "{v}");
    let v = s.call(3, "resources/subscribe", json!({"uri": "zz+file:///readme.txt"})).await;
    assert_eq!(v["error"]["message"], "Resource not found: zz+file:///readme.txt", "{v}");
    let h = [("mcp-session-id", s.id.as_str()), ("mcp-protocol-version", "2025-06-18")];
    let (status, mut events, body) = open_stream("GET", &gw.url, &h, String::new()).await;
    assert_eq!(status, 200, "{body}");
    let v = s
        .call(4, "tools/call", json!({"name": "gh__touch", "arguments": {"text": "file:///readme.txt"}}))
        .await;
    assert_eq!(text_of(&v), "touched 1 subscribers");
    let updated = events.next().await.json();
    assert_eq!(updated["method"], "notifications/resources/updated");
    assert_eq!(updated["params"]["uri"], "gh+file:///readme.txt");
    let v = s.call(5, "resources/unsubscribe", json!({"uri": "gh+file:///readme.txt"})).await;
    assert_eq!(v["result"], json!({}), "{v}");
    let v = s
        .call(6, "tools/call", json!({"name": "gh__touch", "arguments": {"text": "file:///readme.txt"}}))
        .await;
    assert_eq!(text_of(&v), "touched 0 subscribers");
}

/// The gateway's own lists come in pages (`nextCursor`, opaque and sealed) in the same order as
/// one long list; a cursor it did not hand out for that method is -32602 naming the cursor.
#[tokio::test]
async fn merged_lists_are_paginated_with_sealed_cursors() {
    let gh = serve(ToolsServer::default).await;
    let pg = serve(|| PagedServer).await;
    let servers = vec![server("gh", &gh.url), server("pg", &pg.url)];
    let whole = gateway(config("pages", servers.clone(), allow_all())).await;
    let paged = gateway_with(config("pages", servers, allow_all()), |rt| rt.page_size = 10).await;
    let all = Session::open(&whole.url, None).await.tool_names().await;
    assert_eq!(all.len(), 13 + 25);
    let s = Session::open(&paged.url, None).await;
    let mut names = vec![];
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let params = match &cursor {
            Some(c) => json!({"cursor": c}),
            None => json!({}),
        };
        let v = s.call(pages, "tools/list", params).await;
        let tools = v["result"]["tools"].as_array().unwrap_or_else(|| panic!("{v}"));
        assert!(tools.len() <= 10, "{v}");
        names.extend(tools.iter().map(|t| t["name"].as_str().unwrap().to_string()));
        pages += 1;
        match v["result"].get("nextCursor").and_then(Value::as_str) {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(pages, 4);
    assert_eq!(names, all, "the pages in order are the one long list");
    // A cursor is bound to its method, tamper-evident, and junk is refused.
    let first = s.call(50, "tools/list", json!({})).await;
    let c = first["result"]["nextCursor"].as_str().unwrap().to_string();
    let v = s.call(51, "prompts/list", json!({"cursor": c})).await;
    assert_eq!(v["error"]["code"], -32602, "{v}");
    let shown: String = c.chars().take(80).collect();
    assert_eq!(
        v["error"]["message"],
        format!("Invalid params: cursor {shown:?} is not a prompts/list cursor of this gateway")
    );
    let mut tampered = c.clone().into_bytes();
    let last = tampered.len() - 1;
    tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let v = s.call(52, "tools/list", json!({"cursor": tampered})).await;
    assert_eq!(v["error"]["code"], -32602, "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().ends_with("is not a tools/list cursor of this gateway"),
        "{v}"
    );
    let v = s.call(53, "resources/list", json!({"cursor": "page-2"})).await;
    assert_eq!(
        v["error"]["message"],
        "Invalid params: cursor \"page-2\" is not a resources/list cursor of this gateway"
    );
    let v = s.call(54, "tools/list", json!({"cursor": 7})).await;
    assert_eq!(
        v["error"]["message"],
        "Invalid params: cursor \"7\" is not a tools/list cursor of this gateway"
    );
    // The stateless era pages the same way.
    let v = post(&paged.url, &modern_headers("tools/list", None), modern(55, "tools/list", json!({})))
        .await
        .json();
    assert_eq!(v["result"]["tools"].as_array().unwrap().len(), 10, "{v}");
    let c = v["result"]["nextCursor"].as_str().unwrap();
    let v =
        post(&paged.url, &modern_headers("tools/list", None), modern(56, "tools/list", json!({"cursor": c})))
            .await
            .json();
    assert_eq!(v["result"]["tools"][0]["name"], all[10].as_str(), "{v}");
}

/// A backend that speaks only 2026-07-28 (rmcp with sessions off, per-request metadata required,
/// `initialize` refused) is detected by `server/discover` and spoken to statelessly, behind both
/// kinds of client, next to a session-era backend.
#[tokio::test]
async fn a_modern_only_backend_is_spoken_to_statelessly() {
    let gh = serve(ToolsServer::default).await;
    let tools = ToolsServer::default();
    let sinks = tools.sinks.clone();
    let md = serve_modern(move || tools.clone()).await;
    let gw = gateway(config("modern", vec![server("gh", &gh.url), server("md", &md.url)], allow_all())).await;
    let s = Session::open(&gw.url, None).await;
    let names = s.tool_names().await;
    assert_eq!(names.len(), 26, "{names:?}");
    assert!(names.contains(&"md__echo".to_string()), "{names:?}");
    let v = s.call(1, "tools/call", json!({"name": "md__echo", "arguments": {"text": "über"}})).await;
    assert_eq!(text_of(&v), "über");
    let r = s
        .post(req(
            2,
            "tools/call",
            json!({"name": "md__progress", "arguments": {}, "_meta": {"progressToken": "tok"}}),
        ))
        .await;
    let msgs = r.messages();
    assert_eq!(msgs.iter().filter(|m| m["method"] == "notifications/progress").count(), 2, "{msgs:?}");
    assert_eq!(text_of(msgs.last().unwrap()), "progressed");
    let v = s.call(3, "resources/read", json!({"uri": "md+file:///readme.txt"})).await;
    assert_eq!(v["result"]["contents"][0]["uri"], "md+file:///readme.txt", "{v}");
    assert_eq!(v["result"]["contents"][0]["text"], "read me");
    let v = s.call(4, "prompts/get", json!({"name": "md__greet", "arguments": {"who": "Ada"}})).await;
    assert_eq!(v["result"]["messages"][0]["content"]["text"], "Hello, Ada!", "{v}");
    let v = s.call(5, "tools/call", json!({"name": "md__explode", "arguments": {}})).await;
    assert_eq!(v["error"]["message"], "exploded", "{v}");
    // A stateless client too.
    let r = post(
        &gw.url,
        &modern_headers("tools/call", Some("md__echo")),
        modern(6, "tools/call", json!({"name": "md__echo", "arguments": {"text": "modern"}})),
    )
    .await;
    assert_eq!(text_of(&r.json()), "modern");
    // Its list changes (on the gateway's subscriptions/listen stream to it) reach the session's
    // standalone stream.
    let h = [("mcp-session-id", s.id.as_str()), ("mcp-protocol-version", "2025-06-18")];
    let (status, mut events, body) = open_stream("GET", &gw.url, &h, String::new()).await;
    assert_eq!(status, 200, "{body}");
    // The backend acknowledges a listen stream before its handler holds it.
    support::wait_until(Duration::from_secs(20), "the backend holds the listen stream", || {
        let n = sinks.lock().unwrap().len();
        async move { (n >= 1).then_some(()) }
    })
    .await;
    let v = s.call(7, "tools/call", json!({"name": "md__changed_all", "arguments": {}})).await;
    assert_eq!(text_of(&v), "announced");
    let changed = events.next().await.json();
    assert_eq!(changed["method"], "notifications/tools/list_changed", "{changed}");
    assert!(changed.pointer("/params/_meta/io.modelcontextprotocol~1subscriptionId").is_none(), "{changed}");
    // Nothing failed on the way.
    let metrics = gw.core.metrics.encode();
    assert!(!metrics.contains("cairn_mcp_backend_errors_total{gateway=\"test/modern\""), "{metrics}");
}

/// Era detection: a backend refusing `server/discover` with a modern error (here an unsupported
/// version) is an error naming the refusal, not a session-era backend; one answering `400`
/// without a modern error falls back to `initialize`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn era_detection_tells_modern_refusals_from_session_era_backends() {
    use cairn::gateway::http_client::HttpClients;
    use cairn::gateway::mcp::upstream::{Transport, Upstream};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    let refusing = tokio::spawn(async move {
        let app = axum::Router::new().fallback(|| async {
            let body = json!({"jsonrpc": "2.0", "id": "cairn-discover", "error": {
                "code": -32022, "message": "Unsupported protocol version", "data": {"supported": ["2099-01-01"]}}});
            (http::StatusCode::BAD_REQUEST, [("content-type", "application/json")], body.to_string())
        });
        let _ = axum::serve(listener, app).await;
    });
    let upstream = |url: &str| Upstream {
        name: "x".into(),
        prefix: "x".into(),
        transport: Transport::Http {
            url: url.parse().unwrap(),
            client: HttpClients::default().unrestricted(0),
        },
        headers: Default::default(),
        timeout: Duration::from_secs(5),
        max_message_bytes: 1 << 20,
        modern: Default::default(),
    };
    let params = json!({"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}});
    let e = upstream(&url).initialize(params.clone()).await.expect_err("a refusal");
    assert_eq!(
        e.to_string(),
        "MCP server sent an invalid answer: server/discover refused: Unsupported protocol version (-32022)"
    );
    // cairn mcp-bridge (session era only) names the versions it speaks: a session-era backend.
    let script = py_server_script();
    let b = bridge(&[], &script).await;
    let r =
        post(&b.url, &modern_headers("server/discover", None), modern(1, "server/discover", json!({}))).await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json()["error"]["data"]["supported"],
        json!(["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"])
    );
    let mut slow = upstream(&b.url);
    slow.timeout = Duration::from_secs(60);
    let (_, session) = slow.initialize(params.clone()).await.expect("initialize through the bridge");
    assert_eq!(session.version, "2025-11-25");
    assert_eq!(slow.modern.get(), Some(&false));
    // The session-era test server answers the stateless probe without a modern error.
    let gh = serve(ToolsServer::default).await;
    let up = upstream(&gh.url);
    let (result, session) = up.initialize(params.clone()).await.expect("initialize");
    assert_eq!(session.version, "2025-11-25");
    assert!(session.id.is_some());
    assert_eq!(result["protocolVersion"], "2025-11-25");
    assert_eq!(up.modern.get(), Some(&false), "the era is cached");
    let md = serve_modern(ToolsServer::default).await;
    let up = upstream(&md.url);
    let (result, session) = up.initialize(params).await.expect("discover");
    assert_eq!((session.id, session.version.as_str()), (None, "2026-07-28"));
    assert_eq!(result["protocolVersion"], "2026-07-28");
    assert_eq!(up.modern.get(), Some(&true));
    refusing.abort();
}

/// When the gateway's store is down, a resumption says so (503) instead of pretending the
/// stream is unknown.
#[tokio::test]
async fn a_resumption_with_the_store_down_is_503() {
    let gh = serve(ToolsServer::default).await;
    let mut cfg = config("resume-down", vec![server("gh", &gh.url)], allow_all());
    let dead = format!("redis://127.0.0.1:{}", support::free_port());
    cfg.store = Some(serde_json::from_value(json!({"redisUrl": dead, "failureMode": "closed"})).unwrap());
    let gw = gateway(cfg).await;
    let s = Session::open_version(&gw.url, None, "2025-11-25").await;
    let h = [
        ("mcp-session-id", s.id.as_str()),
        ("mcp-protocol-version", "2025-11-25"),
        ("last-event-id", "r0123456789abcdef-1"),
    ];
    let (status, _, body) = open_stream("GET", &gw.url, &h, String::new()).await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body.starts_with(&format!(
            "Service Unavailable: the replay buffer is unavailable: limits store unavailable: redis {dead}"
        )),
        "{body}"
    );
}

/// The result a [`json_backend`] answers a `tools/call` with, as it writes it (spaced, so that a
/// client getting these very bytes shows the gateway passed them on untouched): the params it
/// got as text, `isError` when the arguments say `fail`, resource `contents` when they say
/// `contents`.
fn json_backend_result(params: &Value) -> String {
    let args = &params["arguments"];
    let contents =
        if args["contents"] == true { r#", "contents" : [ {"uri":"file:///a","text":"x"} ]"# } else { "" };
    format!(
        r#"{{ "content" : [ {{"type":"text","text":{}}} ] , "isError" : {}{contents} }}"#,
        serde_json::to_string(&params.to_string()).unwrap(),
        args["fail"] == true
    )
}

/// A session-era MCP server answering every request with one JSON body, as many servers (and the
/// benchmark's) do; rmcp answers session-era requests with SSE. `server/discover` gets a 400, so
/// the gateway takes it for a session-era server.
async fn json_backend() -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    let app = axum::Router::new().fallback(|body: Bytes| async move {
        let json = |headers: &[(&str, &str)], body: String| {
            let mut r = http::Response::builder().header("content-type", "application/json");
            for (k, v) in headers {
                r = r.header(*k, *v);
            }
            r.body(axum::body::Body::from(body)).unwrap()
        };
        let m: Value = serde_json::from_slice(&body).unwrap_or_default();
        match (m["method"].as_str(), &m["id"]) {
            (Some("initialize"), id) => json(
                &[("mcp-session-id", "json-backend-1")],
                json!({"jsonrpc": "2.0", "id": id, "result": {"protocolVersion": "2025-11-25",
                    "capabilities": {"tools": {}}, "serverInfo": {"name": "json", "version": "1"}}})
                .to_string(),
            ),
            (Some("tools/call"), id) => json(
                &[],
                format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{}}}"#, json_backend_result(&m["params"])),
            ),
            (Some(_), Value::Null) => {
                http::Response::builder().status(202).body(axum::body::Body::empty()).unwrap()
            }
            _ => http::Response::builder().status(400).body(axum::body::Body::from("no")).unwrap(),
        }
    });
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, task)
}

#[tokio::test]
async fn a_json_answer_reaches_the_client_as_the_server_wrote_it() {
    let (url, backend) = json_backend().await;
    let gw = gateway(config("json", vec![server("j", &url)], allow_all())).await;
    let s = Session::open(&gw.url, None).await;

    // The server gets the client's call with the tool's own name; the client gets the result
    // byte for byte.
    let args = json!({"text": "é \"q\" \\", "n": 1, "deep": {"a": [1.5, null]}});
    let r = s.post(req(1, "tools/call", json!({"name": "j__echo", "arguments": args}))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let got = json_backend_result(&json!({"name": "echo", "arguments": args}));
    assert_eq!(r.body, format!(r#"{{"jsonrpc":"2.0","id":1,"result":{got}}}"#));
    assert_eq!(r.json()["result"]["isError"], false);

    // The same with a string id, and with params the plain path leaves to the general one
    // (`_meta`): the same answer.
    let body = r#"{"jsonrpc":"2.0","id":"a\"b","method":"tools/call","params":{"name":"j__echo","_meta":{"progressToken":7}}}"#;
    let r = send(
        "POST",
        &gw.url,
        &[("mcp-session-id", &s.id), ("mcp-protocol-version", &s.version)],
        body.into(),
    )
    .await;
    let v = r.json();
    assert_eq!(v["id"], "a\"b");
    let seen: Value = serde_json::from_str(text_of(&v)).unwrap();
    assert_eq!(seen, json!({"name": "echo", "_meta": {"progressToken": 7}}));

    // A tool error is counted as one; resource contents in a result still get the prefix.
    let v = s.call(2, "tools/call", json!({"name": "j__echo", "arguments": {"fail": true}})).await;
    assert_eq!(v["result"]["isError"], true);
    let metrics = gw.core.metrics.encode();
    assert!(
        metrics.contains("cairn_mcp_tool_calls_total{gateway=\"test/json\",server=\"j\",tool=\"echo\",subject=\"anonymous\",outcome=\"tool_error\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("cairn_mcp_tool_calls_total{gateway=\"test/json\",server=\"j\",tool=\"echo\",subject=\"anonymous\",outcome=\"ok\"} 2"),
        "{metrics}"
    );
    let v = s.call(3, "tools/call", json!({"name": "j__echo", "arguments": {"contents": true}})).await;
    assert_eq!(v["result"]["contents"][0]["uri"], "j+file:///a", "{v}");

    // A 2026-07-28 client gets `resultType` added to the same result.
    let r = post(
        &gw.url,
        &modern_headers("tools/call", Some("j__echo")),
        modern(4, "tools/call", json!({"name": "j__echo", "arguments": {"n": 2}})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["result"]["resultType"], "complete", "{v}");
    assert_eq!(v["result"]["isError"], false);
    let seen: Value = serde_json::from_str(text_of(&v)).unwrap();
    assert_eq!(seen, json!({"name": "echo", "arguments": {"n": 2}}), "the gateway's _meta is its own");
    backend.abort();
}
