//! Layer 1: routes and backends attached to an AIGateway.

use super::egress::Egress;
use super::{CompiledGateway, Diags, Index, Reason, attached, duration, headers};
use crate::api::{self, Object};
use crate::config::{self, Credentials, GatewayConfig};
use std::collections::BTreeMap;

/// Default base URL of the providers that have one.
pub(crate) fn default_url(p: api::Provider) -> Option<&'static str> {
    match p {
        api::Provider::OpenAI => Some("https://api.openai.com/v1"),
        api::Provider::Anthropic => Some("https://api.anthropic.com"),
        api::Provider::Gemini => Some("https://generativelanguage.googleapis.com/v1beta/openai"),
        _ => None,
    }
}

fn provider_kind(p: api::Provider) -> config::ProviderKind {
    match p {
        api::Provider::OpenAI => config::ProviderKind::Openai,
        api::Provider::AzureOpenAI => config::ProviderKind::AzureOpenai,
        api::Provider::Anthropic => config::ProviderKind::Anthropic,
        api::Provider::Gemini => config::ProviderKind::Gemini,
        api::Provider::OpenAICompatible => config::ProviderKind::OpenaiCompatible,
        api::Provider::Bedrock => config::ProviderKind::Bedrock,
        api::Provider::Echo => config::ProviderKind::Echo,
    }
}

/// Compiles one AIBackend; `None` (with diagnostics on it) when it cannot be used.
fn backend(
    index: &Index<'_>,
    obj: &Object,
    b: &api::AIBackend,
    egress: &Egress<'_>,
    creds: &mut Credentials,
    diags: &mut Diags,
) -> Option<config::AiBackendConfig> {
    let spec = &b.spec;
    let url = match (&spec.url, default_url(spec.provider)) {
        (Some(u), _) => u.trim_end_matches('/').to_string(),
        (None, Some(d)) => d.to_string(),
        (None, None) if spec.provider == api::Provider::Echo => String::new(),
        (None, None) => {
            diags.push(
                obj,
                "spec.url",
                Reason::Invalid,
                format!("url is required for provider {:?}", spec.provider),
            );
            return None;
        }
    };
    if let Some(written) = &spec.url
        && !egress.allows(obj, "spec.url", written, diags)
    {
        return None;
    }
    let mut hdrs = Vec::new();
    if let Some(c) = &spec.credentials {
        let credential = match index.secret(obj.namespace(), &c.secret_ref, creds) {
            Ok(r) => r,
            Err(e) => {
                diags.push(obj, "spec.credentials.secretRef", Reason::RefNotFound, e.to_string());
                return None;
            }
        };
        let default_header = match spec.provider {
            api::Provider::AzureOpenAI => "api-key",
            api::Provider::Anthropic => "x-api-key",
            _ => "Authorization",
        };
        let name = c.header.clone().unwrap_or_else(|| default_header.to_string());
        let prefix = c.prefix.clone().unwrap_or_else(|| {
            if name.eq_ignore_ascii_case("authorization") { "Bearer ".into() } else { String::new() }
        });
        hdrs.push(config::HeaderConfig { name, value: None, credential: Some(credential), prefix });
    }
    hdrs.extend(headers(index, obj, "spec.headers", &spec.headers, creds, diags)?);
    let models = spec
        .models
        .iter()
        .map(|m| config::AiModelConfig {
            name: m.name.clone(),
            kind: match m.type_ {
                api::ModelType::Chat => config::ModelKind::Chat,
                api::ModelType::Embedding => config::ModelKind::Embedding,
            },
            price: m.price.as_ref().map(|p| config::PriceConfig {
                input_per_million: p.input_per_million,
                cached_input_per_million: p.cached_input_per_million.unwrap_or(p.input_per_million),
                output_per_million: p.output_per_million,
            }),
        })
        .collect();
    let connect_timeout_ms = duration(obj, "spec.timeouts.connect", &spec.timeouts.connect, diags)?;
    Some(config::AiBackendConfig {
        name: obj.name().to_string(),
        provider: provider_kind(spec.provider),
        url,
        headers: hdrs,
        models,
        connect_timeout_ms,
    })
}

fn is_glob(s: &str) -> bool {
    s.contains(['*', '?'])
}

