//! Index: the operator's reads. One reflector store per watched kind, fed by a watch, for one
//! scope (all namespaces, or one namespace per `--namespace`):
//!
//! - the eight Cairn kinds, in full (minus `managedFields` and the last-applied annotation);
//! - every Secret, **metadata only**: enough to see that a Secret a config uses changed (its
//!   `resourceVersion`), without holding the data of every Secret of the cluster (Helm
//!   releases, TLS keys, …) in memory. The data of the few Secrets the compiled configs name is
//!   read with a GET when their version changes ([`Index::secret_data`]) and cached by version;
//! - the operator's own children (label `app.kubernetes.io/managed-by=cairn-operator`):
//!   Deployments and the gateways' credentials Secrets in full (ready replicas; the generated
//!   keys to carry over), everything else metadata only (version and owner: all that apply and
//!   prune need). Child streams are shared: every controller that owns a kind subscribes to the
//!   one watch.
//!
//! Every event of a Cairn kind, and of a Secret that a compiled config named, marks its
//! namespace changed ([`Changes`]) after the store holds it; the compile stage
//! (`operator::compile`) takes it from there.
//!
//! The watches themselves (driving, slimming, restart counting, what marks a namespace) are in
//! `index/watch.rs`; lookups of the children by kind in `index/children.rs`.

mod changes;
mod children;
mod watch;

pub use changes::Changes;

