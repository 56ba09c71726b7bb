// Included by the cluster-mode tests with `#[path = "support/cluster_gateway.rs"] mod
// cluster_gateway;` beside `mod support;`; not every test uses every helper.
#![allow(dead_code)]

//! `cairn gateway` in cluster mode against the test control plane, with the test playing the
//! operator: a namespace with the gateway object ([`Cluster`]), the gateway's ServiceAccount and
//! Role as the contract (`config::packed`, docs/architecture.md) describes them, its config packed
//! and written as the operator writes it (the Secret, the parts, then the main ConfigMap, owned by
//! the gateway object), and the gateway run as a local process with a kubeconfig holding a
//! TokenRequest token of that ServiceAccount ([`Gateway`]).

pub use crate::clients::get;
use crate::support;
use cairn::config::packed::{self, CREDENTIALS_ANNOTATION, CREDENTIALS_KEY, GZIP_KEY, HASH_ANNOTATION};
use cairn::config::{CompiledGateway, Credentials};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::{Duration, Instant};

pub const WAIT: Duration = Duration::from_secs(60);

/// The names of a gateway's children, as the contract spells them.
pub struct Names {
    /// The gateway object.
    pub name: String,
    pub kind: &'static str,
    pub layer: &'static str,
    /// `<name>-<layer>-gateway`: ServiceAccount, Role, RoleBinding.
    pub base: String,
}

impl Names {
    pub fn new(name: &str, layer: &'static str) -> Names {
        let kind = match layer {
            "ai" => "AIGateway",
            "mcp" => "MCPGateway",
            _ => "AgentGateway",
        };
        Names { name: name.into(), kind, layer, base: format!("{name}-{layer}-gateway") }
    }
    pub fn config_map(&self) -> String {
        format!("{}-config", self.base)
    }
    pub fn secret(&self) -> String {
        format!("{}-credentials", self.base)
    }
}

/// A namespace with the CRDs installed and the gateway object created (its uid for owner
/// references).
pub struct Cluster {
    pub p: support::Platform,
    pub ns: String,
    pub n: Names,
    pub uid: String,
    pub dir: tempfile::TempDir,
}

impl Cluster {
    pub async fn new(name: &str, layer: &'static str) -> Cluster {
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

    pub fn owner(&self) -> Value {
        json!([{"apiVersion": "cairn.dev/v1alpha1", "kind": self.n.kind, "name": self.n.name, "uid": self.uid, "controller": true}])
    }

    /// The gateway's ServiceAccount, Role and RoleBinding: get/list/watch on exactly its
    /// ConfigMaps (`parts` of them) and (with `secret`) its Secret, create/patch on events.
    pub fn rbac(&self, parts: usize, secret: bool) {
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

    pub fn config_maps(&self) -> Api<ConfigMap> {
        Api::namespaced(self.p.client.clone(), &self.ns)
    }

    pub async fn apply<K>(&self, api: &Api<K>, name: &str, doc: Value)
    where
        K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    {
        let pp = PatchParams::apply(support::FIELD_MANAGER).force();
        api.patch(name, &pp, &Patch::Apply(doc)).await.unwrap_or_else(|e| panic!("applying {name}: {e}"));
    }

    /// Writes the Secret (`secret`), the parts and the main ConfigMap (`main`) of `gw`, in the
    /// operator's order; returns the manifest.
    pub async fn publish(&self, gw: &CompiledGateway, secret: bool, main: bool) -> packed::Manifest {
        let p = packed::pack(gw).expect("the config packs");
        self.publish_packed(&p, secret.then_some(&gw.credentials), main).await;
        p.manifest
    }

    /// Writes `p` as the operator would: the Secret (with `credentials`), the parts, then the
    /// main ConfigMap (when `main`).
    pub async fn publish_packed(&self, p: &packed::Packed, credentials: Option<&Credentials>, main: bool) {
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

    /// `cairn gateway` in cluster mode as the gateway's ServiceAccount.
    pub fn spawn(&self) -> Gateway {
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
}

/// A gateway process, killed when dropped.
pub struct Gateway {
    pub child: std::process::Child,
    pub admin: u16,
    pub err: PathBuf,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Gateway {
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.err).unwrap_or_default()
    }

    /// Panics with the gateway's log when it exited.
    pub fn alive(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("cairn gateway exited ({status}):\n{}", self.stderr());
        }
    }

    pub async fn admin(&self, path: &str) -> (u16, String) {
        get(&format!("http://127.0.0.1:{}{path}", self.admin), &[]).await
    }

    pub async fn ready(&mut self) {
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
    pub async fn hash(&self) -> Option<String> {
        let (_, body) = self.admin("/config").await;
        let v: Value = serde_json::from_str(&body).ok()?;
        v["gateways"][0]["configHash"].as_str().map(str::to_string)
    }
}

/// Polls `probe` until it answers `true`; the time it took.
pub async fn until<F, Fut>(what: &str, gw: &mut Gateway, mut probe: F) -> Duration
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