pub(crate) fn fill(
    index: &Index<'_>,
    gw: &Object,
    mut cfg: GatewayConfig,
    mut creds: Credentials,
    diags: &mut Diags,
) -> CompiledGateway {
    let ns = gw.namespace();
    let egress = Egress::of(index, gw, diags);
    // Backends compiled so far: name → Some(config) or None when unusable.
    let mut backends: BTreeMap<String, Option<config::AiBackendConfig>> = BTreeMap::new();
    let mut rules = Vec::new();
    for obj in index.in_namespace(ns) {
        let Object::AIRoute(route) = obj else { continue };
        if !attached(&route.spec.gateway_refs, gw) {
            continue;
        }
        let mut names = std::collections::BTreeSet::new();
        for (ri, rule) in route.spec.rules.iter().enumerate() {
            let at = format!("spec.rules[{ri}]");
            let name = rule.name.clone().unwrap_or_else(|| format!("rule-{ri}"));
            if !names.insert(name.clone()) {
                diags.push(
                    obj,
                    format!("{at}.name"),
                    Reason::Conflict,
                    format!("rule name {name:?} is used twice"),
                );
                continue;
            }
            let mut targets = Vec::new();
            for (bi, t) in rule.backends.iter().enumerate() {
                let field = format!("{at}.backends[{bi}].backendRef.name");
                let b = match index.get("AIBackend", ns, &t.backend_ref.name) {
                    Some(Object::AIBackend(b)) => b,
                    _ => {
                        diags.push(
                            obj,
                            field,
                            Reason::RefNotFound,
                            format!("AIBackend {:?} not found in namespace {ns:?}", t.backend_ref.name),
                        );
                        continue;
                    }
                };
                let bobj = index.get("AIBackend", ns, &t.backend_ref.name).expect("looked up above");
                let compiled = backends
                    .entry(t.backend_ref.name.clone())
                    .or_insert_with(|| backend(index, bobj, b, &egress, &mut creds, diags));
                let Some(compiled) = compiled else {
                    diags.push(
                        obj,
                        field,
                        Reason::RefNotFound,
                        format!("AIBackend {:?} is not usable (see its diagnostics)", t.backend_ref.name),
                    );
                    continue;
                };
                // The model sent upstream must be one the backend lists (when it lists any).
                let upstream = t.model.clone().or_else(|| {
                    let exact: Vec<&str> =
                        rule.matches.iter().map(|m| m.model.as_str()).filter(|m| !is_glob(m)).collect();
                    (exact.len() == rule.matches.len()).then(|| exact.join("|"))
                });
                if !compiled.models.is_empty() {
                    let known = |m: &str| compiled.models.iter().any(|x| x.name == m);
                    let missing: Vec<String> = match &upstream {
                        Some(u) => u.split('|').filter(|m| !known(m)).map(str::to_string).collect(),
                        None => Vec::new(),
                    };
                    if !missing.is_empty() {
                        let listed: Vec<&str> = compiled.models.iter().map(|m| m.name.as_str()).collect();
                        diags.push(
                            obj,
                            format!("{at}.backends[{bi}].model"),
                            Reason::Invalid,
                            format!(
                                "AIBackend {:?} does not serve model {:?} (it lists: {})",
                                t.backend_ref.name,
                                missing.join(", "),
                                listed.join(", ")
                            ),
                        );
                        continue;
                    }
                }
                targets.push(config::AiTargetConfig {
                    backend: t.backend_ref.name.clone(),
                    model: t.model.clone(),
                    weight: u32::try_from(t.weight).unwrap_or(0),
                    priority: u32::try_from(t.priority).unwrap_or(0),
                });
            }
            if targets.is_empty() {
                diags.push(
                    obj,
                    format!("{at}.backends"),
                    Reason::RefNotFound,
                    "no usable backend: the rule is not served",
                );
                continue;
            }
            if targets.iter().all(|t| t.weight == 0) {
                diags.push(
                    obj,
                    format!("{at}.backends"),
                    Reason::Invalid,
                    "every usable backend has weight 0",
                );
                continue;
            }
            if !guardrail_patterns_compile(obj, &at, &rule.guardrails, diags) {
                continue;
            }
            let Some(compiled) = rule_timing(obj, &at, rule, diags) else { continue };
            let (timeouts, ejection, cache) = compiled;
            rules.push(config::AiRuleConfig {
                route: obj.name().to_string(),
                name,
                matches: rule
                    .matches
                    .iter()
                    .map(|m| config::AiMatchConfig {
                        model: m.model.clone(),
                        headers: m
                            .headers
                            .iter()
                            .map(|h| config::HeaderMatchConfig {
                                name: h.name.to_ascii_lowercase(),
                                value: h.value.clone(),
                            })
                            .collect(),
                    })
                    .collect(),
                targets,
                fallback_on: {
                    let mut f: Vec<config::FallbackOn> =
                        rule.fallback_on.iter().map(|c| fallback(*c)).collect();
                    f.sort();
                    f.dedup();
                    f
                },
                retries: rule.retries.as_ref().map(|r| config::RetryConfig {
                    attempts: u32::try_from(r.attempts).unwrap_or(0),
                    budget_percent: u32::try_from(r.budget_percent).unwrap_or(0),
                }),
                timeouts,
                ejection,
                cache,
                request_guardrails: guardrails(&rule.guardrails.request),
                response_guardrails: guardrails(&rule.guardrails.response),
            });
        }
    }
    cfg.egress = egress.config();
    cfg.ai = Some(config::AiConfig { backends: backends.into_values().flatten().collect(), rules });
    CompiledGateway { config: cfg, credentials: creds }
}

