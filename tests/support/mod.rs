//! Shared harness for Cairn's integration tests against a real control plane.
//!
//! The control plane (etcd, kube-apiserver, kube-controller-manager) is started once per test run by
//! `tests/support/platform.sh up` (see tests/support/README.md), which exports:
//! - `CAIRN_TEST_KUBECONFIG`: admin kubeconfig (token in `system:masters`);
//! - `CAIRN_TEST_PLATFORM_BIN`: the directory with the version-matched `kubectl` and `helm`;
//! - `CAIRN_TEST_PYTHON` (from `platform.sh python`): the venv interpreter with the official SDKs.
//!
//! A test that needs the platform and does not find it FAILS with instructions; it never passes
//! silently. Every test works in its own namespace ([`Platform::fresh_namespace`]).
//!
//! Use from an integration test with `mod support;`.

// Each tests/*.rs that declares `mod support;` compiles its own copy of this module and uses only
// part of it; without this, the unused parts warn (and fail `clippy -D warnings`).
#![allow(dead_code)]

pub mod calls;
pub mod hosts;
pub mod http;
pub mod logs;
pub mod tools;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::{ApiResource, GroupVersionKind};
use kube::discovery::{ApiCapabilities, Scope};
use kube::{Client, Config};
use serde_json::Value;

/// Field manager used for every server-side apply issued by the tests.
pub const FIELD_MANAGER: &str = "cairn-tests";

const HOW_TO_START: &str = "start the test platform first:\n    \
     tests/support/platform.sh build && eval \"$(tests/support/platform.sh up)\"\n\
     (or run everything with tests/run; see tests/support/README.md)";

/// A handle on the running test control plane.
#[derive(Clone)]
pub struct Platform {
    pub client: Client,
    pub kubeconfig: PathBuf,
    /// Directory holding `kubectl` and `helm` matching the control plane's version.
    pub bin: PathBuf,
}

/// Connects to the control plane started by `platform.sh up`. Panics (fails the test) with
/// instructions when `CAIRN_TEST_KUBECONFIG` is not set or the server does not answer.
pub async fn platform() -> Platform {
    let kubeconfig = match std::env::var_os("CAIRN_TEST_KUBECONFIG") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => panic!("CAIRN_TEST_KUBECONFIG is not set: this test needs a real control plane; {HOW_TO_START}"),
    };
    let bin = match std::env::var_os("CAIRN_TEST_PLATFORM_BIN") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => panic!("CAIRN_TEST_PLATFORM_BIN is not set; {HOW_TO_START}"),
    };
    let kc = Kubeconfig::read_from(&kubeconfig)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}; {HOW_TO_START}", kubeconfig.display()));
    let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .unwrap_or_else(|e| panic!("bad kubeconfig {}: {e}", kubeconfig.display()));
    let client = Client::try_from(config).expect("building the kube client");
    if let Err(e) = client.apiserver_version().await {
        panic!("the control plane in {} does not answer ({e}); {HOW_TO_START}", kubeconfig.display());
    }
    Platform { client, kubeconfig, bin }
}

impl Platform {
    /// `kubectl` of the platform's version, pointed at the test cluster.
    pub fn kubectl(&self) -> Command {
        let mut c = Command::new(self.bin.join("kubectl"));
        c.env("KUBECONFIG", &self.kubeconfig);
        c
    }

    /// `helm` (v3), pointed at the test cluster, with its caches in a throwaway place.
    pub fn helm(&self) -> Command {
        let mut c = Command::new(self.bin.join("helm"));
        c.env("KUBECONFIG", &self.kubeconfig);
        let home = std::env::temp_dir().join("cairn-test-helm");
        c.env("HELM_CACHE_HOME", home.join("cache"))
            .env("HELM_CONFIG_HOME", home.join("config"))
            .env("HELM_DATA_HOME", home.join("data"));
        c
    }

    /// Runs `kubectl ARGS`, panics with its stderr unless it succeeds, returns stdout.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let out = self.kubectl().args(args).output().expect("running kubectl");
        assert!(
            out.status.success(),
            "kubectl {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("kubectl output is UTF-8")
    }

