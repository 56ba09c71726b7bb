//! Accounting of an AI request: its usage priced into the record, and tokens and cost charged to
//! the limits and budgets it was admitted under.

use super::attempts::Ctx;
use super::record::Record;
use super::usage::{Usage, cost_micro_usd};
use crate::config::AiModelConfig;
use crate::gateway::clock::unix_now;
use crate::gateway::store::SpendRecord;
use std::task::Context;

/// Prices `usage` into the record and charges tokens and cost to the limits and budgets the
/// request was admitted under (once: it takes them). The answer does not wait for the charge:
/// the memory store completes it in place, a Redis round trip goes on in a task of its own,
/// which also lands when the client has already gone. A charge the store cannot take is made in
/// the process's own counters (where a gateway failing open counts) and kept by the Redis store
/// until it answers again.
pub(super) fn account(ctx: &mut Ctx, usage: Usage, price: Option<&AiModelConfig>, rec: &mut Record) {
    let micros = price.and_then(|m| m.price.as_ref()).map_or(0, |p| cost_micro_usd(&usage, p));
    rec.usage = Some(usage);
    rec.cost_micros = micros;
    let rt = ctx.rt.clone();
    let (limits, budgets) =
        (std::mem::take(&mut ctx.admitted.limits), std::mem::take(&mut ctx.admitted.budgets));
    let (subject, model) = (rec.subject.clone(), rec.model.clone());
    run_soon(async move {
        let store = &rt.store;
        let now = unix_now();
        let spend = SpendRecord { gateway: &rt.config.gateway.name, subject: &subject, model: &model };
        let r1 = store.store.charge_tokens(&store.prefix, now, &limits, usage.total()).await;
        let r2 = store.store.charge_budgets(&store.prefix, &budgets, Some(&spend), now, micros).await;
        if let Err(e) = r1.and(r2) {
            tracing::warn!(
                gateway = %rt.gateway, error = %e,
                "charging usage failed; charged in this process, and to the store when it answers again"
            );
            store.failed();
            // The memory store cannot fail.
            let _ = store.local.charge_tokens(&store.prefix, now, &limits, usage.total()).await;
            let _ = store.local.charge_budgets(&store.prefix, &budgets, None, now, micros).await;
        }
    });
}

/// Runs `fut` as far as it goes now, and the rest in a task of its own: work that completes in
/// place (the memory store) is done before this returns, work that waits (network) does not hold
/// up the caller.
fn run_soon(fut: impl std::future::Future<Output = ()> + Send + 'static) {
    let mut fut = Box::pin(fut);
    let mut cx = Context::from_waker(std::task::Waker::noop());
    if fut.as_mut().poll(&mut cx).is_pending() {
        // A stream's body may be dropped where no runtime runs (at shutdown): the charge is lost
        // then rather than panicking in a destructor.
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(fut);
            }
            Err(_) => tracing::warn!("no runtime to finish charging usage"),
        }
    }
}
