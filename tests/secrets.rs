//! Secrets never reach the logs (issue #16): the three layers run as `cairn gateway` processes at
//! `RUST_LOG=debug`, with a credentials bundle holding a provider key, an MCP server's token, the
//! Redis password, the MCP session-sealing key and the agent gateway's signing key, and callers
//! presenting virtual keys, valid and not. They are driven through successes, auth failures
//! (a wrong caller key; an MCP server and a provider refusing with 401) and upstream errors (500,
//! an agent that is down, a refused webhook). Then every line the processes wrote, stdout (access
//! and audit logs) and stderr (debug logs), is searched for every secret and token used,
//! including the identity tokens the agent gateway minted.

#[path = "support/a2a_agents.rs"]
mod a2a_agents;
#[path = "support/mcp_servers.rs"]
mod mcp_servers;
#[path = "support/mock_llm.rs"]
mod mock_llm;
mod support;

use base64::Engine;
use cairn::config::{SESSION_KEY, SIGNING_KEY, hash_virtual_key};

use mock_llm::{Behavior, MockLlm};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::Proc;
use support::http::request;

const SALT: &str = "00112233445566778899aabbccddeeff";

/// A random secret that says what it is.
fn secret(what: &str) -> String {
    let mut b = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b).unwrap();
    format!("{what}-{}", hex::encode(b))
}

/// A P-256 key in PKCS#8 PEM (what the operator puts in the bundle), and its base64 body.
fn signing_key() -> (String, String) {
    let rng = ring::rand::SystemRandom::new();
    let doc = ring::signature::EcdsaKeyPair::generate_pkcs8(
        &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        &rng,
    )
    .unwrap();
    let b64 = base64::engine::general_purpose::STANDARD.encode(doc.as_ref());
    let lines: Vec<&str> = b64.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).unwrap()).collect();
    (format!("-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n", lines.join("\n")), b64)
}

fn base(layer: &str, port: u16, key: &str) -> Value {
    json!({
        "version": 1,
        "gateway": {"namespace": "secrets", "name": layer, "layer": layer},
        "listener": {"port": port, "maxRequestBytes": 1 << 20},
        "auth": {"allowAnonymous": false, "virtualKeySalt": SALT},
        "telemetry": {"accessLog": true},
        "egress": {"allowLoopback": true},
        "policy": {"defaultAction": "allow",
                   "subjects": [{"name": "alice", "identities": [{"type": "virtualKey", "hash": hash_virtual_key(SALT, key)}]}]}
    })
}

/// An MCP server that records the Authorization header it gets and refuses every call with 401.
async fn locked_server(seen: Arc<Mutex<Vec<String>>>) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
        let seen = seen.clone();
        async move {
            let auth = req.headers().get("authorization").map(|v| v.to_str().unwrap().to_string());
            seen.lock().unwrap().extend(auth);
            (
                http::StatusCode::UNAUTHORIZED,
                [("content-type", "application/json")],
                r#"{"error":"invalid_token"}"#,
            )
        }
    });
    (
        url,
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        }),
    )
}

fn spawn(layer: &str, dir: &std::path::Path, config: &Value, credentials: &Value) -> Proc {
    let port = config["listener"]["port"].as_u64().unwrap() as u16;
    let mut cmd = support::gateway_command(layer, dir, &config.to_string(), port, &credentials.to_string());
    Proc(cmd.env("RUST_LOG", "debug").spawn().expect("cairn gateway starts"))
}

async fn wait_listening(port: u16) {
    support::wait_until(Duration::from_secs(20), "the gateway listens", || async {
        tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok().map(|_| ())
    })
    .await;
}

