//! The operator benchmark: run by `benches/operator.sh` against the test control plane, never by
//! `cargo test`. Not a test: it asserts nothing about time; it prints figures (markdown on stdout,
//! progress on stderr). See docs/benchmarks.md, "Operator".
//!
//! - `latency --routes N --edits E [--served]`: one AIGateway with N AIRoutes; E edits of one
//!   route, each timed from the apply request to the gateway's main ConfigMap carrying the new
//!   config hash (a watch on it, opened before the edit); with `--served` also to the first
//!   request served under the edited route by `cairn gateway` in cluster mode (a local process
//!   with a TokenRequest token of the gateway's own ServiceAccount, polled every 2 ms).
//! - `scale --resources N`: N Cairn objects in namespaces of 500 (1 AIGateway, 1 AIBackend, 498
//!   AIRoutes each): time until every gateway is Programmed with all its routes; the operator's
//!   RSS and CPU (total and per reconcile) while doing it and once settled; the operator watches
//!   each namespace, or with `--cluster-wide` the whole cluster.
//! - `examples`: every example applied to an empty cluster; time until every gateway is Ready
//!   (this program plays the kubelet: it marks each gateway pod Ready as soon as it exists).

use futures_util::{StreamExt, TryStreamExt};
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::{ApiResource, GroupVersionKind};
use kube::{Client, Config};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const FM: &str = "cairn-bench";

struct Env {
    client: Client,
    kubeconfig: PathBuf,
    cairn: PathBuf,
}

fn arg(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| default.into())
}

fn flag(name: &str) -> bool {
    std::env::args().any(|a| a == name)
}

fn api(c: &Client, ns: &str, av: &str, kind: &str, plural: &str) -> Api<DynamicObject> {
    let (g, v) = av.split_once('/').unwrap_or(("", av));
    Api::namespaced_with(
        c.clone(),
        ns,
        &ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(g, v, kind), plural),
    )
}

fn cairn_api(c: &Client, ns: &str, kind: &str) -> Api<DynamicObject> {
    let plural = match kind {
        "AgentPolicy" => "agentpolicies".to_string(),
        k => format!("{}s", k.to_ascii_lowercase()),
    };
    api(c, ns, "cairn.dev/v1alpha1", kind, &plural)
}

async fn apply(c: &Client, ns: &str, doc: &Value) {
    let mut doc = doc.clone();
    doc["metadata"]["namespace"] = json!(ns);
    let doc = &doc;
    let kind = doc["kind"].as_str().unwrap();
    let name = doc["metadata"]["name"].as_str().unwrap();
    let a = match kind {
        "Secret" => api(c, ns, "v1", "Secret", "secrets"),
        k => cairn_api(c, ns, k),
    };
    a.patch(name, &PatchParams::apply(FM).force(), &Patch::Apply(doc))
        .await
        .unwrap_or_else(|e| panic!("{kind}/{name}: {e}"));
}

async fn namespace(c: &Client, name: &str) {
    let ns: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(c.clone());
    let _ = ns
        .create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": name}})).unwrap())
        .await;
}

/// A running operator (release build), watching `namespaces`.
struct Operator {
    child: Child,
    port: u16,
}

impl Operator {
    fn start(env: &Env, namespaces: &[String]) -> Operator {
        let port = free_port();
        let mut cmd = Command::new(&env.cairn);
        cmd.args([
            "operator",
            "--leader-elect",
            "false",
            "--address",
            "127.0.0.1",
            "--admin-port",
            &port.to_string(),
        ])
        .args(["--gateway-image", "registry.example.com/cairn:bench"]);
        for ns in namespaces {
            cmd.args(["--namespace", ns]);
        }
        let log = std::fs::File::create(std::env::temp_dir().join("cairn-bench-operator.log")).unwrap();
        let child = cmd
            .env("KUBECONFIG", &env.kubeconfig)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("the operator starts");
        Operator { child, port }
    }

    fn metric(&self, name: &str) -> f64 {
        let out = Command::new("curl")
            .args(["-fsS", &format!("http://127.0.0.1:{}/metrics", self.port)])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.starts_with(name))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// Resident set size in MiB.
    fn rss_mib(&self) -> f64 {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        s.lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    }

