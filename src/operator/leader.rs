//! Leader election on a `coordination.k8s.io` Lease, with the `kube-lease-manager` crate (kube 5
//! and k8s-openapi 0.29, like Cairn; it takes the Lease with a server-side apply that conflicts
//! while another holder's field manager owns it, renews before expiry, and releases it when told
//! to). Every replica keeps its caches warm and compiles; only the holder writes (apply and
//! status check [`Leadership::is_leader`] before each request). When a replica becomes leader,
//! every object is reconciled ([`Leadership::acquired`]), which picks up whatever changed while
//! another replica led or none did. A standby takes over within the lease duration after the
//! leader stops renewing, at once when it releases the Lease on SIGTERM.

use super::metrics::Metrics;
use futures_util::Stream;
use kube::Client;
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

/// Seconds a Lease is valid after its last renewal.
pub const LEASE_SECONDS: u64 = 15;
/// Seconds before expiry the holder renews.
pub const GRACE_SECONDS: u64 = 5;

/// Whether this replica may write, shared with every reconcile.
#[derive(Clone)]
pub struct Leadership {
    flag: Arc<AtomicBool>,
    changes: watch::Receiver<bool>,
    // Keeps the channel open for a replica that always leads.
    _always: Option<Arc<watch::Sender<bool>>>,
}

impl Leadership {
    /// A replica that always leads (`--leader-elect=false`).
    pub fn always() -> Self {
        let (tx, changes) = watch::channel(true);
        Leadership { flag: Arc::new(AtomicBool::new(true)), changes, _always: Some(Arc::new(tx)) }
    }

    /// Whether this replica holds the Lease.
    pub fn is_leader(&self) -> bool {
        self.flag.load(Ordering::Acquire)
    }

    /// One item each time this replica becomes leader (the first included).
    pub fn acquired(&self) -> impl Stream<Item = ()> + Send + 'static {
        let rx = self.changes.clone();
        futures_util::stream::unfold(rx, |mut rx| async move {
            loop {
                rx.changed().await.ok()?;
                if *rx.borrow_and_update() {
                    return Some(((), rx));
                }
            }
        })
    }
}

/// A running election.
pub struct Election {
    stop: oneshot::Sender<()>,
    forward: JoinHandle<()>,
    lease: JoinHandle<kube_lease_manager::Result<LeaseManager>>,
    flag: Arc<AtomicBool>,
}

impl Election {
    /// Joins the election for Lease `name` in `namespace` as `identity`.
    pub async fn start(
        client: Client,
        namespace: &str,
        name: &str,
        identity: &str,
        metrics: Arc<Metrics>,
    ) -> kube_lease_manager::Result<(Election, Leadership)> {
        let manager = LeaseManagerBuilder::new(client, name)
            .with_namespace(namespace)
            .with_identity(identity)
            .with_duration(LEASE_SECONDS)
            .with_grace(GRACE_SECONDS)
            .with_field_manager(format!("cairn-operator-lease-{identity}"))
            .build()
            .await?;
        let (mut lease_rx, lease) = manager.watch().await;
        let flag = Arc::new(AtomicBool::new(false));
        let (tx, changes) = watch::channel(false);
        let (stop, mut stopped) = oneshot::channel();
        let f = flag.clone();
        let id = identity.to_string();
        let forward = tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    changed = lease_rx.changed() => {
                        if changed.is_err() {
                            break;
                        }
                        let leader = *lease_rx.borrow_and_update();
                        f.store(leader, Ordering::Release);
                        metrics.set_leader(leader);
                        tracing::info!(identity = %id, leader, "leadership changed");
                        let _ = tx.send(leader);
                    }
                }
            }
            f.store(false, Ordering::Release);
            metrics.set_leader(false);
            // Dropping the receiver tells the lease task to release the Lease.
            drop(lease_rx);
        });
        Ok((
            Election { stop, forward, lease, flag: flag.clone() },
            Leadership { flag, changes, _always: None },
        ))
    }

    /// Stops writing, releases the Lease (so a standby takes over at once) and waits for it.
    pub async fn release(self) {
        self.flag.store(false, Ordering::Release);
        let _ = self.stop.send(());
        let _ = self.forward.await;
        match self.lease.await {
            Ok(Ok(_)) => tracing::info!("released the leader Lease"),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "releasing the leader Lease failed; it expires by itself")
            }
            Err(e) => tracing::warn!(error = %e, "the lease task failed"),
        }
    }
}