    /// A kubeconfig, written into `dir`, that authenticates as ServiceAccount `sa` of `ns` with a
    /// TokenRequest token (valid for an hour): a process run with it (`KUBECONFIG=…`) has exactly
    /// the permissions of that ServiceAccount, as a pod running under it would. The cluster and
    /// its CA are the admin kubeconfig's.
    pub fn service_account_kubeconfig(&self, ns: &str, sa: &str, dir: &Path) -> PathBuf {
        let token = self.kubectl_ok(&["-n", ns, "create", "token", sa, "--duration", "1h"]);
        let admin: Value = serde_saphyr::from_str(&std::fs::read_to_string(&self.kubeconfig).unwrap())
            .expect("the admin kubeconfig is YAML");
        let cluster = &admin["clusters"][0]["cluster"];
        let kubeconfig = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "test", "cluster": {
                "server": cluster["server"],
                "certificate-authority-data": cluster["certificate-authority-data"],
            }}],
            "users": [{"name": format!("{ns}-{sa}"), "user": {"token": token.trim()}}],
            "contexts": [{"name": "sa", "context": {"cluster": "test", "user": format!("{ns}-{sa}"), "namespace": ns}}],
            "current-context": "sa",
        });
        let path = dir.join(format!("kubeconfig-{ns}-{sa}"));
        // JSON is YAML: kube and kubectl read it as a kubeconfig.
        std::fs::write(&path, kubeconfig.to_string()).unwrap();
        path
    }

    /// Creates a namespace with a unique name starting with `prefix` and returns its name.
    pub async fn fresh_namespace(&self, prefix: &str) -> String {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().subsec_nanos();
        let prefix: String = prefix
            .to_ascii_lowercase()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .take(40)
            .collect();
        let name = format!(
            "{}-{}-{}-{:x}",
            prefix.trim_matches('-'),
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            nanos & 0xffff
        );
        let ns: Namespace = serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "labels": {"cairn.dev/test": "true"}}
        }))
        .unwrap();
        Api::<Namespace>::all(self.client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .unwrap_or_else(|e| panic!("creating namespace {name}: {e}"));
        name
    }

    /// Server-side applies every CRD in crds/*.yaml and waits until each is Established.
    /// Panics if crds/ holds none. Safe to call from concurrent tests.
    pub async fn install_crds(&self) -> Vec<CustomResourceDefinition> {
        let crds = read_crds();
        let api = Api::<CustomResourceDefinition>::all(self.client.clone());
        let pp = PatchParams::apply(FIELD_MANAGER).force();
        for crd in &crds {
            let name = crd.metadata.name.as_deref().expect("CRD without a name");
            api.patch(name, &pp, &Patch::Apply(crd))
                .await
                .unwrap_or_else(|e| panic!("applying CRD {name}: {e}"));
        }
        for crd in &crds {
            let name = crd.metadata.name.as_deref().unwrap();
            wait_until(Duration::from_secs(60), &format!("CRD {name} Established"), || async {
                let c = api.get(name).await.ok()?;
                let conds = c.status?.conditions?;
                conds.iter().any(|c| c.type_ == "Established" && c.status == "True").then_some(())
            })
            .await;
        }
        crds
    }

    /// Finds the API resource for `apiVersion`/`kind`, retrying briefly (discovery lags a
    /// freshly established CRD by a moment).
    pub async fn resolve(&self, api_version: &str, kind: &str) -> (ApiResource, ApiCapabilities) {
        let (group, version) = match api_version.split_once('/') {
            Some((g, v)) => (g, v),
            None => ("", api_version),
        };
        let gvk = GroupVersionKind::gvk(group, version, kind);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match kube::discovery::pinned_kind(&self.client, &gvk).await {
                Ok(found) => return found,
                Err(e) if Instant::now() > deadline => {
                    panic!("the API server does not serve {api_version} {kind}: {e}")
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
            }
        }
    }

    /// Server-side applies one object (a YAML document as JSON), like `kubectl apply --server-side`:
    /// with `fieldValidation=Strict`, so unknown fields are refused instead of silently pruned.
    /// Namespaced objects go into `ns` (any `metadata.namespace` in the document is overridden).
    pub async fn apply(&self, ns: &str, doc: &Value, dry_run: bool) -> Result<DynamicObject, kube::Error> {
        let (api, obj) = self.api_for(ns, doc).await;
        let mut pp = PatchParams::apply(FIELD_MANAGER).force().validation_strict();
        if dry_run {
            pp = pp.dry_run();
        }
        api.patch(&obj_name(&obj), &pp, &Patch::Apply(&obj)).await
    }

    /// Creates (POST) one object, like `kubectl create` (also with `fieldValidation=Strict`);
    /// namespaced objects go into `ns`.
    pub async fn create(&self, ns: &str, doc: &Value, dry_run: bool) -> Result<DynamicObject, kube::Error> {
        let (api, obj) = self.api_for(ns, doc).await;
        let pp = PostParams { dry_run, field_manager: Some(FIELD_MANAGER.into()) };
        let body = serde_json::to_vec(&obj).expect("serializing the object");
        // kube's PostParams has no fieldValidation; add it to the query like kubectl does.
        let mut req = kube::core::Request::new(api.resource_url())
            .create(&pp, body)
            .map_err(kube::Error::BuildRequest)?;
        let uri = format!("{}&fieldValidation=Strict", req.uri());
        *req.uri_mut() = uri.parse().expect("valid URI");
        self.client.request::<DynamicObject>(req).await
    }

    async fn api_for(&self, ns: &str, doc: &Value) -> (Api<DynamicObject>, DynamicObject) {
        let api_version = doc["apiVersion"].as_str().expect("document without apiVersion");
        let kind = doc["kind"].as_str().expect("document without kind");
        let (ar, caps) = self.resolve(api_version, kind).await;
        let mut doc = doc.clone();
        let api = if caps.scope == Scope::Namespaced {
            doc["metadata"]["namespace"] = Value::String(ns.to_string());
            Api::namespaced_with(self.client.clone(), ns, &ar)
        } else {
            if let Some(m) = doc["metadata"].as_object_mut() {
                m.remove("namespace");
            }
            Api::all_with(self.client.clone(), &ar)
        };
        let obj: DynamicObject = serde_json::from_value(doc)
            .unwrap_or_else(|e| panic!("{api_version} {kind} is not an object: {e}"));
        (api, obj)
    }
}

