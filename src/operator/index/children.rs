//! The index's lookups of the operator's children: versions (apply skips unchanged writes),
//! what a gateway owns (prune), and the two kinds read in full.

use super::Index;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;
use kube::Resource;
use kube::runtime::reflector::{self, Store};
use std::sync::Arc;

/// Runs `$f` on the store of child kind `$kind` (each store has its own type).
macro_rules! child_store {
    ($children:expr, $kind:expr, |$store:ident| $f:expr) => {{
        use crate::operator::render::ChildKind as C;
        let h = &$children;
        match $kind {
            C::ConfigMap => {
                let $store = &h.config_maps;
                $f
            }
            C::Secret => {
                let $store = &h.secrets;
                $f
            }
            C::ServiceAccount => {
                let $store = &h.service_accounts;
                $f
            }
            C::Role => {
                let $store = &h.roles;
                $f
            }
            C::RoleBinding => {
                let $store = &h.role_bindings;
                $f
            }
            C::Service => {
                let $store = &h.services;
                $f
            }
            C::Deployment => {
                let $store = &h.deployments;
                $f
            }
            C::PodDisruptionBudget => {
                let $store = &h.pdbs;
                $f
            }
            C::HorizontalPodAutoscaler => {
                let $store = &h.hpas;
                $f
            }
        }
    }};
}

impl Index {
    /// `resourceVersion` and `generation` of a child as the index last saw it.
    pub fn child_version(
        &self,
        kind: crate::operator::render::ChildKind,
        ns: &str,
        name: &str,
    ) -> Option<(String, Option<i64>)> {
        fn v<K>(store: &Store<K>, ns: &str, name: &str) -> Option<(String, Option<i64>)>
        where
            K: reflector::Lookup<DynamicType = ()> + Resource + Clone + 'static,
        {
            let o = store.get(&reflector::ObjectRef::new(name).within(ns))?;
            Some((o.meta().resource_version.clone().unwrap_or_default(), o.meta().generation))
        }
        child_store!(self.children, kind, |store| v(store, ns, name))
    }

    /// Children of `kind` that the object with UID `owner` controls: (name, UID).
    pub fn owned(&self, kind: crate::operator::render::ChildKind, owner: &str) -> Vec<(String, String)> {
        fn o<K>(store: &Store<K>, owner: &str) -> Vec<(String, String)>
        where
            K: reflector::Lookup<DynamicType = ()> + Resource + Clone + 'static,
        {
            store
                .state()
                .iter()
                .filter(|c| {
                    c.meta()
                        .owner_references
                        .iter()
                        .flatten()
                        .any(|r| r.uid == owner && r.controller == Some(true))
                })
                .map(|c| {
                    (c.meta().name.clone().unwrap_or_default(), c.meta().uid.clone().unwrap_or_default())
                })
                .collect()
        }
        child_store!(self.children, kind, |store| o(store, owner))
    }

    /// The gateway's credentials Secret as the index holds it.
    pub fn child_secret(&self, ns: &str, name: &str) -> Option<Arc<Secret>> {
        self.children.secrets.get(&reflector::ObjectRef::new(name).within(ns))
    }

    /// A child Deployment as the index holds it.
    pub fn child_deployment(&self, ns: &str, name: &str) -> Option<Arc<Deployment>> {
        self.children.deployments.get(&reflector::ObjectRef::new(name).within(ns))
    }
}