    /// CPU seconds used so far (user + system).
    fn cpu_s(&self) -> f64 {
        let s = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        let after = s.rsplit(')').next().unwrap_or_default();
        let f: Vec<&str> = after.split_whitespace().collect();
        let ticks: f64 = f.get(11).and_then(|x| x.parse().ok()).unwrap_or(0.0)
            + f.get(12).and_then(|x| x.parse().ok()).unwrap_or(0.0);
        ticks / 100.0
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let _ = self.child.wait();
    }
}

fn gateway(name: &str) -> Value {
    gateway_on(name, 8080)
}

fn gateway_on(name: &str, port: u16) -> Value {
    json!({"apiVersion": "cairn.dev/v1alpha1", "kind": "AIGateway", "metadata": {"name": name},
           "spec": {"listener": {"port": port}, "defaultAction": "Allow", "auth": {"allowAnonymous": true}}})
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `cairn gateway` for the bench's AIGateway `llm`, in cluster mode, as its own ServiceAccount.
struct GatewayProcess {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

type HttpClient = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    http_body_util::Full<bytes::Bytes>,
>;

fn http_client() -> HttpClient {
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http()
}

/// Status of a GET, or 0.
async fn http_get(c: &HttpClient, url: &str) -> u16 {
    let req = http::Request::get(url).body(http_body_util::Full::default()).unwrap();
    c.request(req).await.map_or(0, |r| r.status().as_u16())
}

/// Status of a chat completion of `model` through the gateway on `port`, or 0.
async fn chat(c: &HttpClient, port: u16, model: &str) -> u16 {
    let body = json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}).to_string();
    let req = http::Request::post(format!("http://127.0.0.1:{port}/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from(body)))
        .unwrap();
    match c.request(req).await {
        Ok(r) => {
            let status = r.status().as_u16();
            let _ = http_body_util::BodyExt::collect(r.into_body()).await;
            status
        }
        Err(_) => 0,
    }
}

async fn start_gateway(env: &Env, ns: &str, http: &HttpClient) -> GatewayProcess {
    use k8s_openapi::api::authentication::v1::TokenRequest;
    use k8s_openapi::api::core::v1::ServiceAccount;
    let sa = "llm-ai-gateway";
    let sas: Api<ServiceAccount> = Api::namespaced(env.client.clone(), ns);
    let tr: TokenRequest = serde_json::from_value(json!({"spec": {"expirationSeconds": 3600}})).unwrap();
    let token = wait("the gateway's ServiceAccount", Duration::from_secs(60), || async {
        sas.create_token_request(sa, &PostParams::default(), &tr).await.ok()?.status.map(|s| s.token)
    })
    .await;
    let mut kc: Value = serde_saphyr::from_str(&std::fs::read_to_string(&env.kubeconfig).unwrap()).unwrap();
    kc["users"][0]["user"] = json!({"token": token});
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, kc.to_string()).unwrap();
    let admin = free_port();
    let log = std::fs::File::create(std::env::temp_dir().join("cairn-bench-gateway.log")).unwrap();
    let child = Command::new(&env.cairn)
        .args(["gateway", "--layer", "ai", "--namespace", ns])
        .args(["--config-map", "llm-ai-gateway-config", "--secret", "llm-ai-gateway-credentials"])
        .args(["--address", "127.0.0.1", "--admin-port", &admin.to_string()])
        .env("KUBECONFIG", &kubeconfig)
        .env("RUST_LOG", "warn")
        .env_remove("POD_NAMESPACE")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("cairn gateway starts");
    let url = format!("http://127.0.0.1:{admin}/readyz");
    wait("the gateway to be ready", Duration::from_secs(60), || async {
        (http_get(http, &url).await == 200).then_some(())
    })
    .await;
    GatewayProcess { child, _dir: dir }
}

fn backend() -> Value {
    json!({"apiVersion": "cairn.dev/v1alpha1", "kind": "AIBackend", "metadata": {"name": "echo"},
           "spec": {"provider": "Echo", "models": [{"name": "echo-1"}]}})
}

fn route(i: usize, model: &str) -> Value {
    json!({"apiVersion": "cairn.dev/v1alpha1", "kind": "AIRoute", "metadata": {"name": format!("r{i}")},
           "spec": {"gatewayRefs": [{"name": "llm"}],
                    "rules": [{"matches": [{"model": model}], "backends": [{"backendRef": {"name": "echo"}, "model": "echo-1"}]}]}})
}

async fn wait<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Number of AI rules in the gateway's main ConfigMap (identity or gzip).
async fn rules_in_config(c: &Client, ns: &str) -> Option<(usize, String)> {
    let cm = api(c, ns, "v1", "ConfigMap", "configmaps").get_opt("llm-ai-gateway-config").await.ok()??;
    let hash = cm.metadata.annotations.as_ref()?.get("cairn.dev/config-hash")?.clone();
    let manifest: Value = serde_json::from_str(cm.data["data"]["manifest.json"].as_str()?).ok()?;
    let parts = manifest["parts"].as_u64()?;
    let text = if let Some(t) = cm.data["data"]["config.json"].as_str() {
        t.to_string()
    } else {
        use base64::Engine;
        let mut gz = base64::engine::general_purpose::STANDARD
            .decode(cm.data["binaryData"]["config.json.gz"].as_str()?)
            .ok()?;
        for i in 1..parts {
            let p = api(c, ns, "v1", "ConfigMap", "configmaps")
                .get(&format!("llm-ai-gateway-config-{i}"))
                .await
                .ok()?;
            gz.extend(
                base64::engine::general_purpose::STANDARD
                    .decode(p.data["binaryData"]["config.json.gz"].as_str()?)
                    .ok()?,
            );
        }
        let mut out = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(gz.as_slice()), &mut out).ok()?;
        out
    };
    let v: Value = serde_json::from_str(&text).ok()?;
    Some((v["ai"]["rules"].as_array()?.len(), hash))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn latency(env: &Env) {
    let routes: usize = arg("--routes", "100").parse().unwrap();
    let edits: usize = arg("--edits", "50").parse().unwrap();
    let served = flag("--served");
    let ns = format!("bench-latency-{routes}-{}", std::process::id());
    namespace(&env.client, &ns).await;
    let port = free_port();
    apply(&env.client, &ns, &gateway_on("llm", port)).await;
    apply(&env.client, &ns, &backend()).await;
    futures_util::stream::iter(0..routes)
        .for_each_concurrent(16, |i| {
            let (c, ns) = (env.client.clone(), ns.clone());
            async move { apply(&c, &ns, &route(i, &format!("m{i}"))).await }
        })
        .await;
    let op = Operator::start(env, std::slice::from_ref(&ns));
    wait("all routes in the config", Duration::from_secs(300), || async {
        rules_in_config(&env.client, &ns).await.filter(|(n, _)| *n == routes)
    })
    .await;
    let http = http_client();
    let _gateway = if served { Some(start_gateway(env, &ns, &http).await) } else { None };
    tokio::time::sleep(Duration::from_secs(2)).await;
    let cms = api(&env.client, &ns, "v1", "ConfigMap", "configmaps");
    let (mut written, mut serving, mut swap) = (Vec::new(), Vec::new(), Vec::new());
    // Where the time goes, over the edits only: the compile stage, and the AIGateway's reconcile
    // (render, server-side apply of its children, status).
    const COMPILE: &str = "cairn_operator_compile_duration_seconds";
    const RECONCILE: &str = "cairn_operator_reconcile_duration_seconds";
    let gw = "{kind=\"AIGateway\"}";
    let before = [
        op.metric(&format!("{COMPILE}_sum")),
        op.metric(&format!("{COMPILE}_count")),
        op.metric(&format!("{RECONCILE}_sum{gw}")),
        op.metric(&format!("{RECONCILE}_count{gw}")),
    ];
    for k in 0..edits {
        let (_, before) = rules_in_config(&env.client, &ns).await.unwrap();
        let wp = WatchParams::default().fields("metadata.name=llm-ai-gateway-config");
        let version = cms.get("llm-ai-gateway-config").await.unwrap().metadata.resource_version.unwrap();
        let mut stream = cms.watch(&wp, &version).await.unwrap().boxed();
        let model = format!("edit-{k}");
        let started = Instant::now();
        apply(&env.client, &ns, &route(0, &model)).await;
        loop {
            match tokio::time::timeout(Duration::from_secs(30), stream.try_next()).await {
                Ok(Ok(Some(WatchEvent::Modified(cm)))) => {
                    let h = cm.metadata.annotations.unwrap_or_default().get("cairn.dev/config-hash").cloned();
                    if h.is_some_and(|h| h != before) {
                        break;
                    }
                }
                Ok(Ok(Some(_))) => {}
                other => panic!("edit {k}: no new config within 30 s ({:?})", other.err()),
            }
        }
        let w = started.elapsed().as_secs_f64() * 1000.0;
        written.push(w);
        if served {
            while chat(&http, port, &model).await != 200 {
                assert!(started.elapsed() < Duration::from_secs(30), "edit {k}: not served within 30 s");
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            let s = started.elapsed().as_secs_f64() * 1000.0;
            serving.push(s);
            swap.push(s - w);
        }
    }
    written.sort_by(f64::total_cmp);
    serving.sort_by(f64::total_cmp);
    swap.sort_by(f64::total_cmp);
    let mean_ms = |sum: &str, count: &str, i: usize| {
        (op.metric(sum) - before[i]) / (op.metric(count) - before[i + 1]).max(1.0) * 1000.0
    };
    let compile_ms = mean_ms(&format!("{COMPILE}_sum"), &format!("{COMPILE}_count"), 0);
    let reconcile_ms = mean_ms(&format!("{RECONCILE}_sum{gw}"), &format!("{RECONCILE}_count{gw}"), 2);
    let served_cols = if served {
        format!(
            "{:.1} | {:.1} | {:.1} | {:.1}",
            percentile(&serving, 0.5),
            percentile(&serving, 0.99),
            serving[serving.len() - 1],
            percentile(&swap, 0.5)
        )
    } else {
        " | | | ".into()
    };
    println!(
        "| {routes} | {edits} | {:.1} | {:.1} | {served_cols} | {compile_ms:.2} | {reconcile_ms:.2} | {:.1} |",
        percentile(&written, 0.5),
        percentile(&written, 0.99),
        op.rss_mib()
    );
}

async fn scale(env: &Env) {
    let total: usize = arg("--resources", "1000").parse().unwrap();
    let per = 500usize;
    let spaces = total.div_ceil(per);
    let mut names = Vec::new();
    let started = Instant::now();
    for s in 0..spaces {
        let ns = format!("bench-scale-{total}-{}-{s}", std::process::id());
        namespace(&env.client, &ns).await;
        apply(&env.client, &ns, &gateway("llm")).await;
        apply(&env.client, &ns, &backend()).await;
        let n = (total - s * per).min(per) - 2;
        futures_util::stream::iter(0..n)
            .for_each_concurrent(16, |i| {
                let (c, ns) = (env.client.clone(), ns.clone());
                async move { apply(&c, &ns, &route(i, &format!("m{i}"))).await }
            })
            .await;
        names.push((ns, n));
    }
    eprintln!("created {total} objects in {spaces} namespaces in {:?}", started.elapsed());
    // `--cluster-wide`: one watch per kind over the whole cluster (the chart's default) rather
    // than one per kind in each namespace (`--namespace`, repeated).
    let cluster_wide = flag("--cluster-wide");
    let ns_list: Vec<String> =
        if cluster_wide { Vec::new() } else { names.iter().map(|(n, _)| n.clone()).collect() };
    let started = Instant::now();
    let op = Operator::start(env, &ns_list);
    let mut peak: f64 = 0.0;
    for (ns, n) in &names {
        wait("every route in every config", Duration::from_secs(900), || {
            peak = peak.max(op.rss_mib());
            async { rules_in_config(&env.client, ns).await.filter(|(k, _)| k == n) }
        })
        .await;
    }
    let converged = started.elapsed();
    // Settled: every status written.
    let op = &op;
    let settled = wait("the operator to settle", Duration::from_secs(600), || {
        peak = peak.max(op.rss_mib());
        let before = op.metric("cairn_operator_writes_total");
        async move {
            tokio::time::sleep(Duration::from_secs(3)).await;
            (op.metric("cairn_operator_writes_total") == before).then_some(before)
        }
    })
    .await;
    let reconciles = op.metric("cairn_operator_reconciles_total");
    let cpu = op.cpu_s();
    println!(
        "| {total} | {spaces}{} | {:.1} | {reconciles:.0} | {settled:.0} | {cpu:.2} | {:.2} | {peak:.1} | {:.1} |",
        if cluster_wide { ", cluster-wide watch" } else { ", a watch per namespace" },
        converged.as_secs_f64(),
        cpu / reconciles * 1000.0,
        op.rss_mib()
    );
    // One more edit per namespace at rest: the cost of an incremental change.
    let (cpu0, rec0) = (op.cpu_s(), reconciles);
    let mut hashes = Vec::new();
    for (ns, _) in &names {
        hashes.push(rules_in_config(&env.client, ns).await.unwrap().1);
        apply(&env.client, ns, &route(0, "edited")).await;
    }
    for ((ns, _), before) in names.iter().zip(&hashes) {
        wait("the edit", Duration::from_secs(60), || async {
            rules_in_config(&env.client, ns).await.filter(|(_, h)| h != before)
        })
        .await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rec = op.metric("cairn_operator_reconciles_total") - rec0;
    let cpu = op.cpu_s() - cpu0;
    eprintln!("one route edit in each of {spaces} namespaces: {rec:.0} reconciles, {cpu:.3} CPU s");
    println!(
        "| {total} (one edit per namespace) | {spaces} | | {rec:.0} | | {cpu:.3} | {:.2} | | |",
        cpu / rec.max(1.0) * 1000.0
    );
}

async fn examples(env: &Env) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut spaces = Vec::new();
    let mut gateways = Vec::new();
    for dir in std::fs::read_dir(root.join("examples")).unwrap() {
        let dir = dir.unwrap().path();
        let ns = format!("bench-ex-{}-{}", dir.file_name().unwrap().to_string_lossy(), std::process::id());
        namespace(&env.client, &ns).await;
        let mut files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
        files.sort();
        for f in files {
            let docs: Vec<Value> =
                serde_saphyr::from_multiple(&std::fs::read_to_string(&f).unwrap()).unwrap();
            for d in docs.into_iter().filter(|d| !d.is_null()) {
                if d["kind"].as_str().unwrap().ends_with("Gateway") {
                    gateways.push((
                        ns.clone(),
                        d["kind"].as_str().unwrap().to_string(),
                        d["metadata"]["name"].as_str().unwrap().to_string(),
                    ));
                }
                apply(&env.client, &ns, &d).await;
            }
        }
        spaces.push(ns);
    }
    let started = Instant::now();
    let _op = Operator::start(env, &spaces);
    // Play the kubelet: every pod of these namespaces is marked Ready as soon as it exists.
    let ready = |o: &DynamicObject, t: &str| {
        o.data["status"]["conditions"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c["type"] == t && c["status"] == "True"))
    };
    let mut programmed_at = None;
    loop {
        for ns in &spaces {
            let pods = api(&env.client, ns, "v1", "Pod", "pods");
            for p in pods.list(&ListParams::default()).await.unwrap() {
                if !ready(&p, "Ready") {
                    let now = k8s_openapi::jiff::Timestamp::now().to_string();
                    let s = json!({"status": {"phase": "Running", "conditions": [
                        {"type": "Ready", "status": "True", "lastTransitionTime": now},
                        {"type": "ContainersReady", "status": "True", "lastTransitionTime": now}]}});
                    let _ = pods
                        .patch_status(
                            p.metadata.name.as_ref().unwrap(),
                            &PatchParams::default(),
                            &Patch::Merge(&s),
                        )
                        .await;
                }
            }
        }
        let mut all_programmed = true;
        let mut all_ready = true;
        for (ns, kind, name) in &gateways {
            let o = cairn_api(&env.client, ns, kind).get(name).await.unwrap();
            all_programmed &= ready(&o, "Programmed");
            all_ready &= ready(&o, "Ready");
        }
        if all_programmed && programmed_at.is_none() {
            programmed_at = Some(started.elapsed());
        }
        if all_ready {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(300), "examples not Ready after 5 min");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "| {} gateways in {} namespaces | {:.2} s | {:.2} s |",
        gateways.len(),
        spaces.len(),
        programmed_at.unwrap().as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}

#[tokio::main]
async fn main() {
    if flag("--bench") && std::env::args().count() <= 2 {
        // `cargo bench` without arguments: this benchmark needs the platform; see benches/operator.sh.
        eprintln!("run benches/operator.sh");
        return;
    }
    let kubeconfig = PathBuf::from(
        std::env::var("CAIRN_TEST_KUBECONFIG").expect("CAIRN_TEST_KUBECONFIG (platform.sh up)"),
    );
    let kc = Kubeconfig::read_from(&kubeconfig).unwrap();
    let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await.unwrap();
    let env = Env {
        client: Client::try_from(config).unwrap(),
        kubeconfig,
        cairn: PathBuf::from(arg("--cairn", "target/release/cairn")),
    };
    match std::env::args().nth(1).as_deref() {
        Some("latency") => latency(&env).await,
        Some("scale") => scale(&env).await,
        Some("examples") => examples(&env).await,
        other => panic!("usage: operator latency|scale|examples (got {other:?})"),
    }
}