fn obj_name(obj: &DynamicObject) -> String {
    obj.metadata
        .name
        .clone()
        .expect("document without metadata.name (generateName is not supported by apply)")
}

/// Polls `probe` every 250 ms until it returns `Some`, or panics after `timeout` naming `what`.
pub async fn wait_until<T, F, Fut>(timeout: Duration, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The repository root (the Cargo package root).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// All `*.yaml`/`*.yml` files under `dir`, recursively, sorted. Empty if `dir` does not exist.
pub fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries {
            let p = e.expect("reading directory").path();
            if p.is_dir() {
                stack.push(p);
            } else if matches!(p.extension().and_then(|x| x.to_str()), Some("yaml" | "yml")) {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// The non-empty documents of a multi-document YAML text, as JSON values.
pub fn parse_documents(text: &str, origin: &str) -> Vec<Value> {
    let docs: Vec<Value> =
        serde_saphyr::from_multiple(text).unwrap_or_else(|e| panic!("{origin}: invalid YAML: {e}"));
    docs.into_iter().filter(|d| !d.is_null()).collect()
}

/// The documents of a YAML file (see [`parse_documents`]).
pub fn read_documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    parse_documents(&text, &path.display().to_string())
}

/// The CRDs in crds/*.yaml. Panics if there are none (they are generated by `cargo run -- crds`).
pub fn read_crds() -> Vec<CustomResourceDefinition> {
    let dir = repo_root().join("crds");
    let crds: Vec<CustomResourceDefinition> = yaml_files(&dir)
        .iter()
        .flat_map(|p| {
            read_documents(p).into_iter().map(move |d| {
                serde_json::from_value(d)
                    .unwrap_or_else(|e| panic!("{}: not a CustomResourceDefinition: {e}", p.display()))
            })
        })
        .collect();
    assert!(!crds.is_empty(), "no CRDs in {}: generate them with `cargo run -- crds`", dir.display());
    crds
}

/// The message a refused request carries (the API server's `Status.message`), or the error text.
pub fn error_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(status) => status.message.clone(),
        other => other.to_string(),
    }
}

/// A `redis-server` on a free loopback port with its own temp dir; killed on drop.
pub struct Redis {
    pub port: u16,
    /// `redis://127.0.0.1:PORT`
    pub url: String,
    child: Child,
    persistent: bool,
    extra: Vec<String>,
    dir: tempfile::TempDir,
}

impl Redis {
    /// Starts Debian's `redis-server` (install: `tests/support/platform.sh deps`) and waits until
    /// it answers PING.
    pub fn start() -> Redis {
        Redis::start_with(false, &[])
    }

    /// As [`Redis::start`], with every write in an append-only file synced before it is
    /// acknowledged, so a [`Redis::kill`]ed server [`Redis::restart`]s with all its data.
    pub fn start_persistent() -> Redis {
        Redis::start_with(true, &[])
    }

    /// As [`Redis::start`], refusing clients that do not authenticate with `password`.
    pub fn start_with_password(password: &str) -> Redis {
        Redis::start_with(false, &["--requirepass", password])
    }

    fn start_with(persistent: bool, extra: &[&str]) -> Redis {
        let dir = tempfile::tempdir().expect("temp dir for redis");
        let port = free_port();
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let child = Redis::spawn(port, persistent, dir.path(), &extra);
        let redis = Redis { port, url: format!("redis://127.0.0.1:{port}"), child, persistent, extra, dir };
        redis.wait_ready();
        redis
    }