type Timing = (config::TimeoutsConfig, config::EjectionConfig, Option<config::CacheConfig>);

fn rule_timing(obj: &Object, at: &str, rule: &api::RouteRule, diags: &mut Diags) -> Option<Timing> {
    let mut ok = true;
    let mut opt = |field: &str, v: &Option<String>, diags: &mut Diags| match v {
        Some(v) => {
            let d = duration(obj, &format!("{at}.{field}"), v, diags);
            ok &= d.is_some();
            d
        }
        None => None,
    };
    let timeouts = config::TimeoutsConfig {
        first_token_ms: opt("timeouts.firstToken", &rule.timeouts.first_token, diags),
        idle_ms: opt("timeouts.idle", &rule.timeouts.idle, diags),
        total_ms: opt("timeouts.total", &rule.timeouts.total, diags),
    };
    let cooldown = duration(obj, &format!("{at}.ejection.cooldown"), &rule.ejection.cooldown, diags)?;
    let cache = match &rule.cache {
        Some(c) => Some(config::CacheConfig {
            ttl_ms: duration(obj, &format!("{at}.cache.exact.ttl"), &c.exact.ttl, diags)?,
            shared: c.exact.shared,
            max_entries: u32::try_from(c.exact.max_entries).unwrap_or(0),
        }),
        None => None,
    };
    ok.then_some((
        timeouts,
        config::EjectionConfig {
            consecutive_failures: u32::try_from(rule.ejection.consecutive_failures).unwrap_or(1),
            cooldown_ms: cooldown,
        },
        cache,
    ))
}

/// Guardrail regexes must compile; a rule whose guardrail cannot run is not served at all (never
/// served unprotected).
fn guardrail_patterns_compile(obj: &Object, at: &str, g: &api::Guardrails, diags: &mut Diags) -> bool {
    let mut ok = true;
    for (side, list) in [("request", &g.request), ("response", &g.response)] {
        for (gi, rail) in list.iter().enumerate() {
            for (xi, pattern) in rail.regex.iter().enumerate() {
                if let Err(e) = regex::Regex::new(pattern) {
                    let first = e.to_string().lines().last().unwrap_or_default().trim().to_string();
                    diags.push(
                        obj,
                        format!("{at}.guardrails.{side}[{gi}].regex[{xi}]"),
                        Reason::Invalid,
                        format!("invalid regular expression {pattern:?}: {first}; the rule is not served"),
                    );
                    ok = false;
                }
            }
        }
    }
    ok
}

fn fallback(c: api::FallbackCondition) -> config::FallbackOn {
    match c {
        api::FallbackCondition::RateLimited => config::FallbackOn::RateLimited,
        api::FallbackCondition::ServerError => config::FallbackOn::ServerError,
        api::FallbackCondition::Timeout => config::FallbackOn::Timeout,
        api::FallbackCondition::ConnectError => config::FallbackOn::ConnectError,
    }
}

fn guardrails(list: &[api::Guardrail]) -> Vec<config::GuardrailConfig> {
    list.iter()
        .enumerate()
        .map(|(i, g)| config::GuardrailConfig {
            name: g
                .name
                .clone()
                .unwrap_or_else(|| if g.regex.is_empty() { "pii".into() } else { format!("regex-{i}") }),
            pii: g
                .pii
                .iter()
                .map(|p| match p {
                    api::PiiKind::Email => config::PiiDetector::Email,
                    api::PiiKind::Phone => config::PiiDetector::Phone,
                    api::PiiKind::CreditCard => config::PiiDetector::CreditCard,
                    api::PiiKind::Iban => config::PiiDetector::Iban,
                    api::PiiKind::UsSsn => config::PiiDetector::UsSsn,
                })
                .collect(),
            regex: g.regex.clone(),
            action: match g.action {
                api::GuardrailAction::Deny => config::GuardrailActionConfig::Deny,
                api::GuardrailAction::Redact => config::GuardrailActionConfig::Redact,
            },
        })
        .collect()
}
