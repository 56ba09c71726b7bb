//! Agent cards as the gateway publishes them: each agent's card rewritten to point at the
//! gateway, cut to the skills the caller may invoke, signed (once per agent, public base, visible
//! skills and card version), served with an `ETag`; and the directory of every agent a caller
//! may use.

use super::audit::{Audit, audit_for, fail};
use super::authorize::{caller, may_use};
use super::card::{self, CardError, public_base};
use super::error::{A2aError, Binding, json_response};
use super::metrics::AgentMetrics;
use super::runtime::{AgentRuntime, SIGNED_CARD_ENTRIES};
use crate::config::A2aAgentConfig;
use crate::gateway::response::{Body, full};
use crate::policy::PolicyIndex;
use http::{HeaderValue, Request, Response, StatusCode, header};
use serde_json::{Value, json};
use std::sync::Arc;

/// The indices of the card's skills `subject` may invoke on `agent` (a skill without an `id` only
/// with a grant without a skill list, as a call naming no skill).
pub(super) fn visible_skills(policy: &PolicyIndex, subject: &str, agent: &str, card: &Value) -> Vec<usize> {
    let Some(skills) = card.get("skills").and_then(Value::as_array) else { return vec![] };
    skills
        .iter()
        .enumerate()
        .filter(|(_, s)| policy.check_agent(subject, agent, s.get("id").and_then(Value::as_str)).is_allowed())
        .map(|(i, _)| i)
        .collect()
}

/// A card as published: rewritten, only the skills at `visible`, its ETag (over the unsigned
/// form), and signed.
pub(super) fn publish_card(
    rt: &AgentRuntime,
    upstream: &Value,
    agent: &str,
    base: &str,
    visible: &[usize],
) -> (String, Value) {
    let mut unsigned = card::rewrite(upstream, &format!("{base}/agents/{agent}"), &rt.config.auth);
    card::keep_skills(&mut unsigned, visible);
    let etag = card::etag(&unsigned);
    (etag, card::sign(unsigned, &rt.signer, &format!("{base}/.well-known/jwks.json")))
}

/// [`publish_card`] of the agent's cached card for `subject`, signed once per (agent, public
/// base, visible skills) and card version, not per caller or call: callers that see the same
/// skills share one signed card.
fn published_card(
    rt: &AgentRuntime,
    upstream: &Arc<Value>,
    agent: &str,
    base: &str,
    subject: &str,
) -> Arc<(String, Value)> {
    let key = (agent.to_string(), base.to_string(), visible_skills(&rt.policy, subject, agent, upstream));
    {
        let cache = rt.signed_cards.lock().unwrap_or_else(|e| e.into_inner());
        // Same card version: the same `Arc` (the card cache replaces it when the card changes).
        if let Some((card, published)) = cache.get(&key)
            && Arc::ptr_eq(card, upstream)
        {
            return published.clone();
        }
    }
    let published = Arc::new(publish_card(rt, upstream, agent, base, &key.2));
    let mut cache = rt.signed_cards.lock().unwrap_or_else(|e| e.into_inner());
    // The public base comes from the request's Host: bound what callers can make us keep.
    if cache.len() >= SIGNED_CARD_ENTRIES {
        cache.clear();
    }
    cache.insert(key, (upstream.clone(), published.clone()));
    published
}

/// `GET /agents/{name}/.well-known/agent-card.json`: the agent's card for this caller, with `ETag`.
pub(super) async fn serve_card<B>(rt: &AgentRuntime, agent: &str, req: Request<B>) -> Response<Body> {
    let mut audit = audit_for(rt, agent, "card", Binding::Rest);
    let subject = match caller(rt, req.headers()).await {
        Ok(s) => s,
        Err(e) => return fail(audit, &rt.shared.metrics, e, Binding::Rest, &Value::Null),
    };
    audit.subject = Arc::from(subject.as_str());
    let Some(cfg) = rt.agents.get(agent).filter(|_| may_use(&rt.policy, &subject, agent)) else {
        return fail(
            audit,
            &rt.shared.metrics,
            A2aError::UnknownAgent(agent.to_string()),
            Binding::Rest,
            &Value::Null,
        );
    };
    let client = &rt.client;
    let upstream = match rt.shared.cards.get(client, agent, &AgentRuntime::card_url(cfg)).await {
        Ok(c) => c,
        Err(e) => return card_error(audit, &rt.shared.metrics, &e),
    };
    let base = public_base(req.headers(), req.uri());
    let published = published_card(rt, &upstream, agent, &base, &subject);
    let (etag, signed) = (&published.0, &published.1);
    let not_modified = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut resp = if not_modified {
        audit.status = 304;
        let mut r = Response::new(full(""));
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else {
        json_response(StatusCode::OK, signed)
    };
    if let Ok(v) = HeaderValue::from_str(etag) {
        resp.headers_mut().insert(header::ETAG, v);
    }
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("private, max-age=30"));
    resp.headers_mut().insert(header::VARY, HeaderValue::from_static("Authorization, Host"));
    audit.finish(&rt.shared.metrics);
    resp
}

fn card_error(mut audit: Audit, metrics: &AgentMetrics, e: &CardError) -> Response<Body> {
    audit.outcome = e.category();
    audit.status = 502;
    audit.error = Some(e.to_string());
    audit.finish(metrics);
    json_response(StatusCode::BAD_GATEWAY, &e.body())
}

/// `GET /agents`: the cards of every agent the caller may use.
pub(super) async fn directory<B>(rt: &AgentRuntime, req: Request<B>) -> Response<Body> {
    let mut audit = audit_for(rt, "", "directory", Binding::Rest);
    let subject = match caller(rt, req.headers()).await {
        Ok(s) => s,
        Err(e) => return fail(audit, &rt.shared.metrics, e, Binding::Rest, &Value::Null),
    };
    audit.subject = Arc::from(subject.as_str());
    let base = public_base(req.headers(), req.uri());
    let client = &rt.client;
    let mut visible: Vec<&A2aAgentConfig> =
        rt.agents.values().filter(|a| may_use(&rt.policy, &subject, &a.name)).collect();
    visible.sort_by(|a, b| a.name.cmp(&b.name));
    let fetches = visible
        .iter()
        .map(|a| async move { (*a, rt.shared.cards.get(client, &a.name, &AgentRuntime::card_url(a)).await) });
    let mut agents = Vec::new();
    for (a, card) in futures_util::future::join_all(fetches).await {
        let url = format!("{base}/agents/{}", a.name);
        let mut entry = json!({"name": a.name, "url": url});
        if let Some(d) = &a.description {
            entry["description"] = json!(d);
        }
        match card {
            Ok(c) => entry["card"] = published_card(rt, &c, &a.name, &base, &subject).1.clone(),
            Err(e) => entry["error"] = json!(e.to_string()),
        }
        agents.push(entry);
    }
    audit.finish(&rt.shared.metrics);
    let mut resp = json_response(StatusCode::OK, &json!({"agents": agents}));
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-cache"));
    resp
}
