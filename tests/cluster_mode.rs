//! Gateways in cluster mode against the real control plane: `cairn gateway --layer L
//! --namespace NS --config-map B-config --secret B-credentials`, run as a local process with a
//! kubeconfig holding a TokenRequest token of the gateway's own ServiceAccount, whose Role is
//! exactly the one the contract (`config::packed`, docs/architecture.md) describes. The test plays
//! the operator: it packs compiled configs with `config::packed` and writes the Secret, the parts
//! and the main ConfigMap in that order, owned by the gateway object.
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
#[path = "support/mcp_servers.rs"]
mod mcp_servers;
#[path = "support/mock_llm.rs"]
mod mock_llm;
mod support;

use bytes::Bytes;
use cairn::config::packed::{self, CREDENTIALS_ANNOTATION, CREDENTIALS_KEY, GZIP_KEY, HASH_ANNOTATION};
use cairn::config::{CompiledGateway, Credentials, GatewayConfig};
use http_body_util::{BodyExt, Full};
use k8s_openapi::api::core::v1::{ConfigMap, Event, Secret};
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(60);

/// The names of a gateway's children, as the contract spells them.
struct Names {
    /// The gateway object.
    name: String,
    kind: &'static str,
    layer: &'static str,
    /// `<name>-<layer>-gateway`: ServiceAccount, Role, RoleBinding.
    base: String,
}

impl Names {
    fn new(name: &str, layer: &'static str) -> Names {
        let kind = match layer {
            "ai" => "AIGateway",
            "mcp" => "MCPGateway",
            _ => "AgentGateway",
        };
        Names { name: name.into(), kind, layer, base: format!("{name}-{layer}-gateway") }
    }
    fn config_map(&self) -> String {
        format!("{}-config", self.base)
    }
    fn secret(&self) -> String {
        format!("{}-credentials", self.base)
    }
}

/// A namespace with the CRDs installed and the gateway object created (its uid for owner
/// references).
struct Cluster {
    p: support::Platform,
    ns: String,
    n: Names,
    uid: String,
    dir: tempfile::TempDir,
}

impl Cluster {
    async fn new(name: &str, layer: &'static str) -> Cluster {
        let p = support::platform().await;
        p.install_crds().await;
        let ns = p.fresh_namespace(&format!("cluster-{layer}")).await;
        let n = Names::new(name, layer);
        let doc = json!({
            "apiVersion": "cairn.dev/v1alpha1", "kind": n.kind,
            "metadata": {"name": n.name, "namespace": ns},
            "spec": {"listener": {"port": 8080}}
        });
        let obj =
            p.create(&ns, &doc, false).await.unwrap_or_else(|e| panic!("{}", support::error_message(&e)));
        let uid = obj.metadata.uid.expect("a uid");
        Cluster { p, ns, n, uid, dir: tempfile::tempdir().unwrap() }
    }

    fn owner(&self) -> Value {
        json!([{"apiVersion": "cairn.dev/v1alpha1", "kind": self.n.kind, "name": self.n.name, "uid": self.uid, "controller": true}])
    }

    /// The gateway's ServiceAccount, Role and RoleBinding: get/list/watch on exactly its
    /// ConfigMaps (`parts` of them) and (with `secret`) its Secret, create/patch on events.
    fn rbac(&self, parts: usize, secret: bool) {
        let mut names = vec![self.n.config_map()];
        names.extend((1..parts).map(|i| packed::part_name(&self.n.config_map(), i)));
        let mut rules = vec![
            json!({"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "watch"], "resourceNames": names}),
        ];
        if secret {
            rules.push(json!({"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list", "watch"], "resourceNames": [self.n.secret()]}));
        }
        rules.push(json!({"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]}));
        let base = &self.n.base;
        let docs = [
            json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": base}}),
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": base}, "rules": rules}),
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": base},
                   "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": base},
                   "subjects": [{"kind": "ServiceAccount", "name": base, "namespace": self.ns}]}),
        ];
        let file = self.dir.path().join(format!("rbac-{parts}-{secret}.json"));
        std::fs::write(&file, json!({"apiVersion": "v1", "kind": "List", "items": docs}).to_string())
            .unwrap();
        self.p.kubectl_ok(&["-n", &self.ns, "apply", "-f", file.to_str().unwrap()]);
    }

    fn config_maps(&self) -> Api<ConfigMap> {
        Api::namespaced(self.p.client.clone(), &self.ns)
    }

    async fn apply<K>(&self, api: &Api<K>, name: &str, doc: Value)
    where
        K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    {
        let pp = PatchParams::apply(support::FIELD_MANAGER).force();
        api.patch(name, &pp, &Patch::Apply(doc)).await.unwrap_or_else(|e| panic!("applying {name}: {e}"));
    }

    /// Writes the Secret (`secret`), the parts and the main ConfigMap (`main`) of `gw`, in the
    /// operator's order; returns the manifest.
    async fn publish(&self, gw: &CompiledGateway, secret: bool, main: bool) -> packed::Manifest {
        let p = packed::pack(gw).expect("the config packs");
        self.publish_packed(&p, secret.then_some(&gw.credentials), main).await;
        p.manifest
    }

    /// Writes `p` as the operator would: the Secret (with `credentials`), the parts, then the
    /// main ConfigMap (when `main`).
    async fn publish_packed(&self, p: &packed::Packed, credentials: Option<&Credentials>, main: bool) {
        use base64::Engine;
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        let hash = p.manifest.config_hash.clone();
        let meta = |name: String, annotations: Value| json!({"name": name, "namespace": self.ns, "annotations": annotations, "ownerReferences": self.owner()});
        if let Some(credentials) = credentials {
            let doc = json!({"apiVersion": "v1", "kind": "Secret",
                "metadata": meta(self.n.secret(), json!({CREDENTIALS_ANNOTATION: credentials.digest()})),
                "data": {CREDENTIALS_KEY: b64(credentials.to_json().as_bytes())}});
            self.apply(&Api::<Secret>::namespaced(self.p.client.clone(), &self.ns), &self.n.secret(), doc)
                .await;
        }
        for i in 1..p.parts.len() {
            let name = packed::part_name(&self.n.config_map(), i);
            let doc = json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": meta(name.clone(), json!({HASH_ANNOTATION: hash})),
                "binaryData": {GZIP_KEY: b64(&p.parts[i])}});
            self.apply(&self.config_maps(), &name, doc).await;
        }
        if main {
            let mut doc = json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": meta(self.n.config_map(), json!({HASH_ANNOTATION: hash})),
                "data": {packed::MANIFEST_KEY: p.manifest.to_json()}});
            match p.manifest.encoding {
                packed::Encoding::Identity => {
                    doc["data"][packed::TEXT_KEY] = json!(String::from_utf8(p.parts[0].clone()).unwrap())
                }
                packed::Encoding::Gzip => doc["binaryData"] = json!({GZIP_KEY: b64(&p.parts[0])}),
            }
            self.apply(&self.config_maps(), &self.n.config_map(), doc).await;
        }
    }

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

    /// `cairn gateway` in cluster mode as the gateway's ServiceAccount.
    fn spawn(&self) -> Gateway {
        let kubeconfig = self.p.service_account_kubeconfig(&self.ns, &self.n.base, self.dir.path());
        let admin = support::free_port();
        let err = self.dir.path().join(format!("gateway-{admin}.err"));
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_cairn"))
            .args(["gateway", "--layer", self.n.layer, "--namespace", &self.ns])
            .args(["--config-map", &self.n.config_map(), "--secret", &self.n.secret()])
            .args(["--address", "127.0.0.1", "--admin-port", &admin.to_string()])
            .env("KUBECONFIG", &kubeconfig)
            .env_remove("POD_NAMESPACE")
            .env_remove("KUBERNETES_SERVICE_HOST")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&err).unwrap())
            .spawn()
            .expect("starting cairn gateway");
        Gateway { child, admin, err }
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

