//! Gateways in cluster mode against the real control plane: `cairn gateway --layer L
//! --namespace NS --config-map B-config --secret B-credentials`, run as a local process with a
//! kubeconfig holding a TokenRequest token of the gateway's own ServiceAccount, whose Role is
//! exactly the one the contract (`config::packed`, docs/architecture.md) describes. The test plays
//! the operator (tests/support/cluster_gateway.rs): it packs compiled configs with
//! `config::packed` and writes the Secret, the parts and the main ConfigMap in that order, owned
//! by the gateway object.
//!
//! Per layer: the gateway serves a request through a test upstream once its first config is
//! complete, follows an edit without a restart (the propagation time is printed, not asserted),
//! and refuses a hand-edited ConfigMap while the last good config keeps serving, with a
//! `ConfigRefused` Event on the gateway object and the refusal counted. Beside that: a config
//! split into gzip parts, a Secret lagging the ConfigMap (waited for, not refused; not ready
//! until then), and a Role without the Secret (the gateway stops with a message naming it).
//! No test asserts on elapsed time; timeouts only make failures end.

#[path = "support/a2a_agents.rs"]
mod a2a_agents;
#[path = "support/clients.rs"]
mod clients;
#[path = "support/cluster_gateway.rs"]
mod cluster_gateway;
#[path = "support/mcp_servers.rs"]
mod mcp_servers;
#[path = "support/mock_llm.rs"]
mod mock_llm;
mod support;

use cairn::config::packed;
use cairn::config::{CompiledGateway, Credentials, GatewayConfig};
use clients::{chat, mcp_tools};
use cluster_gateway::*;
use k8s_openapi::api::core::v1::Event;
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

impl Cluster {
    /// Writes a main ConfigMap whose manifest, stamp and hash are consistent but whose config is
    /// not JSON (a bug or a hand-made ConfigMap, not a torn write); the credentials stay `gw`'s.
    async fn publish_invalid_json(&self, gw: &CompiledGateway) {
        use sha2::Digest;
        let text = gw.config.to_json();
        let text = &text[..text.len() / 2];
        let manifest = packed::Manifest {
            format: packed::FORMAT,
            config_hash: hex::encode(sha2::Sha256::digest(text.as_bytes())),
            credentials_digest: gw.credentials.digest(),
            encoding: packed::Encoding::Identity,
            parts: 1,
            size: text.len() as u64,
            packed_size: text.len() as u64,
        };
        self.publish_packed(&packed::Packed { manifest, parts: vec![text.as_bytes().to_vec()] }, None, true)
            .await;
    }

    /// The `ConfigRefused` Events on the gateway object.
    async fn refusals(&self) -> Vec<Event> {
        let events: Api<Event> = Api::namespaced(self.p.client.clone(), &self.ns);
        let lp = ListParams::default().fields(&format!("involvedObject.uid={}", self.uid));
        let list = events.list(&lp).await.expect("listing events");
        list.items.into_iter().filter(|e| e.reason.as_deref() == Some("ConfigRefused")).collect()
    }

