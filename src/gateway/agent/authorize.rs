//! Who may do what on an agent gateway: the caller identified, task ownership looked up and
//! recorded, the call admitted (policy for the agent and skill, request limits; one admission
//! path with the other layers, [`crate::gateway::admission`]), and push-notification webhooks
//! checked against the egress rule.

use super::call::Call;
use super::error::A2aError;
use super::owners::{self, Owner};
use super::runtime::AgentRuntime;
use crate::config::Layer;
use crate::gateway::admission::{self, Refusal};
use crate::gateway::egress::check_run_time_url;
use crate::gateway::telemetry::span;
use crate::policy::{Decision, DenyReason, PolicyIndex, Target};
use http::HeaderMap;
use std::time::Duration;

/// Identifies the caller.
pub(super) async fn caller(rt: &AgentRuntime, headers: &HeaderMap) -> Result<String, A2aError> {
    rt.identity.authenticate(headers, &rt.policy).await.map_err(|e| A2aError::Unauthenticated(e.to_string()))
}

/// Whether `subject` has any grant on `agent` (whatever the skill).
pub(super) fn may_use(policy: &PolicyIndex, subject: &str, agent: &str) -> bool {
    match policy.check_agent(subject, agent, None) {
        Decision::Allow(_) => true,
        Decision::Deny(d) => d.reason == DenyReason::SkillUnknown,
    }
}

/// The owner of a task, from the gateway's store.
async fn owner_of(rt: &AgentRuntime, agent: &str, task: &str) -> Result<Option<Owner>, A2aError> {
    let ttl = Duration::from_millis(rt.layer.task_ownership_ttl_ms);
    let key = owners::key(&rt.gateway, agent, task);
    owners::get(&rt.store.store, &rt.store.prefix, &key, ttl).await.map_err(|e| {
        rt.store.failed();
        A2aError::StoreUnavailable(format!("task ownership cannot be checked: {}", e.0))
    })
}

/// The task's owner if it is `subject`; TaskNotFound otherwise (also for tasks never seen).
pub(super) async fn owned_by(
    rt: &AgentRuntime,
    agent: &str,
    task: &str,
    subject: &str,
) -> Result<Owner, A2aError> {
    match owner_of(rt, agent, task).await? {
        Some(o) if o.subject == subject => Ok(o),
        _ => Err(A2aError::TaskNotFound(task.to_string())),
    }
}

/// Records `owner` for a task the call revealed (the first claim wins).
pub(super) async fn claim(rt: &AgentRuntime, agent: &str, task: &str, owner: &Owner) {
    let ttl = Duration::from_millis(rt.layer.task_ownership_ttl_ms);
    let key = owners::key(&rt.gateway, agent, task);
    if let Err(e) = owners::claim(&rt.store.store, &rt.store.prefix, &key, owner, ttl).await {
        rt.store.failed();
        tracing::warn!(gateway = %rt.gateway, agent, task, error = %e, "recording the task's owner failed");
    }
}

/// Policy, ownership, limits and webhook checks of a call; returns the owner record for tasks the
/// call creates (caller and skill).
pub(super) async fn authorize(
    rt: &AgentRuntime,
    agent: &str,
    call: &Call,
    audit: &mut super::audit::Audit,
) -> Result<Owner, A2aError> {
    let subject = audit.subject.to_string();
    let mut skill = None;
    let checked = if call.method.sends() {
        skill = call.facts.skill.clone();
        if let Some(t) = &call.facts.message_task_id {
            audit.task_id = Some(t.clone());
            let o = owned_by(rt, agent, t, &subject).await?;
            skill = skill.or(o.skill);
        }
        audit.skill = skill.clone();
        true
    } else if call.method.on_task() {
        let t = call.task_id.clone().unwrap_or_default();
        audit.task_id = Some(t.clone());
        let o = owned_by(rt, agent, &t, &subject).await?;
        skill = o.skill;
        audit.skill = skill.clone();
        true
    } else {
        false
    };
    audit.context_id = call.facts.context_id.clone();
    let denials = &rt.shared.metrics.denials;
    if checked {
        let target = Target::Agent { agent, skill: skill.as_deref() };
        let admitted = admission::admit(&subject, target, &rt.policy, &rt.store).await;
        let verdict = admitted.as_ref().map(|a| a.by_default);
        admission::record(verdict, &audit.span, denials, &rt.gateway_label, Layer::Agent);
        admitted?;
    } else if !may_use(&rt.policy, &subject, agent) {
        return Err(match rt.policy.check_agent(&subject, agent, None) {
            Decision::Deny(d) => {
                admission::refused(
                    d.reason.category(),
                    &audit.span,
                    denials,
                    &rt.gateway_label,
                    Layer::Agent,
                );
                A2aError::Forbidden(d.to_string())
            }
            Decision::Allow(_) => {
                admission::refused("not-granted", &audit.span, denials, &rt.gateway_label, Layer::Agent);
                A2aError::Forbidden(format!("caller '{subject}' may not use agent '{agent}'"))
            }
        });
    } else {
        span::decision(&audit.span, true, "granted");
    }
    for url in &call.facts.webhook_urls {
        check_run_time_url(url, &rt.egress, &rt.config.egress.allowed_hosts, &*rt.resolver)
            .await
            .map_err(|e| A2aError::InvalidParams(format!("push notification {e}")))?;
    }
    Ok(Owner { subject, skill })
}

impl From<Refusal<'_>> for A2aError {
    fn from(r: Refusal<'_>) -> A2aError {
        match r {
            Refusal::Forbidden(d) => A2aError::Forbidden(d.to_string()),
            Refusal::RateLimited { key, what, limit, retry_after } => A2aError::RateLimited {
                message: format!("rate limit of {limit} {what} per minute reached ({key})"),
                retry_after,
            },
            // Agent calls carry no budget; a spent one would be refused as a limit.
            Refusal::OverBudget { key } => {
                A2aError::RateLimited { message: format!("budget {key} is spent"), retry_after: 60 }
            }
            Refusal::StoreUnavailable(e) => {
                A2aError::StoreUnavailable(admission::store_unavailable_message(&e))
            }
        }
    }
}