/// A gateway process, killed when dropped.
struct Gateway {
    child: std::process::Child,
    admin: u16,
    err: PathBuf,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Gateway {
    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.err).unwrap_or_default()
    }

    /// Panics with the gateway's log when it exited.
    fn alive(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("cairn gateway exited ({status}):\n{}", self.stderr());
        }
    }

    async fn admin(&self, path: &str) -> (u16, String) {
        get(&format!("http://127.0.0.1:{}{path}", self.admin), &[]).await
    }

    async fn ready(&mut self) {
        let deadline = Instant::now() + WAIT;
        loop {
            self.alive();
            if self.admin("/readyz").await.0 == 200 {
                return;
            }
            assert!(Instant::now() < deadline, "not ready in time:\n{}", self.stderr());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The config hash the admin endpoint says is in service.
    async fn hash(&self) -> Option<String> {
        let (_, body) = self.admin("/config").await;
        let v: Value = serde_json::from_str(&body).ok()?;
        v["gateways"][0]["configHash"].as_str().map(str::to_string)
    }
}

async fn request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> (u16, HeaderMapLite, String) {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    let mut req = http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let body = body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
    let req = req.header("content-type", "application/json").body(Full::new(body)).unwrap();
    match tokio::time::timeout(Duration::from_secs(10), client.request(req)).await {
        Ok(Ok(resp)) => {
            let status = resp.status().as_u16();
            let headers = resp
                .headers()
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_string()))
                .collect();
            let body = resp.into_body().collect().await.map(|c| c.to_bytes()).unwrap_or_default();
            (status, headers, String::from_utf8_lossy(&body).into_owned())
        }
        _ => (0, vec![], String::new()),
    }
}

type HeaderMapLite = Vec<(String, String)>;

async fn get(url: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let (s, _, b) = request("GET", url, headers, None).await;
    (s, b)
}

/// Polls `probe` until it answers `true`; the time it took.
async fn until<F, Fut>(what: &str, gw: &mut Gateway, mut probe: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        gw.alive();
        if probe().await {
            return start.elapsed();
        }
        assert!(start.elapsed() < WAIT, "{what}: not in time\n{}", gw.stderr());
        tokio::time::sleep(Duration::from_millis(10)).await;
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

async fn chat(port: u16, model: &str) -> u16 {
    let body = json!({"model": model, "messages": [{"role": "user", "content": "hi"}]});
    request("POST", &format!("http://127.0.0.1:{port}/v1/chat/completions"), &[], Some(body)).await.0
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

/// The tool names an MCP session on the gateway lists (none when it cannot).
async fn mcp_tools(port: u16) -> Vec<String> {
    let url = format!("http://127.0.0.1:{port}/mcp");
    let accept = ("accept", "application/json, text/event-stream");
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    let (status, headers, _) = request("POST", &url, &[accept], Some(init)).await;
    let Some(id) = headers.iter().find(|(k, _)| k == "mcp-session-id").map(|(_, v)| v.clone()) else {
        return vec![];
    };
    if status != 200 {
        return vec![];
    }
    let session = [accept, ("mcp-session-id", id.as_str()), ("mcp-protocol-version", "2025-06-18")];
    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"});
    let (_, _, body) = request("POST", &url, &session, Some(list)).await;
    let v: Value = serde_json::from_str(&body).unwrap_or_default();
    v["result"]["tools"]
        .as_array()
        .map(|t| t.iter().filter_map(|t| t["name"].as_str().map(str::to_string)).collect())
        .unwrap_or_default()
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
