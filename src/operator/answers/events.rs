//! Events for the answers, on state changes only: computed from the status before and after a
//! write, so one change gives one Event however often the objects are reconciled, and a
//! restarted operator (whose first write changes nothing) gives none.
//!
//! - MCPServer: `ToolsDiscovered` (the first list), `ToolsChanged` (tools added or removed),
//!   `ServerBack` (it answers again; its going down is the Warning of `Discovered=False`).
//! - Agent: `CardChanged` (name, version or skills), `CardFetched` (fetched again after a
//!   failure).
//! - AgentPolicy: Warning `BudgetAlmostSpent` when a budget's spend crosses 80 % and
//!   `BudgetSpent` when it crosses 100 % in a window; `SpendKnown` when the store answers again.

use crate::spend::micros_of;
use kube::Resource;
use kube::runtime::events::{Event, EventType, Recorder};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// One Event to publish.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    /// Warning (else Normal).
    pub warning: bool,
    /// PascalCase reason.
    pub reason: &'static str,
    /// For a person.
    pub note: String,
}

fn normal(reason: &'static str, note: String) -> Note {
    Note { warning: false, reason, note }
}

fn cond_status<'a>(status: &'a Value, type_: &str) -> Option<&'a str> {
    status.get("conditions")?.as_array()?.iter().find(|c| c["type"] == type_)?.get("status")?.as_str()
}

fn came_back(old: &Value, new: &Value, type_: &str) -> bool {
    cond_status(old, type_) == Some("False") && cond_status(new, type_) == Some("True")
}

fn names(list: &BTreeSet<String>) -> String {
    const SHOWN: usize = 10;
    let mut s: Vec<&str> = list.iter().take(SHOWN).map(String::as_str).collect();
    let more = list.len().saturating_sub(SHOWN);
    let more = if more > 0 { format!(" and {more} more") } else { String::new() };
    s.dedup();
    format!("{}{more}", s.join(", "))
}

/// The Events the change from `old` to `new` (statuses of an object of `kind`) calls for.
pub fn transitions(kind: &str, old: &Value, new: &Value) -> Vec<Note> {
    let mut out = Vec::new();
    match kind {
        "MCPServer" => {
            let tools = |s: &Value| -> Option<BTreeSet<String>> {
                Some(
                    s.get("tools")?
                        .as_array()?
                        .iter()
                        .filter_map(|t| Some(t["name"].as_str()?.to_string()))
                        .collect(),
                )
            };
            match (tools(old), tools(new)) {
                (None, Some(n)) => {
                    out.push(normal("ToolsDiscovered", format!("{} tools: {}", n.len(), names(&n))))
                }
                (Some(o), Some(n)) if o != n => {
                    let added: BTreeSet<String> = n.difference(&o).cloned().collect();
                    let removed: BTreeSet<String> = o.difference(&n).cloned().collect();
                    let mut parts = Vec::new();
                    if !added.is_empty() {
                        parts.push(format!("added {}", names(&added)));
                    }
                    if !removed.is_empty() {
                        parts.push(format!("removed {}", names(&removed)));
                    }
                    out.push(normal("ToolsChanged", format!("{} tools: {}", n.len(), parts.join("; "))));
                }
                _ => {}
            }
            if came_back(old, new, "Discovered") {
                out.push(normal("ServerBack", "The server answers the operator's tools/list again".into()));
            }
        }
        "Agent" => {
            let card = |s: &Value| {
                s.get("card")
                    .map(|c| (c.get("name").cloned(), c.get("version").cloned(), c.get("skills").cloned()))
            };
            if let (Some(o), Some(n)) = (card(old), card(new))
                && o != n
            {
                let skills = new["card"]["skills"].as_array().map_or(0, Vec::len);
                out.push(normal(
                    "CardChanged",
                    format!(
                        "Card {} is now version {} with {skills} skills",
                        new["card"]["name"], new["card"]["version"]
                    ),
                ));
            }
            if came_back(old, new, "CardFetched") {
                out.push(normal("CardFetched", "The agent's card is fetched again".into()));
            }
        }
        "AgentPolicy" => {
            type Key = (i64, Option<String>);
            let fractions = |s: &Value| -> BTreeMap<Key, (String, f64, String, String)> {
                let mut m = BTreeMap::new();
                for e in s.get("spend").and_then(Value::as_array).into_iter().flatten() {
                    let (Some(used), Some(limit)) = (e["usedUSD"].as_str(), e["limitUSD"].as_str()) else {
                        continue;
                    };
                    let (Ok(u), Ok(l)) = (used.parse::<f64>(), limit.parse::<f64>()) else { continue };
                    let key = (e["budget"].as_i64().unwrap_or(0), e["subject"].as_str().map(str::to_string));
                    let frac = micros_of(u) as f64 / micros_of(l).max(1) as f64;
                    m.insert(
                        key,
                        (
                            e["window"].as_str().unwrap_or_default().to_string(),
                            frac,
                            used.to_string(),
                            limit.to_string(),
                        ),
                    );
                }
                m
            };
            let before = fractions(old);
            for (key, (window, frac, used, limit)) in fractions(new) {
                let was = before.get(&key).filter(|b| b.0 == window).map_or(0.0, |b| b.1);
                let (reason, at) = if frac >= 1.0 && was < 1.0 {
                    ("BudgetSpent", "100")
                } else if frac >= 0.8 && was < 0.8 {
                    ("BudgetAlmostSpent", "80")
                } else {
                    continue;
                };
                let who = key.1.as_ref().map(|s| format!(" of {s}")).unwrap_or_default();
                out.push(Note {
                    warning: true,
                    reason,
                    note: format!(
                        "Budget {}{who} passed {at}% in {window}: {used} of {limit} USD spent",
                        key.0
                    ),
                });
            }
            if came_back(old, new, "SpendKnown") {
                out.push(normal("SpendKnown", "The shared store answers again".into()));
            }
        }
        _ => {}
    }
    out
}