use super::metrics::Metrics;
use crate::api::{AIBackend, AIGateway, AIRoute, Agent, AgentGateway, AgentPolicy, MCPGateway, MCPServer};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{self, ReflectHandle, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use watch::{STORES, Synced, Touch, api, cairn_store, child_writer, drive, drive_child, slim};

/// Label selecting the operator's children.
pub const CHILD_SELECTOR: &str = "app.kubernetes.io/managed-by=cairn-operator";
/// Longest wait for one Secret read.
const SECRET_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A Secret's data at one `resourceVersion`.
type CachedSecret = (String, Arc<BTreeMap<String, String>>);

/// Stores of the eight Cairn kinds.
#[derive(Clone)]
pub struct Cairn {
    /// AIGateways.
    pub ai_gateways: Store<AIGateway>,
    /// MCPGateways.
    pub mcp_gateways: Store<MCPGateway>,
    /// AgentGateways.
    pub agent_gateways: Store<AgentGateway>,
    /// AIBackends.
    pub ai_backends: Store<AIBackend>,
    /// AIRoutes.
    pub ai_routes: Store<AIRoute>,
    /// MCPServers.
    pub mcp_servers: Store<MCPServer>,
    /// Agents.
    pub agents: Store<Agent>,
    /// AgentPolicies.
    pub agent_policies: Store<AgentPolicy>,
}

/// Stores of the operator's children.
#[derive(Clone)]
pub struct Children {
    /// ConfigMaps (metadata).
    pub config_maps: Store<PartialObjectMeta<ConfigMap>>,
    /// Credentials Secrets (full: the generated keys are read back).
    pub secrets: Store<Secret>,
    /// ServiceAccounts (metadata).
    pub service_accounts: Store<PartialObjectMeta<ServiceAccount>>,
    /// Roles (metadata).
    pub roles: Store<PartialObjectMeta<Role>>,
    /// RoleBindings (metadata).
    pub role_bindings: Store<PartialObjectMeta<RoleBinding>>,
    /// Services (metadata).
    pub services: Store<PartialObjectMeta<Service>>,
    /// Deployments (full: replicas and readiness).
    pub deployments: Store<Deployment>,
    /// PodDisruptionBudgets (metadata).
    pub pdbs: Store<PartialObjectMeta<PodDisruptionBudget>>,
    /// HorizontalPodAutoscalers (metadata).
    pub hpas: Store<PartialObjectMeta<HorizontalPodAutoscaler>>,
}

/// What one controller subscribes to of the child watches.
pub struct ChildStreams {
    /// ConfigMaps.
    pub config_maps: Option<ReflectHandle<PartialObjectMeta<ConfigMap>>>,
    /// Secrets.
    pub secrets: Option<ReflectHandle<Secret>>,
    /// ServiceAccounts.
    pub service_accounts: Option<ReflectHandle<PartialObjectMeta<ServiceAccount>>>,
    /// Roles.
    pub roles: Option<ReflectHandle<PartialObjectMeta<Role>>>,
    /// RoleBindings.
    pub role_bindings: Option<ReflectHandle<PartialObjectMeta<RoleBinding>>>,
    /// Services.
    pub services: Option<ReflectHandle<PartialObjectMeta<Service>>>,
    /// Deployments.
    pub deployments: Option<ReflectHandle<Deployment>>,
    /// PodDisruptionBudgets.
    pub pdbs: Option<ReflectHandle<PartialObjectMeta<PodDisruptionBudget>>>,
    /// HorizontalPodAutoscalers.
    pub hpas: Option<ReflectHandle<PartialObjectMeta<HorizontalPodAutoscaler>>>,
}

/// Who subscribes to the child watches: the three gateway controllers own every child kind, the
/// MCPServer controller owns Deployments and Services.
pub struct Subscriptions {
    /// AIGateway controller.
    pub ai: ChildStreams,
    /// MCPGateway controller.
    pub mcp: ChildStreams,
    /// AgentGateway controller.
    pub agent: ChildStreams,
    /// MCPServer controller.
    pub mcp_server: ChildStreams,
}

/// The reads of one scope.
pub struct Index {
    /// `None`: all namespaces.
    pub namespace: Option<String>,
    /// The Cairn kinds.
    pub cairn: Cairn,
    /// Every Secret's metadata.
    pub secrets_meta: Store<PartialObjectMeta<Secret>>,
    /// The operator's children.
    pub children: Children,
    /// What changed.
    pub changes: Arc<Changes>,
    secret_cache: Mutex<HashMap<(String, String), CachedSecret>>,
    synced: Synced,
    client: Client,
}

impl Index {
    /// Starts every watch of one scope (their tasks run until the process ends) and returns the
    /// index with the child subscriptions of the controllers.
    pub fn start(
        client: Client,
        namespace: Option<String>,
        metrics: Arc<Metrics>,
    ) -> (Arc<Index>, Subscriptions) {
        let ns = namespace.as_deref();
        let changes = Arc::new(Changes::default());
        let synced: Synced = Arc::new(tokio::sync::watch::channel(0).0);
        let cairn = Cairn {
            ai_gateways: cairn_store("AIGateway", &client, ns, &metrics, &changes, &synced),
            mcp_gateways: cairn_store("MCPGateway", &client, ns, &metrics, &changes, &synced),
            agent_gateways: cairn_store("AgentGateway", &client, ns, &metrics, &changes, &synced),
            ai_backends: cairn_store("AIBackend", &client, ns, &metrics, &changes, &synced),
            ai_routes: cairn_store("AIRoute", &client, ns, &metrics, &changes, &synced),
            mcp_servers: cairn_store("MCPServer", &client, ns, &metrics, &changes, &synced),
            agents: cairn_store("Agent", &client, ns, &metrics, &changes, &synced),
            agent_policies: cairn_store("AgentPolicy", &client, ns, &metrics, &changes, &synced),
        };

        let (secrets_meta, writer) = reflector::store();
        let stream = watcher(api::<PartialObjectMeta<Secret>>(&client, ns), watcher::Config::default())
            .default_backoff()
            .modify(slim)
            .reflect(writer);
        let c = changes.clone();
        drive(
            "Secret",
            stream,
            metrics.clone(),
            synced.clone(),
            move |t: Touch<'_, PartialObjectMeta<Secret>>| {
                if let Touch::Apply(s) | Touch::Delete(s) = t {
                    c.secret_changed(s.namespace().as_deref().unwrap_or_default(), &s.name_any())
                }
            },
        );

        let wc = || watcher::Config::default().labels(CHILD_SELECTOR);
        let (config_maps, cm_w) = child_writer();
        let (secrets, sec_w) = child_writer();
        let (service_accounts, sa_w) = child_writer();
        let (roles, role_w) = child_writer();
        let (role_bindings, rb_w) = child_writer();
        let (services, svc_w) = child_writer();
        let (deployments, dep_w) = child_writer();
        let (pdbs, pdb_w) = child_writer();
        let (hpas, hpa_w) = child_writer();
        let all = || ChildStreams {
            config_maps: cm_w.subscribe(),
            secrets: sec_w.subscribe(),
            service_accounts: sa_w.subscribe(),
            roles: role_w.subscribe(),
            role_bindings: rb_w.subscribe(),
            services: svc_w.subscribe(),
            deployments: dep_w.subscribe(),
            pdbs: pdb_w.subscribe(),
            hpas: hpa_w.subscribe(),
        };
        let subscriptions = Subscriptions {
            ai: all(),
            mcp: all(),
            agent: all(),
            mcp_server: ChildStreams {
                config_maps: None,
                secrets: None,
                service_accounts: None,
                roles: None,
                role_bindings: None,
                services: svc_w.subscribe(),
                deployments: dep_w.subscribe(),
                pdbs: None,
                hpas: None,
            },
        };
        drive_child(
            "ConfigMap",
            watcher(api::<PartialObjectMeta<ConfigMap>>(&client, ns), wc()),
            cm_w,
            &metrics,
            &synced,
        );
        drive_child("Secret(child)", watcher(api::<Secret>(&client, ns), wc()), sec_w, &metrics, &synced);
        drive_child(
            "ServiceAccount",
            watcher(api::<PartialObjectMeta<ServiceAccount>>(&client, ns), wc()),
            sa_w,
            &metrics,
            &synced,
        );
        drive_child(
            "Role",
            watcher(api::<PartialObjectMeta<Role>>(&client, ns), wc()),
            role_w,
            &metrics,
            &synced,
        );
        drive_child(
            "RoleBinding",
            watcher(api::<PartialObjectMeta<RoleBinding>>(&client, ns), wc()),
            rb_w,
            &metrics,
            &synced,
        );
        drive_child(
            "Service",
            watcher(api::<PartialObjectMeta<Service>>(&client, ns), wc()),
            svc_w,
            &metrics,
            &synced,
        );
        drive_child("Deployment", watcher(api::<Deployment>(&client, ns), wc()), dep_w, &metrics, &synced);
        drive_child(
            "PodDisruptionBudget",
            watcher(api::<PartialObjectMeta<PodDisruptionBudget>>(&client, ns), wc()),
            pdb_w,
            &metrics,
            &synced,
        );
        drive_child(
            "HorizontalPodAutoscaler",
            watcher(api::<PartialObjectMeta<HorizontalPodAutoscaler>>(&client, ns), wc()),
            hpa_w,
            &metrics,
            &synced,
        );

        let children = Children {
            config_maps,
            secrets,
            service_accounts,
            roles,
            role_bindings,
            services,
            deployments,
            pdbs,
            hpas,
        };
        let index = Index {
            namespace,
            cairn,
            secrets_meta,
            children,
            changes,
            secret_cache: Mutex::new(HashMap::new()),
            synced,
            client,
        };
        (Arc::new(index), subscriptions)
    }

    /// Waits until every store holds its first complete list.
    pub async fn ready(&self) {
        let mut rx = self.synced.subscribe();
        let _ = rx.wait_for(|n| *n >= STORES).await;
    }

    /// Every namespace that holds a Cairn object.
    pub fn namespaces(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        let c = &self.cairn;
        macro_rules! add {
            ($($s:ident),*) => {$(
                for o in c.$s.state() { out.insert(o.namespace().unwrap_or_default()); }
            )*};
        }
        add!(
            ai_gateways,
            mcp_gateways,
            agent_gateways,
            ai_backends,
            ai_routes,
            mcp_servers,
            agents,
            agent_policies
        );
        out
    }

    /// The Cairn objects of one namespace.
    pub fn objects(&self, ns: &str) -> Vec<crate::api::Object> {
        use crate::api::Object;
        let mut out = Vec::new();
        let c = &self.cairn;
        let mine = |o: &dyn ResourceExtNs| o.ns() == ns;
        macro_rules! add {
            ($($s:ident => $v:ident),*) => {$(
                for o in c.$s.state() {
                    if mine(&*o) { out.push(Object::$v((*o).clone())); }
                }
            )*};
        }
        add!(ai_gateways => AIGateway, mcp_gateways => MCPGateway, agent_gateways => AgentGateway,
             ai_backends => AIBackend, ai_routes => AIRoute, mcp_servers => MCPServer, agents => Agent,
             agent_policies => AgentPolicy);
        out
    }

    /// The data of a Secret (keys to UTF-8 text; other values left out, so a reference to them
    /// reports a missing key): from the cache when its version is the one the metadata watch
    /// shows, otherwise read with a GET. `Ok(None)` when the Secret does not exist.
    pub async fn secret_data(
        &self,
        ns: &str,
        name: &str,
    ) -> Result<Option<Arc<BTreeMap<String, String>>>, kube::Error> {
        let key = (ns.to_string(), name.to_string());
        let meta_ref = reflector::ObjectRef::<PartialObjectMeta<Secret>>::new(name).within(ns);
        let Some(meta) = self.secrets_meta.get(&meta_ref) else {
            self.secret_cache.lock().unwrap_or_else(|e| e.into_inner()).remove(&key);
            return Ok(None);
        };
        let version = meta.resource_version().unwrap_or_default();
        if let Some((v, data)) = self.secret_cache.lock().unwrap_or_else(|e| e.into_inner()).get(&key)
            && *v == version
        {
            return Ok(Some(data.clone()));
        }
        // Bounded: the compile stage waits for this read, and a request caught by an API server
        // that is going away or coming back must not hold it for the client's long read timeout.
        let api = Api::<Secret>::namespaced(self.client.clone(), ns);
        let secret = match tokio::time::timeout(SECRET_READ_TIMEOUT, api.get_opt(name)).await {
            Ok(Ok(Some(s))) => s,
            Ok(Ok(None)) => return Ok(None),
            Ok(Err(e)) => return Err(e),
            Err(_) => {
                let status =
                    kube::core::Status::failure(&format!("reading Secret {ns}/{name} timed out"), "Timeout");
                return Err(kube::Error::Api(Box::new(status.with_code(504))));
            }
        };
        let data: BTreeMap<String, String> = secret
            .data
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(k, v)| String::from_utf8(v.0).ok().map(|v| (k, v)))
            .collect();
        let data = Arc::new(data);
        let version = secret.metadata.resource_version.unwrap_or_default();
        self.secret_cache.lock().unwrap_or_else(|e| e.into_inner()).insert(key, (version, data.clone()));
        Ok(Some(data))
    }

    /// Forgets cached Secret data no compile names any more.
    pub fn retain_secrets(&self, ns: &str, named: &BTreeSet<String>) {
        self.secret_cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|(n, name), _| n != ns || named.contains(name));
    }
}

/// The namespace of an object, for filtering stores of different kinds alike.
trait ResourceExtNs {
    fn ns(&self) -> &str;
}

impl<K: Resource> ResourceExtNs for K {
    fn ns(&self) -> &str {
        self.meta().namespace.as_deref().unwrap_or_default()
    }
}