    fn spawn(port: u16, persistent: bool, dir: &Path, extra: &[String]) -> Child {
        let aof: &[&str] = if persistent {
            &["--appendonly", "yes", "--appendfsync", "always"]
        } else {
            &["--appendonly", "no"]
        };
        Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", ""])
            .args(aof)
            .args(["--protected-mode", "no"])
            .args(extra)
            .arg("--dir")
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start redis-server ({e}); install it with tests/support/platform.sh deps")
            })
    }

    /// Waits until the server answers PING (or refuses it for want of the password: it is up).
    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let up = || match self.ping() {
            Ok(()) => true,
            Err(e) => e.to_string().contains("-NOAUTH"),
        };
        while !up() {
            assert!(Instant::now() < deadline, "redis-server on port {} did not answer PING", self.port);
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills the server (SIGKILL: no shutdown, no last save).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the server again on the same port and directory, and waits until it answers.
    pub fn restart(&mut self) {
        self.child = Redis::spawn(self.port, self.persistent, self.dir.path(), &self.extra);
        self.wait_ready();
    }

    /// A command's answer, through the `redis` crate.
    pub fn query<T: redis::FromRedisValue>(&self, cmd: &mut redis::Cmd) -> T {
        let mut c = redis::Client::open(self.url.as_str()).unwrap().get_connection().expect("redis answers");
        cmd.query(&mut c).expect("redis command")
    }

    /// Sends PING over RESP; Ok if the answer is +PONG.
    pub fn ping(&self) -> std::io::Result<()> {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port))?;
        s.set_read_timeout(Some(Duration::from_secs(2)))?;
        s.write_all(b"PING\r\n")?;
        let mut buf = [0u8; 7];
        s.read_exact(&mut buf)?;
        if &buf == b"+PONG\r\n" {
            Ok(())
        } else {
            Err(std::io::Error::other(format!("unexpected reply {:?}", String::from_utf8_lossy(&buf))))
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A process the test started (a `cairn` command), killed when dropped.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A currently free TCP port on 127.0.0.1 (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("binding a loopback port")
        .port()
}

/// The Python interpreter of the venv with the official SDKs (openai, anthropic, mcp, a2a-sdk).
/// Panics with instructions when `CAIRN_TEST_PYTHON` is not set.
pub fn python() -> PathBuf {
    match std::env::var_os("CAIRN_TEST_PYTHON") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => panic!(
            "CAIRN_TEST_PYTHON is not set: run eval \"$(tests/support/platform.sh python)\" \
             (or tests/run)"
        ),
    }
}

/// Runs pytest (the SDK venv's, [`python`]) on `args` (test files, options) from the repository
/// root with `env`, for at most 5 minutes; `Ok(stdout)` when it passed, `Err(stdout + stderr)`
/// otherwise.
pub async fn pytest(args: &[&str], env: &[(&str, &str)]) -> Result<String, String> {
    let out = tokio::time::timeout(
        Duration::from_secs(300),
        tokio::process::Command::new(python())
            .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfEs"])
            .args(args)
            .current_dir(repo_root())
            .envs(env.iter().copied())
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("pytest finished within 5 minutes")
    .expect("running pytest");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        Ok(stdout)
    } else {
        Err(format!("pytest failed ({}):\n{stdout}\n{}", out.status, String::from_utf8_lossy(&out.stderr)))
    }
}

/// Starts `cairn gateway --layer LAYER` on a compiled config (JSON, listening on `port`) and a
/// credentials bundle (JSON), both written to `dir`; its stdout (the access log) and stderr go to
/// `dir/gateway-PORT.out` and `.err`. The caller kills the child.
pub fn spawn_gateway(layer: &str, dir: &Path, config_json: &str, port: u16, credentials_json: &str) -> Child {
    gateway_command(layer, dir, config_json, port, credentials_json).spawn().expect("cairn gateway starts")
}

/// The command [`spawn_gateway`] runs, for a caller that sets more (the environment).
pub fn gateway_command(
    layer: &str,
    dir: &Path,
    config_json: &str,
    port: u16,
    credentials_json: &str,
) -> Command {
    let path = dir.join(format!("config-{port}.json"));
    std::fs::write(&path, config_json).unwrap();
    let creds = dir.join(format!("credentials-{port}.json"));
    std::fs::write(&creds, credentials_json).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cairn"));
    cmd.args(["gateway", "--layer", layer, "--address", "127.0.0.1", "--admin-port"])
        .arg(free_port().to_string())
        .arg("--config")
        .arg(&path)
        .arg("--credentials")
        .arg(&creds)
        .stdout(std::fs::File::create(dir.join(format!("gateway-{port}.out"))).expect("stdout file"))
        .stderr(std::fs::File::create(dir.join(format!("gateway-{port}.err"))).expect("stderr file"));
    cmd
}