/// Publishes the Events of the change from `old` to `new` on `obj`.
pub async fn publish<K: Resource<DynamicType = ()>>(
    recorder: &Recorder,
    obj: &K,
    kind: &str,
    old: &Value,
    new: &Value,
) {
    for n in transitions(kind, old, new) {
        let event = Event {
            type_: if n.warning { EventType::Warning } else { EventType::Normal },
            reason: n.reason.into(),
            note: Some(n.note),
            action: "Observe".into(),
            secondary: None,
        };
        if let Err(e) = recorder.publish(&event, &obj.object_ref(&())).await {
            tracing::warn!(error = %e, "publishing an Event failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tools(names: &[&str]) -> Value {
        json!({"tools": names.iter().map(|n| json!({"name": n, "allowed": true})).collect::<Vec<_>>(),
               "conditions": [{"type": "Discovered", "status": "True"}]})
    }

    #[test]
    fn a_tool_list_gives_events_when_it_appears_and_changes_only() {
        let first = transitions("MCPServer", &json!({}), &tools(&["a", "b"]));
        assert_eq!(first, [normal("ToolsDiscovered", "2 tools: a, b".into())]);
        assert!(transitions("MCPServer", &tools(&["a", "b"]), &tools(&["b", "a"])).is_empty());
        let changed = transitions("MCPServer", &tools(&["a", "b"]), &tools(&["b", "c"]));
        assert_eq!(changed, [normal("ToolsChanged", "2 tools: added c; removed a".into())]);
    }

    #[test]
    fn a_server_coming_back_is_said_once() {
        let down =
            json!({"tools": [{"name": "a"}], "conditions": [{"type": "Discovered", "status": "False"}]});
        let up = json!({"tools": [{"name": "a"}], "conditions": [{"type": "Discovered", "status": "True"}]});
        assert_eq!(
            transitions("MCPServer", &down, &up),
            [normal("ServerBack", "The server answers the operator's tools/list again".into())]
        );
        assert!(transitions("MCPServer", &up, &up).is_empty());
        assert!(transitions("MCPServer", &up, &down).is_empty(), "going down is the condition's Warning");
    }

    fn spend(used: &str, window: &str) -> Value {
        json!({"spend": [{"budget": 0, "window": window, "subject": "bot", "usedUSD": used, "limitUSD": "50"}]})
    }

    #[test]
    fn budgets_crossing_80_and_100_percent_are_warned_once_per_window() {
        assert!(
            transitions("AgentPolicy", &spend("10.00", "2026-12"), &spend("39.99", "2026-12")).is_empty()
        );
        let at80 = transitions("AgentPolicy", &spend("39.99", "2026-12"), &spend("40.00", "2026-12"));
        assert_eq!(at80.len(), 1);
        assert_eq!(at80[0].reason, "BudgetAlmostSpent");
        assert_eq!(at80[0].note, "Budget 0 of bot passed 80% in 2026-12: 40.00 of 50 USD spent");
        assert!(
            transitions("AgentPolicy", &spend("40.00", "2026-12"), &spend("45.00", "2026-12")).is_empty()
        );
        let at100 = transitions("AgentPolicy", &spend("45.00", "2026-12"), &spend("50.01", "2026-12"));
        assert_eq!(at100[0].reason, "BudgetSpent");
        assert!(at100[0].warning);
        assert!(
            transitions("AgentPolicy", &spend("51.00", "2026-12"), &spend("52.00", "2026-12")).is_empty()
        );
        // A new window starts from nothing.
        let next = transitions("AgentPolicy", &spend("52.00", "2026-12"), &spend("45.00", "2027-01"));
        assert_eq!(next[0].reason, "BudgetAlmostSpent");
        assert!(
            transitions("AgentPolicy", &spend("10.00", "2026-12"), &spend("unknown", "2026-12")).is_empty()
        );
    }

    #[test]
    fn a_changed_card_is_said() {
        let v1 = json!({"card": {"name": "Billing", "version": "1", "skills": [{"id": "a"}]}});
        let v2 = json!({"card": {"name": "Billing", "version": "2", "skills": [{"id": "a"}, {"id": "b"}]}});
        assert_eq!(
            transitions("Agent", &v1, &v2),
            [normal("CardChanged", "Card \"Billing\" is now version \"2\" with 2 skills".into())]
        );
        assert!(transitions("Agent", &json!({}), &v1).is_empty());
    }
}
