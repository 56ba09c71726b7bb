//! Availability under disruption and load: a PodDisruptionBudget when more than one pod runs, a
//! HorizontalPodAutoscaler when autoscaling is asked for (the Deployment then leaves `replicas`
//! to it).

use super::child::{Child, ChildKind, Gateway, base_name, gateway_labels, meta, selector};
use serde_json::json;

/// The fewest pods the gateway runs: `replicas`, or the autoscaler's minimum, or the default 1.
pub(super) fn min_replicas(gw: Gateway<'_>) -> i32 {
    match (&gw.common.autoscaling, gw.common.replicas) {
        (Some(a), _) => a.min_replicas,
        (None, Some(r)) => r,
        (None, None) => 1,
    }
}

/// One pod at a time may be evicted, when there is more than one.
pub(super) fn pdb(gw: Gateway<'_>) -> Option<Child> {
    if min_replicas(gw) <= 1 {
        return None;
    }
    let name = base_name(&gw.owner.name, gw.layer);
    let m = meta(gw.owner, &name, &gateway_labels(&gw.owner.name, gw.layer));
    let rest = json!({"spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector(gw)}}});
    Some(Child::new(ChildKind::PodDisruptionBudget, &name, m, rest))
}

/// CPU-based autoscaling of the gateway Deployment.
pub(super) fn hpa(gw: Gateway<'_>) -> Option<Child> {
    let a = gw.common.autoscaling.as_ref()?;
    let name = base_name(&gw.owner.name, gw.layer);
    let m = meta(gw.owner, &name, &gateway_labels(&gw.owner.name, gw.layer));
    let rest = json!({"spec": {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
        "minReplicas": a.min_replicas,
        "maxReplicas": a.max_replicas,
        "metrics": [{"type": "Resource", "resource": {
            "name": "cpu",
            "target": {"type": "Utilization", "averageUtilization": a.target_cpu_utilization_percentage},
        }}],
    }});
    Some(Child::new(ChildKind::HorizontalPodAutoscaler, &name, m, rest))
}
