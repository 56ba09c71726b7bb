//! The gateway's own lists (`tools/list`, `prompts/list`, `resources/list`,
//! `resources/templates/list`): every backend's list read whole (every page followed), merged in
//! server prefix order with prefixed names, filtered by policy and exposure, and served in pages
//! of [`super::runtime::PAGE_SIZE`] under sealed cursors.

use super::protocol::Era;
use super::replies::UpstreamError;
use super::runtime::McpRuntime;
use crate::gateway::jsonrpc::{INVALID_PARAMS, Request};
use futures_util::future::join_all;
use serde_json::{Value, json};

use super::ctx::{Ctx, Outcome, err};
use super::fanout::{internal_id, to_server};

/// Most pages read from one backend for one list.
const MAX_PAGES: usize = 1000;

/// Where the next page of a list starts: sealed into the opaque `nextCursor` (so it is
/// tamper-evident and bound to the gateway) with the method it belongs to.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct ListCursor {
    /// The list method.
    #[serde(rename = "lm")]
    method: String,
    /// Offset of the page's first item.
    #[serde(rename = "lo")]
    offset: usize,
    /// The key (name or URI) of the previous page's last item: the page starts after it when it
    /// is still in the list, so an item added or removed meanwhile does not shift the pages.
    #[serde(rename = "lk")]
    after: String,
}

impl Ctx {
    /// Every item of a list method from server `i`, following its cursors.
    pub(super) async fn list_all(
        &self,
        i: usize,
        method: &str,
        key: &str,
    ) -> Result<Vec<Value>, UpstreamError> {
        super::upstream::collect_pages(method, key, MAX_PAGES, |params| {
            self.call(i, Request::new(internal_id(), method, params))
        })
        .await
    }

    /// A merged list over the servers `visible` selects, each item passed through `map`
    /// (`None` drops it).
    pub(super) async fn merged(
        &self,
        method: &str,
        key: &str,
        visible: impl Fn(usize) -> bool,
        map: impl Fn(usize, Value) -> Option<Value>,
    ) -> Vec<Value> {
        let idx: Vec<usize> = (0..self.rt.upstreams.len())
            .filter(|i| self.backends.contains_key(&self.rt.upstreams[*i].prefix) && visible(*i))
            .collect();
        let lists = join_all(idx.iter().map(|&i| async move {
            let server = &self.rt.servers[i].name;
            (i, to_server(&self.rt, method, server, self.list_all(i, method, key)).await)
        }))
        .await;
        let mut out = Vec::new();
        for (i, r) in lists {
            match r {
                Ok(items) => out.extend(items.into_iter().filter_map(|it| map(i, it))),
                Err(e) => {
                    self.rt.metrics.backend_error(&self.rt.gateway, &self.rt.servers[i].name, method, &e)
                }
            }
        }
        out
    }

    /// The cursor of a list request: `Ok(None)` for the first page, `Err` (-32602 naming the
    /// cursor) for one this gateway did not hand out for this method.
    // The error is the answer to send, made at most once per request.
    #[allow(clippy::result_large_err)]
    pub(super) fn list_cursor(&self, req: &Request) -> Result<Option<ListCursor>, Outcome> {
        let Some(c) = req.params.as_ref().and_then(|p| p.get("cursor")).filter(|c| !c.is_null()) else {
            return Ok(None);
        };
        let shown: String = match c {
            Value::String(s) => s.chars().take(80).collect(),
            other => other.to_string().chars().take(80).collect(),
        };
        let opened = c.as_str().and_then(|s| self.rt.sealer.open_value::<ListCursor>(s));
        match opened {
            Some(cur) if cur.method == req.method => Ok(Some(cur)),
            _ => Err(err(
                req,
                INVALID_PARAMS,
                format!("Invalid params: cursor {shown:?} is not a {} cursor of this gateway", req.method),
            )),
        }
    }

    /// One page of a merged list, with `nextCursor` when more follow; `field` is the items' key.
    pub(super) fn list_page(
        &self,
        req: &Request,
        key: &str,
        field: &str,
        items: Vec<Value>,
        cursor: Option<ListCursor>,
    ) -> Value {
        let size = self.rt.page_size.max(1);
        let start = match &cursor {
            None => 0,
            Some(c) => items
                .iter()
                .position(|it| it.get(field).and_then(Value::as_str) == Some(c.after.as_str()))
                .map(|i| i + 1)
                .unwrap_or(c.offset)
                .min(items.len()),
        };
        let end = (start + size).min(items.len());
        let next = (end < items.len()).then(|| {
            let after = items[end - 1].get(field).and_then(Value::as_str).unwrap_or_default().to_string();
            self.rt.sealer.seal_value(&ListCursor { method: req.method.clone(), offset: end, after })
        });
        let page: Vec<Value> = items.into_iter().skip(start).take(end - start).collect();
        let mut r = json!({ key: page });
        if let Some(n) = next {
            r["nextCursor"] = n.into();
        }
        if self.era == Era::Stateless {
            r["resultType"] = "complete".into();
            r["ttlMs"] = 0.into();
            r["cacheScope"] = "private".into();
        }
        r
    }
}

/// Whether a name (a URI with `uri`) of server `i` reaches server `i` when a client uses it: a
/// prefixed server's always does; a name of the server without a prefix that reads as another
/// server's prefixed one does not, and is left out of lists (logged: a shadowed name, never
/// served by the wrong server).
pub(super) fn reachable(rt: &McpRuntime, i: usize, name: &str, uri: bool) -> bool {
    if !rt.servers[i].prefix.is_empty() {
        return true;
    }
    let routed = if uri { rt.route_uri(name) } else { rt.route_name(name) };
    if routed.is_some_and(|(j, _)| j == i) {
        return true;
    }
    tracing::warn!(target: "cairn::mcp", gateway = %rt.gateway, server = %rt.servers[i].name, name,
        "left out: the name of this server without a prefix reads as another server's prefixed name");
    false
}
