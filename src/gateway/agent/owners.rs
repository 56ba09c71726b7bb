//! Task ownership: which caller created a task through the gateway. A task belongs to the caller
//! whose call first revealed its id (the answer to `SendMessage`, or the first event of
//! `SendStreamingMessage` that names it); later calls on the task by anyone else are answered
//! as if the task did not exist. An entry lives `taskOwnershipTtlMs` after its last use.
//!
//! Kept in the gateway's store ([`Store::claim`], [`Store::lookup`]): in the process's memory
//! when the gateway names no store, in its Redis with `store.redis` (key
//! `<prefix>claim:task-owner:<gateway>:<agent>:<task>`, same connection and password as the
//! limits), so that every replica knows every task.
//!
//! **Failure mode.** While Redis is down, calls on tasks are refused with 503 (StoreUnavailable)
//! whatever the store's `failureMode`: `Open` lets calls through without *limits*, but serving a
//! task without proving its owner would hand it to whoever names its id, which no failure mode
//! should mean. A claim that fails is logged and counted (`cairn_store_errors_total`);
//! the call it belongs to is still answered (the task then belongs to nobody and is refused to
//! everyone, the safe side).

use crate::gateway::store::{Store, StoreError};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::time::Duration;

/// Who owns a task, and the skill it was created for (`None`: not known).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    /// Caller subject.
    pub subject: String,
    /// Skill named when the task was created.
    pub skill: Option<String>,
}

/// The store key of a task: gateway, agent and task id.
pub fn key(gateway: &str, agent: &str, task: &str) -> String {
    ["task-owner:", gateway, ":", agent, ":", task].concat()
}

/// An owner as stored: `{"subject": …, "skill": … or null}`.
#[derive(Serialize, Deserialize)]
struct Stored<'a> {
    #[serde(borrow)]
    subject: Cow<'a, str>,
    #[serde(default, borrow)]
    skill: Option<Cow<'a, str>>,
}

fn encode(o: &Owner) -> String {
    let stored = Stored { subject: Cow::Borrowed(&o.subject), skill: o.skill.as_deref().map(Cow::Borrowed) };
    serde_json::to_string(&stored).unwrap_or_default()
}

fn decode(s: &str) -> Option<Owner> {
    let v: Stored = serde_json::from_str(s).ok()?;
    Some(Owner { subject: v.subject.into_owned(), skill: v.skill.map(Cow::into_owned) })
}

/// Records `owner` for the task at `key` unless another live owner holds it; returns the owner
/// in force.
pub async fn claim(
    store: &Store,
    prefix: &str,
    key: &str,
    owner: &Owner,
    ttl: Duration,
) -> Result<Owner, StoreError> {
    let mine = encode(owner);
    let v = store.claim(prefix, key, &mine, ttl).await?;
    if v == mine {
        return Ok(owner.clone());
    }
    Ok(decode(&v).unwrap_or_else(|| owner.clone()))
}

/// The live owner of the task at `key`, refreshing its expiry. A record that does not decode
/// (written by something else) belongs to nobody.
pub async fn get(store: &Store, prefix: &str, key: &str, ttl: Duration) -> Result<Option<Owner>, StoreError> {
    Ok(store.lookup(prefix, key, ttl).await?.as_deref().and_then(decode))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::store::MemoryStore;
    use std::sync::Arc;

    fn o(s: &str) -> Owner {
        Owner { subject: s.into(), skill: None }
    }

    #[tokio::test]
    async fn first_claim_wins_until_it_expires() {
        let store = Store::Memory(Arc::new(MemoryStore::new()));
        let k = key("ns/gw", "billing", "t1");
        let ttl = Duration::from_secs(60);
        assert_eq!(claim(&store, "p:", &k, &o("alice"), ttl).await.unwrap().subject, "alice");
        assert_eq!(claim(&store, "p:", &k, &o("bob"), ttl).await.unwrap().subject, "alice");
        assert_eq!(get(&store, "p:", &k, ttl).await.unwrap().unwrap().subject, "alice");
        assert_eq!(get(&store, "p:", &key("ns/gw", "other", "t1"), ttl).await.unwrap(), None);
        let k2 = key("ns/gw", "billing", "t2");
        claim(&store, "p:", &k2, &o("alice"), Duration::ZERO).await.unwrap();
        assert_eq!(get(&store, "p:", &k2, ttl).await.unwrap(), None);
        assert_eq!(claim(&store, "p:", &k2, &o("bob"), ttl).await.unwrap().subject, "bob");
    }

    #[test]
    fn owners_round_trip_through_their_stored_form() {
        let o = Owner { subject: "alice".into(), skill: Some("refund".into()) };
        assert_eq!(decode(&encode(&o)), Some(o));
        let n = Owner { subject: "bob".into(), skill: None };
        assert_eq!(decode(&encode(&n)), Some(n));
        assert_eq!(decode("not json"), None);
    }
}
