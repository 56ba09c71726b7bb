//! Apply: writes rendered children with server-side apply (one field manager, force), in the
//! order render gives, and deletes the children an owner no longer renders (prune). A child is
//! sent only when its body changed since the operator last applied it or someone else changed
//! the object since (its `resourceVersion` moved): an edited or deleted child is put back at the
//! next reconcile, and an unchanged one costs no request. After a restart every child is applied
//! once more; the API server answers an unchanged apply without writing anything.

use super::context::{Applied, Context};
use super::error::Error;
use super::render::{Child, ChildKind, FIELD_MANAGER, Owner};
use kube::api::{ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, Preconditions};
use kube::core::GroupVersionKind;
use kube::{Api, ResourceExt};
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

fn api(ctx: &Context, kind: ChildKind, ns: &str) -> Api<DynamicObject> {
    let (group, version, k, plural) = kind.gvk();
    let ar = ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, k), plural);
    Api::namespaced_with(ctx.client.clone(), ns, &ar)
}

/// What tells the operator someone else changed a child: its `resourceVersion`, but a
/// Deployment's `generation` (its status moves with every pod; its spec is what is written).
fn version(kind: ChildKind, (rv, generation): &(String, Option<i64>)) -> String {
    match kind {
        ChildKind::Deployment => format!("generation {}", generation.unwrap_or_default()),
        _ => rv.clone(),
    }
}

fn body_hash(child: &Child) -> u64 {
    let mut h = DefaultHasher::new();
    child.body.to_string().hash(&mut h);
    h.finish()
}

/// Applies `children` of `owner` in order, then prunes what `owner` controls of the `prunable`
/// kinds and no longer renders. Returns how many objects changed.
pub async fn children(
    ctx: &Context,
    owner: &Owner,
    children: &[Child],
    prunable: &[ChildKind],
) -> Result<usize, Error> {
    let ns = owner.namespace.as_str();
    let mut writes = 0;
    for child in children {
        let key = (child.kind, ns.to_string(), child.name.clone());
        let hash = body_hash(child);
        let stored = ctx.index.child_version(child.kind, ns, &child.name);
        let last = ctx.applied.lock().unwrap_or_else(|e| e.into_inner()).get(&key).cloned();
        if let (Some(last), Some(stored)) = (&last, &stored)
            && last.body == hash
            && last.version == version(child.kind, stored)
        {
            continue;
        }
        if !ctx.leader.is_leader() {
            return Ok(writes);
        }
        let kind = child.kind.kind();
        let written = api(ctx, child.kind, ns)
            .patch(&child.name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&child.body))
            .await
            .map_err(|source| Error::Apply { kind, name: child.name.clone(), source })?;
        let now = (written.resource_version().unwrap_or_default(), written.metadata.generation);
        // The API server does not write an apply that changes nothing (after a restart every
        // child is applied once: the drift check for the time the operator was away).
        let changed = stored.as_ref().is_none_or(|s| s.0 != now.0);
        ctx.metrics.wrote(kind, if changed { "apply" } else { "apply_unchanged" });
        if changed {
            writes += 1;
            tracing::debug!(kind, name = %child.name, namespace = ns, version = %now.0, "applied");
        }
        let applied = Applied { body: hash, version: version(child.kind, &now) };
        ctx.applied.lock().unwrap_or_else(|e| e.into_inner()).insert(key, applied);
    }
    for kind in prunable {
        for (name, uid) in ctx.index.owned(*kind, &owner.uid) {
            if children.iter().any(|c| c.kind == *kind && c.name == name) {
                continue;
            }
            if !ctx.leader.is_leader() {
                return Ok(writes);
            }
            let dp = DeleteParams {
                preconditions: Some(Preconditions { uid: Some(uid), resource_version: None }),
                ..DeleteParams::default()
            };
            match api(ctx, *kind, ns).delete(&name, &dp).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => continue,
                Err(source) => return Err(Error::Prune { kind: kind.kind(), name, source }),
            }
            tracing::info!(kind = kind.kind(), %name, namespace = ns, owner = %owner.name, "pruned");
            ctx.metrics.wrote(kind.kind(), "delete");
            ctx.applied.lock().unwrap_or_else(|e| e.into_inner()).remove(&(*kind, ns.to_string(), name));
            writes += 1;
        }
    }
    Ok(writes)
}
