//! The live objects of one namespace of a cluster, compiled: what `cairn explain` and
//! `cairn spend` answer from without `-f`, exactly as they answer from the same manifests as
//! files (the same compile, in cluster mode, over the same objects and the Secrets it names).
//!
//! Reads: a list of each Cairn kind in the namespace, then a GET of each Secret the compile names
//! (as the operator does). A Secret that cannot be read is left out with a warning — answers that
//! depend on it (a virtual key, the Redis password) say so through the compile's diagnostics.

use crate::api::Object;
use crate::compile::{self, Mode, Output, Secrets};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams};
use std::collections::BTreeSet;
use std::time::Duration;

/// Longest wait to connect to the API server.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest wait for one answer of the API server.
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Why the cluster could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// No kubeconfig (or context) to use.
    #[error("no cluster to read: {0} (set KUBECONFIG, pass --context, or answer from files with -f)")]
    Config(String),
    /// The API server could not be reached or refused.
    #[error("listing {kind} in namespace {namespace:?}: {detail}")]
    List {
        /// The kind.
        kind: String,
        /// The namespace.
        namespace: String,
        /// What went wrong.
        detail: String,
    },
}

impl ClusterError {
    /// Low-cardinality name.
    pub fn category(&self) -> &'static str {
        match self {
            ClusterError::Config(_) => "config",
            ClusterError::List { .. } => "list",
        }
    }
}

/// A client for `context` of the kubeconfig (its current context by default), and that
/// context's namespace (`default` if it names none).
pub async fn connect(context: Option<&str>) -> Result<(kube::Client, String), ClusterError> {
    let mut config = match context {
        Some(c) => {
            let opts = kube::config::KubeConfigOptions { context: Some(c.to_string()), ..Default::default() };
            kube::Config::from_kubeconfig(&opts).await.map_err(|e| ClusterError::Config(e.to_string()))?
        }
        None => kube::Config::infer().await.map_err(|e| ClusterError::Config(e.to_string()))?,
    };
    config.connect_timeout = Some(CONNECT_TIMEOUT);
    config.read_timeout = Some(READ_TIMEOUT);
    let namespace = config.default_namespace.clone();
    let client = kube::Client::try_from(config).map_err(|e| ClusterError::Config(e.to_string()))?;
    Ok((client, namespace))
}

fn detail(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) if s.code == 404 => {
            "not found: are the Cairn CRDs installed (kubectl apply -f crds/)?".to_string()
        }
        kube::Error::Api(s) => format!("{} ({})", s.message, s.reason),
        other => {
            let mut m = other.to_string();
            let mut cur = std::error::Error::source(other);
            while let Some(c) = cur {
                let s = c.to_string();
                if !m.contains(&s) {
                    m = format!("{m}: {s}");
                }
                cur = c.source();
            }
            m
        }
    }
}

/// The Cairn objects of `namespace`.
pub async fn objects(client: &kube::Client, namespace: &str) -> Result<Vec<Object>, ClusterError> {
    async fn list<K>(
        client: &kube::Client,
        ns: &str,
        wrap: fn(K) -> Object,
    ) -> Result<Vec<Object>, ClusterError>
    where
        K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        let api: Api<K> = Api::namespaced(client.clone(), ns);
        let list = api.list(&ListParams::default()).await.map_err(|e| ClusterError::List {
            kind: K::kind(&()).into_owned(),
            namespace: ns.to_string(),
            detail: detail(&e),
        })?;
        Ok(list.items.into_iter().map(wrap).collect())
    }
    let mut out = Vec::new();
    out.extend(list(client, namespace, Object::AIGateway).await?);
    out.extend(list(client, namespace, Object::MCPGateway).await?);
    out.extend(list(client, namespace, Object::AgentGateway).await?);
    out.extend(list(client, namespace, Object::AIBackend).await?);
    out.extend(list(client, namespace, Object::AIRoute).await?);
    out.extend(list(client, namespace, Object::MCPServer).await?);
    out.extend(list(client, namespace, Object::Agent).await?);
    out.extend(list(client, namespace, Object::AgentPolicy).await?);
    Ok(out)
}

/// The objects of `namespace` compiled for `mode` with the Secrets the compile names; warnings
/// (a Secret that could not be read) go to `warn`.
pub async fn compile(
    client: &kube::Client,
    namespace: &str,
    mode: &Mode,
    warn: &mut impl FnMut(String),
) -> Result<Output, ClusterError> {
    let objects = objects(client, namespace).await?;
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let mut secrets = Secrets::new();
    let mut read: BTreeSet<String> = BTreeSet::new();
    loop {
        let output = compile::compile(compile::Input { objects: &objects, secrets: &secrets, mode });
        let named: Vec<String> = output
            .secrets_named
            .iter()
            .filter(|(ns, name)| ns == namespace && !read.contains(name))
            .map(|(_, name)| name.clone())
            .collect();
        if named.is_empty() {
            return Ok(output);
        }
        for name in named {
            read.insert(name.clone());
            match api.get_opt(&name).await {
                Ok(Some(s)) => {
                    let data = secrets.entry((namespace.to_string(), name)).or_default();
                    for (k, v) in s.data.unwrap_or_default() {
                        if let Ok(v) = String::from_utf8(v.0) {
                            data.insert(k, v);
                        }
                    }
                }
                Ok(None) => {}
                Err(e) => warn(format!("cannot read Secret {namespace}/{name}: {}", detail(&e))),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kind_the_cluster_does_not_know_points_at_the_crds() {
        let status =
            kube::core::Status::failure("the server could not find the requested resource", "NotFound")
                .with_code(404);
        assert_eq!(
            detail(&kube::Error::Api(Box::new(status))),
            "not found: are the Cairn CRDs installed (kubectl apply -f crds/)?"
        );
        let e = ClusterError::List { kind: "AIGateway".into(), namespace: "x".into(), detail: "d".into() };
        assert_eq!(e.to_string(), "listing AIGateway in namespace \"x\": d");
    }
}