    /// Waits until `n` `ConfigRefused` Events are on the gateway object; returns them.
    async fn wait_refusals(&self, gw: &mut Gateway, n: usize) -> Vec<Event> {
        let start = Instant::now();
        loop {
            gw.alive();
            let events = self.refusals().await;
            if events.len() >= n {
                return events;
            }
            assert!(
                start.elapsed() < WAIT,
                "{} ConfigRefused events, not {n}:\n{}",
                events.len(),
                gw.stderr()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Asserts the refused reloads counted so far.
    async fn assert_refused_count(&self, gw: &Gateway, n: u32) {
        let metrics = gw.admin("/metrics").await.1;
        let refused = format!(
            "cairn_config_reloads_total{{gateway=\"{}/{}\",result=\"refused\"}} {n}\n",
            self.ns, self.n.name
        );
        assert!(metrics.contains(&refused), "{refused}\n{metrics}");
    }

    /// Edits the main ConfigMap's `config.json` by hand (the manifest and its hash unchanged).
    async fn tamper(&self) {
        let cm = self.config_maps().get(&self.n.config_map()).await.unwrap();
        let text = cm.data.unwrap()[packed::TEXT_KEY].clone();
        let patch = json!({"data": {packed::TEXT_KEY: text.replacen('{', "{ ", 1)}});
        self.config_maps()
            .patch(&self.n.config_map(), &PatchParams::default(), &Patch::Merge(patch))
            .await
            .unwrap();
    }
}

/// The common part of every layer's config, on `port`.
fn base_config(ns: &str, name: &str, layer: &str, port: u16) -> Value {
    json!({
        "version": 1,
        "gateway": {"namespace": ns, "name": name, "layer": layer},
        "listener": {"port": port, "maxRequestBytes": 1 << 20},
        "auth": {"allowAnonymous": true, "virtualKeySalt": "00"},
        "telemetry": {"accessLog": false},
        // The test upstreams listen on this host's loopback, which a gateway in a cluster
        // reaches only where its rule lists it.
        "egress": {"allowedCIDRs": ["127.0.0.1/32"]},
        "policy": {"defaultAction": "allow"}
    })
}

fn compiled(v: Value, credentials: &[(&str, &str)]) -> CompiledGateway {
    let config: GatewayConfig = serde_json::from_value(v).expect("a config of the contract");
    let credentials = Credentials(credentials.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect());
    CompiledGateway { config, credentials }
}

fn ai_config(ns: &str, port: u16, upstream: &str, models: &[&str]) -> Value {
    let mut v = base_config(ns, "llm", "ai", port);
    let rules: Vec<Value> = models
        .iter()
        .map(|m| {
            json!({"route": format!("r-{m}"), "name": "0", "matches": [{"model": m}],
                        "targets": [{"backend": "a", "weight": 1, "priority": 0}], "fallbackOn": [],
                        "timeouts": {}, "ejection": {"consecutiveFailures": 0, "cooldownMs": 0}})
        })
        .collect();
    v["ai"] = json!({"backends": [{"name": "a", "provider": "openai-compatible", "url": format!("{upstream}/v1"),
                                    "connectTimeoutMs": 1000}], "rules": rules});
    v
}

/// The shape every layer goes through: first config served, an edit followed without a restart,
/// a hand-edited ConfigMap refused while the last good config serves (Event, metric).
async fn serve_edit_refuse<S, SF, E, EF>(
    c: &Cluster,
    first: CompiledGateway,
    second: CompiledGateway,
    serves_first: S,
    serves_second: E,
) where
    S: Fn() -> SF,
    SF: std::future::Future<Output = bool>,
    E: Fn() -> EF,
    EF: std::future::Future<Output = bool>,
{
    c.rbac(1, true);
    c.publish(&first, true, true).await;
    let mut gw = c.spawn();
    gw.ready().await;
    assert!(serves_first().await, "the first config serves:\n{}", gw.stderr());
    assert_eq!(gw.hash().await, Some(first.config.hash()), "the admin endpoint names the hash in service");
    let metrics = gw.admin("/metrics").await.1;
    let info = format!(
        "cairn_config_info{{gateway=\"{}/{}\",layer=\"{}\",hash=\"{}\"}} 1",
        c.ns,
        c.n.name,
        c.n.layer,
        first.config.hash()
    );
    assert!(metrics.contains(&info), "{info}\n{metrics}");

    // An edit takes effect without a restart.
    let started = Instant::now();
    c.publish(&second, true, true).await;
    let took = until("the edit takes effect", &mut gw, &serves_second).await;
    eprintln!(
        "propagation ({} layer): {} ms from the ConfigMap write to the first request served under the new config ({} ms with the write)",
        c.n.layer,
        took.as_millis(),
        started.elapsed().as_millis()
    );
    assert_eq!(gw.hash().await, Some(second.config.hash()));

    // A hand-edited ConfigMap (its bytes no longer the manifest's hash) is refused; the last
    // good config keeps serving.
    c.tamper().await;
    let events = c.wait_refusals(&mut gw, 1).await;
    let e = &events[0];
    assert_eq!(e.type_.as_deref(), Some("Warning"));
    assert_eq!(e.involved_object.kind.as_deref(), Some(c.n.kind));
    assert_eq!(e.involved_object.name.as_deref(), Some(c.n.name.as_str()));
    assert_eq!(e.involved_object.uid.as_deref(), Some(c.uid.as_str()));
    let message = e.message.clone().unwrap_or_default();
    let want = format!("config refused (corrupt): ConfigMap {}: the config's SHA-256 is ", c.n.config_map());
    assert!(message.starts_with(&want), "{message}");
    assert!(message.ends_with("; the last good config keeps serving"), "{message}");
    assert!(serves_second().await, "the last good config keeps serving");
    assert_eq!(gw.hash().await, Some(second.config.hash()));
    assert_eq!(gw.admin("/readyz").await.0, 200, "a refused config does not make the gateway unready");
    c.assert_refused_count(&gw, 1).await;
    // Reported once, however often the watch delivers the same bad config: a label on the
    // ConfigMap is a change the gateway sees, and assembles to the same refusal.
    let label = json!({"metadata": {"labels": {"touched": "yes"}}});
    c.config_maps().patch(&c.n.config_map(), &PatchParams::default(), &Patch::Merge(label)).await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    gw.alive();
    assert_eq!(c.refusals().await.len(), 1, "one Event for one bad config");
    c.assert_refused_count(&gw, 1).await;

    // A config that is not JSON, its manifest and hash consistent: refused as invalid.
    c.publish_invalid_json(&second).await;
    let events = c.wait_refusals(&mut gw, 2).await;
    let messages: Vec<String> = events.iter().filter_map(|e| e.message.clone()).collect();
    let want =
        format!("config refused (invalid_config): ConfigMap {}: invalid gateway config: ", c.n.config_map());
    assert!(messages.iter().any(|m| m.starts_with(&want)), "{want}\n{messages:#?}");
    assert!(serves_second().await, "the last good config keeps serving");
    assert_eq!(gw.hash().await, Some(second.config.hash()));
    c.assert_refused_count(&gw, 2).await;
}

#[tokio::test]
async fn an_ai_gateway_serves_follows_and_refuses_through_the_api() {
    let mock = mock_llm::MockLlm::start("a").await;
    let c = Cluster::new("llm", "ai").await;
    let port = support::free_port();
    let first = compiled(ai_config(&c.ns, port, &mock.url, &["m"]), &[]);
    let second = compiled(ai_config(&c.ns, port, &mock.url, &["m", "m2"]), &[]);
    serve_edit_refuse(
        &c,
        first,
        second,
        || async move { chat(port, "m").await == 200 },
        || async move { chat(port, "m2").await == 200 },
    )
    .await;
}

#[tokio::test]
async fn an_mcp_gateway_serves_follows_and_refuses_through_the_api() {
    let backend = mcp_servers::serve(mcp_servers::ToolsServer::default).await;
    let c = Cluster::new("tools", "mcp").await;
    let port = support::free_port();
    let config = |prefix: &str| {
        let mut v = base_config(&c.ns, "tools", "mcp", port);
        v["mcp"] = json!({"servers": [{"name": "gh", "prefix": prefix, "endpoint": {"type": "http", "url": backend.url},
            "allow": ["*"], "timeoutMs": 5000, "auditArguments": false}], "sessionIdleTimeoutMs": 600000});
        compiled(v, &[("cairn/session-key", "k".repeat(64).as_str())])
    };
    serve_edit_refuse(
        &c,
        config("gh"),
        config("git"),
        move || async move { mcp_tools(port).await.iter().any(|t| t == "gh__search_code") },
        move || async move { mcp_tools(port).await.iter().any(|t| t == "git__search_code") },
    )
    .await;
}

#[tokio::test]
async fn an_agent_gateway_serves_follows_and_refuses_through_the_api() {
    let agent = a2a_agents::TestAgent::start().await;
    let c = Cluster::new("agents", "agent").await;
    let port = support::free_port();
    let config = |names: &[&str]| {
        let mut v = base_config(&c.ns, "agents", "agent", port);
        let agents: Vec<Value> = names
            .iter()
            .map(|n| json!({"name": n, "url": agent.url, "cardPath": "/.well-known/agent-card.json"}))
            .collect();
        v["agent"] = json!({"agents": agents, "taskOwnershipTtlMs": 60000,
                            "identityTokenTtlMs": 60000, "identityTokenHeader": "x-cairn-caller"});
        compiled(v, &[])
    };
    let listed = move |name: &'static str| async move {
        let (status, body) = get(&format!("http://127.0.0.1:{port}/agents"), &[]).await;
        let v: Value = serde_json::from_str(&body).unwrap_or_default();
        status == 200
            && v["agents"]
                .as_array()
                .is_some_and(|a| a.iter().any(|a| a["name"] == name && a.get("card").is_some()))
    };
    serve_edit_refuse(
        &c,
        config(&["echo"]),
        config(&["echo", "second"]),
        move || listed("echo"),
        move || listed("second"),
    )
    .await;
}

/// A config too big for one ConfigMap travels as gzip parts, each listed by the Role, and is
/// served once every part of its version is there.
#[tokio::test]
async fn a_config_in_gzip_parts_is_assembled_and_served() {
    let mock = mock_llm::MockLlm::start("a").await;
    let c = Cluster::new("big", "ai").await;
    let port = support::free_port();
    let mut v = ai_config(&c.ns, port, &mock.url, &["m"]);
    // Model names that compress badly make the config big.
    v["ai"]["backends"][0]["models"] = (0..50_000u32)
        .map(|i| {
            use sha2::Digest;
            json!({"name": hex::encode(sha2::Sha256::digest(i.to_le_bytes())), "kind": "chat"})
        })
        .collect();
    let gw = compiled(v, &[]);
    let manifest = packed::pack(&gw).unwrap().manifest;
    assert!(manifest.parts >= 2, "the config needs several ConfigMaps: {manifest:?}");
    c.rbac(manifest.parts as usize, true);
    c.publish(&gw, true, true).await;
    let mut g = c.spawn();
    g.ready().await;
    assert_eq!(chat(port, "m").await, 200, "{}", g.stderr());
    assert_eq!(g.hash().await, Some(gw.config.hash()));
    eprintln!(
        "gzip parts: {} bytes of JSON in {} ConfigMaps ({} bytes compressed)",
        manifest.size, manifest.parts, manifest.packed_size
    );
}

/// A config whose Secret is not written yet (or still holds the previous credentials) is a
/// write in progress: the gateway waits, unready at first, then on the previous config, never
/// refusing; it serves the config once the Secret catches up.
#[tokio::test]
async fn a_secret_lagging_the_config_map_is_waited_for() {
    let mock = mock_llm::MockLlm::start("a").await;
    let c = Cluster::new("lag", "ai").await;
    let port = support::free_port();
    let keyed = |key: &str| {
        let mut v = ai_config(&c.ns, port, &mock.url, &["m"]);
        v["ai"]["backends"][0]["headers"] =
            json!([{"name": "Authorization", "credential": {"id": "upstream"}, "prefix": "Bearer "}]);
        compiled(v, &[("upstream", key)])
    };
    let (first, second) = (keyed("sk-first"), keyed("sk-second"));
    c.rbac(1, true);
    // The ConfigMap first, no Secret yet: not ready.
    c.publish(&first, false, true).await;
    let mut gw = c.spawn();
    tokio::time::sleep(Duration::from_secs(1)).await;
    gw.alive();
    assert_eq!(gw.admin("/readyz").await.0, 503, "not ready before the first complete config");
    c.publish(&first, true, false).await;
    gw.ready().await;
    assert_eq!(chat(port, "m").await, 200);
    assert_eq!(mock.received().last().unwrap().header("authorization"), Some("Bearer sk-first"));
    // A new config naming new credentials, its Secret not written yet: the first keeps serving.
    c.publish(&second, false, true).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(chat(port, "m").await, 200);
    assert_eq!(mock.received().last().unwrap().header("authorization"), Some("Bearer sk-first"));
    assert_eq!(gw.hash().await, Some(first.config.hash()));
    c.publish(&second, true, false).await;
    until("the Secret's credentials are used", &mut gw, || async {
        chat(port, "m").await == 200
            && mock.received().last().and_then(|r| r.header("authorization").map(str::to_string)).as_deref()
                == Some("Bearer sk-second")
    })
    .await;
    assert!(c.refusals().await.is_empty(), "waiting is not refusing");
    assert!(!gw.admin("/metrics").await.1.contains("result=\"refused\""), "nothing counted as refused");
}

/// The Role is all a gateway gets: without the Secret in it, the gateway stops at once and says
/// which object it may not read.
#[tokio::test]
async fn a_role_without_the_secret_stops_the_gateway_with_a_message_naming_it() {
    let c = Cluster::new("norole", "ai").await;
    c.rbac(1, false);
    let mut gw = c.spawn();
    let status = {
        let start = Instant::now();
        loop {
            if let Some(s) = gw.child.try_wait().unwrap() {
                break s;
            }
            assert!(start.elapsed() < WAIT, "the gateway did not stop:\n{}", gw.stderr());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    assert!(!status.success());
    let err = gw.stderr();
    let want = format!("error: this gateway may not list Secret {} in namespace {}", c.n.secret(), c.ns);
    assert!(err.contains(&want), "{want}\n{err}");
    assert!(err.contains("its Role must allow get, list and watch on it by resourceNames"), "{err}");
}