#[tokio::test]
async fn no_key_or_token_used_reaches_any_log_at_debug_level() {
    let provider_key = secret("sk-provider");
    let mcp_token = secret("ghp-backend");
    let redis_password = secret("redis-password");
    let session_key = secret("session-key");
    let (signing_pem, signing_b64) = signing_key();
    let caller_key = secret("sk-alice");
    let wrong_key = secret("sk-wrong");
    let push_token = secret("push-token");

    let redis = support::Redis::start_with_password(&redis_password);
    let llm = MockLlm::start("llm").await;
    let tools = mcp_servers::serve(mcp_servers::ToolsServer::default).await;
    let locked_seen = Arc::new(Mutex::new(Vec::new()));
    let (locked_url, _locked) = locked_server(locked_seen.clone()).await;
    let agent = a2a_agents::TestAgent::start().await;
    let dir = tempfile::tempdir().unwrap();
    let ports = [support::free_port(), support::free_port(), support::free_port()];
    let credentials = json!({"provider-key": provider_key, "mcp-token": mcp_token, "redis-password": redis_password,
                             SESSION_KEY: session_key, SIGNING_KEY: signing_pem});

    let mut ai = base("ai", ports[0], &caller_key);
    ai["store"] =
        json!({"redisUrl": redis.url, "redisPassword": {"id": "redis-password"}, "failureMode": "closed"});
    ai["ai"] = json!({"backends": [{"name": "llm", "provider": "openai-compatible", "url": format!("{}/v1", llm.url),
                                    "connectTimeoutMs": 2000,
                                    "headers": [{"name": "Authorization", "credential": {"id": "provider-key"}, "prefix": "Bearer "}]}],
                      "rules": [{"route": "r", "name": "0", "matches": [{"model": "m"}],
                                 "targets": [{"backend": "llm", "weight": 1, "priority": 0}], "fallbackOn": [],
                                 "timeouts": {}, "ejection": {"consecutiveFailures": 0, "cooldownMs": 0}}]});
    let mut mcp = base("mcp", ports[1], &caller_key);
    mcp["mcp"] = json!({"servers": [
        {"name": "gh", "prefix": "gh", "endpoint": {"type": "http", "url": tools.url}, "allow": ["*"],
         "timeoutMs": 5000, "auditArguments": true},
        {"name": "locked", "prefix": "locked", "endpoint": {"type": "http", "url": locked_url}, "allow": ["*"],
         "headers": [{"name": "Authorization", "credential": {"id": "mcp-token"}, "prefix": "Bearer "}],
         "timeoutMs": 5000, "auditArguments": true}],
        "sessionIdleTimeoutMs": 600000});
    let mut agents = base("agent", ports[2], &caller_key);
    let down = format!("http://127.0.0.1:{}", support::free_port());
    agents["agent"] = json!({"agents": [
        {"name": "echo", "url": agent.url, "cardPath": "/.well-known/agent-card.json"},
        {"name": "down", "url": down, "cardPath": "/.well-known/agent-card.json"}],
        "taskOwnershipTtlMs": 3600000, "identityTokenTtlMs": 60000, "identityTokenHeader": "X-Cairn-Caller"});
    let _procs = [
        spawn("ai", dir.path(), &ai, &credentials),
        spawn("mcp", dir.path(), &mcp, &credentials),
        spawn("agent", dir.path(), &agents, &credentials),
    ];
    for p in ports {
        wait_listening(p).await;
    }
    let good = format!("Bearer {caller_key}");
    let bad = format!("Bearer {wrong_key}");

    // AI: served, a wrong key, the provider refusing the key (401), failing (500), a stream.
    let chat = json!({"model": "m", "messages": [{"role": "user", "content": "hello"}]}).to_string();
    let ai_url = format!("http://127.0.0.1:{}/v1/chat/completions", ports[0]);
    assert_eq!(request("POST", &ai_url, &[("authorization", &good)], chat.clone()).await.status, 200);
    assert_eq!(request("POST", &ai_url, &[("authorization", &bad)], chat.clone()).await.status, 401);
    assert_eq!(request("POST", &ai_url, &[("x-api-key", &wrong_key)], chat.clone()).await.status, 401);
    for (fault, status) in [(Behavior::Status(401), 401), (Behavior::Status(500), 500)] {
        llm.set(fault);
        assert_eq!(request("POST", &ai_url, &[("authorization", &good)], chat.clone()).await.status, status);
    }
    llm.set(Behavior::Ok);
    let stream =
        json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": "hi"}]}).to_string();
    assert_eq!(request("POST", &ai_url, &[("authorization", &good)], stream).await.status, 200);
    assert!(
        llm.received().iter().all(|r| r.header("authorization") == Some(&format!("Bearer {provider_key}"))),
        "the provider key was used"
    );

    // MCP: a session (the locked server refuses the gateway's token and is left out), a call,
    // a wrong key.
    let mcp_url = format!("http://127.0.0.1:{}/mcp", ports[1]);
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    let accept = ("accept", "application/json, text/event-stream");
    let r = request("POST", &mcp_url, &[("authorization", &good), accept], init.to_string()).await;
    assert_eq!(r.status, 200, "{}", r.raw);
    let session = r.headers["mcp-session-id"].to_str().unwrap().to_string();
    let h = [
        ("authorization", good.as_str()),
        accept,
        ("mcp-session-id", &session),
        ("mcp-protocol-version", "2025-06-18"),
    ];
    let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    assert_eq!(request("POST", &mcp_url, &h, note.to_string()).await.status, 202);
    let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "gh__echo", "arguments": {"text": "hi"}}});
    let r = request("POST", &mcp_url, &h, call.to_string()).await;
    assert!(r.raw.contains("\"hi\""), "{}", r.raw);
    let call = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "locked__x", "arguments": {}}});
    request("POST", &mcp_url, &h, call.to_string()).await;
    assert_eq!(
        request("POST", &mcp_url, &[("authorization", &bad), accept], init.to_string()).await.status,
        401
    );
    assert!(
        locked_seen.lock().unwrap().iter().any(|a| *a == format!("Bearer {mcp_token}")),
        "the MCP server's token was used"
    );

    // Agent: a call (the agent gets an identity token), a wrong key, an agent that is down, a
    // refused webhook.
    let send = |id: u32, text: &str| {
        json!({"jsonrpc": "2.0", "id": id, "method": "SendMessage", "params": {"message": {
            "messageId": format!("m{id}"), "role": "ROLE_USER", "parts": [{"text": text}]}}})
        .to_string()
    };
    let agent_url = |name: &str| format!("http://127.0.0.1:{}/agents/{name}", ports[2]);
    let v = [("authorization", good.as_str()), ("a2a-version", "1.0")];
    let r = request("POST", &agent_url("echo"), &v, send(1, "hi")).await;
    assert!(r.raw.contains("\"result\""), "{}", r.raw);
    let r =
        request("POST", &agent_url("echo"), &[("authorization", &bad), ("a2a-version", "1.0")], send(2, "x"))
            .await;
    assert_eq!(r.status, 401, "{}", r.raw);
    let r = request("POST", &agent_url("down"), &v, send(3, "x")).await;
    assert!(r.raw.contains("unreachable"), "{}", r.raw);
    let mut hook: Value = serde_json::from_str(&send(4, "x")).unwrap();
    hook["params"]["configuration"] =
        json!({"taskPushNotificationConfig": {"url": "http://169.254.169.254/x", "token": push_token}});
    let r = request("POST", &agent_url("echo"), &v, hook.to_string()).await;
    assert!(r.raw.contains("-32602"), "{}", r.raw);
    let card =
        request("GET", &format!("{}/.well-known/agent-card.json", agent_url("echo")), &v, String::new())
            .await;
    assert_eq!(card.status, 200);
    let identity_tokens: Vec<String> = agent
        .seen()
        .iter()
        .filter_map(|s| s.headers.get("x-cairn-caller").map(|v| v.to_str().unwrap().to_string()))
        .collect();
    assert!(!identity_tokens.is_empty(), "the agent got an identity token");

    // Every line every process wrote (the last access lines may follow their answers).
    support::wait_until(Duration::from_secs(10), "every gateway's access or audit lines", || async {
        ports
            .iter()
            .all(|p| {
                let out =
                    std::fs::read_to_string(dir.path().join(format!("gateway-{p}.out"))).unwrap_or_default();
                out.lines().count() >= 2
            })
            .then_some(())
    })
    .await;
    drop(_procs);
    let mut all = String::new();
    for p in ports {
        let out = std::fs::read_to_string(dir.path().join(format!("gateway-{p}.out"))).unwrap();
        let err = std::fs::read_to_string(dir.path().join(format!("gateway-{p}.err"))).unwrap();
        assert!(err.contains(" DEBUG "), "the gateway on {p} logged at debug level:\n{err}");
        assert!(!err.contains('\u{1b}'), "plain text in a file, no terminal colours");
        assert!(out.lines().count() >= 2, "the access or audit log of the gateway on {p}:\n{out}\n{err}");
        all.push_str(&out);
        all.push_str(&err);
    }
    let mut secrets = vec![
        ("provider key", provider_key.clone()),
        ("MCP server token", mcp_token.clone()),
        ("Redis password", redis_password.clone()),
        ("session-sealing key", session_key.clone()),
        ("caller's virtual key", caller_key.clone()),
        ("wrong virtual key", wrong_key.clone()),
        ("push-notification token", push_token.clone()),
        ("signing key", signing_b64[10..60].to_string()),
    ];
    for t in &identity_tokens {
        secrets.push(("identity token", t.clone()));
        // The token's signature, on its own.
        secrets.push(("identity token signature", t.rsplit('.').next().unwrap().to_string()));
    }
    for (what, value) in secrets {
        let at: Vec<&str> = all.lines().filter(|l| l.contains(&value)).take(3).collect();
        assert!(at.is_empty(), "the {what} is in the logs: {at:#?}");
    }
}
