use super::*;

fn limit(key: &str, rpm: Option<u64>, tpm: Option<u64>) -> LimitReq {
    LimitReq { key: key.into(), rpm, tpm }
}

#[tokio::test]
async fn memory_rpm_counts_only_admitted_requests_and_resets_next_window() {
    let s = Store::Memory(Arc::new(MemoryStore::new()));
    let l = [limit("p/models/0/a", Some(2), None)];
    let now = 999_980; // 20 s into a window: 40 s left
    assert_eq!(s.admit("t:", now, &l, &[]).await.unwrap(), Admission::Allowed);
    assert_eq!(s.admit("t:", now, &l, &[]).await.unwrap(), Admission::Allowed);
    match s.admit("t:", now, &l, &[]).await.unwrap() {
        Admission::RateLimited { what, limit, retry_after, .. } => {
            assert_eq!((what, limit, retry_after), ("requests", 2, 40));
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(s.admit("t:", now + 40, &l, &[]).await.unwrap(), Admission::Allowed);
}

#[tokio::test]
async fn memory_two_limits_refuse_without_counting_the_other() {
    let s = Store::Memory(Arc::new(MemoryStore::new()));
    let strict = limit("strict", Some(1), None);
    let loose = limit("loose", Some(10), None);
    let both = [loose.clone(), strict.clone()];
    let now = 6_000;
    assert_eq!(s.admit("t:", now, &both, &[]).await.unwrap(), Admission::Allowed);
    assert!(matches!(s.admit("t:", now, &both, &[]).await.unwrap(), Admission::RateLimited { .. }));
    // The refused request was not counted against the loose limit.
    for _ in 0..9 {
        assert_eq!(s.admit("t:", now, std::slice::from_ref(&loose), &[]).await.unwrap(), Admission::Allowed);
    }
    assert!(matches!(s.admit("t:", now, &[loose], &[]).await.unwrap(), Admission::RateLimited { .. }));
}

#[tokio::test]
async fn memory_tokens_refuse_once_exhausted_and_budgets_block() {
    let s = Store::Memory(Arc::new(MemoryStore::new()));
    let l = [limit("k", None, Some(100))];
    let now = unix();
    assert_eq!(s.admit("t:", now, &l, &[]).await.unwrap(), Admission::Allowed);
    s.charge_tokens("t:", now, &l, 150).await.unwrap();
    assert!(matches!(
        s.admit("t:", now, &l, &[]).await.unwrap(),
        Admission::RateLimited { what: "tokens", .. }
    ));
    let b =
        [BudgetReq { key: "b/x/2026-11".into(), limit_micros: 1000, block: true, expires_at: now + 3600 }];
    assert_eq!(s.admit("t:", now, &[], &b).await.unwrap(), Admission::Allowed);
    s.charge_budgets("t:", &b, None, now, 999).await.unwrap();
    assert_eq!(s.admit("t:", now, &[], &b).await.unwrap(), Admission::Allowed);
    s.charge_budgets("t:", &b, None, now, 1).await.unwrap();
    assert_eq!(s.budget_spend("t:", "b/x/2026-11").await.unwrap(), 1000);
    assert_eq!(
        s.admit("t:", now, &[], &b).await.unwrap(),
        Admission::OverBudget { key: "b/x/2026-11".into() }
    );
    let report = [BudgetReq { block: false, ..b[0].clone() }];
    assert_eq!(s.admit("t:", now, &[], &report).await.unwrap(), Admission::Allowed);
}

#[tokio::test]
async fn memory_claims_first_writer_wins_until_expiry() {
    use std::time::Duration;
    let s = Store::Memory(Arc::new(MemoryStore::new()));
    let ttl = Duration::from_secs(60);
    assert_eq!(s.claim("t:", "k", "alice", ttl).await.unwrap(), "alice");
    assert_eq!(s.claim("t:", "k", "bob", ttl).await.unwrap(), "alice");
    assert_eq!(s.lookup("t:", "k", ttl).await.unwrap().as_deref(), Some("alice"));
    assert_eq!(s.lookup("u:", "k", ttl).await.unwrap(), None, "another prefix");
    assert_eq!(s.lookup("t:", "other", ttl).await.unwrap(), None);
    s.claim("t:", "short", "alice", Duration::ZERO).await.unwrap();
    assert_eq!(s.lookup("t:", "short", ttl).await.unwrap(), None, "expired");
    assert_eq!(s.claim("t:", "short", "bob", ttl).await.unwrap(), "bob", "an expired claim is free");
}

fn unix() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

#[tokio::test]
async fn memory_sequenced_lists_number_items_keep_the_last_and_expire() {
    let s = Store::Memory(Arc::new(MemoryStore::new()));
    assert_eq!(s.seq_list("l").await.unwrap(), None);
    for i in 1..=4u64 {
        assert_eq!(s.append_seq("l", &format!("item {i}"), 3, 60).await.unwrap(), i);
    }
    assert_eq!(
        s.seq_list("l").await.unwrap(),
        Some(vec![(2, "item 2".into()), (3, "item 3".into()), (4, "item 4".into())])
    );
    // Another list counts on its own; a list with no time left is gone.
    assert_eq!(s.append_seq("other", "x", 3, 0).await.unwrap(), 1);
    assert_eq!(s.seq_list("other").await.unwrap(), None);
    assert_eq!(s.append_seq("other", "y", 3, 60).await.unwrap(), 1);
}
