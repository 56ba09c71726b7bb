//! What a request asks for: A2A methods under their 1.0 and 0.3 JSON-RPC names and their REST
//! routes, and the `A2A-Version` header. The few fields of params and results the gateway reads
//! (task ids, skills, webhook URLs) are in [`super::view`]. Bodies are never re-shaped: the
//! gateway forwards them as they came.

use super::error::A2aError;
use http::HeaderMap;

/// An A2A operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    /// `SendMessage` / `message/send`.
    SendMessage,
    /// `SendStreamingMessage` / `message/stream`.
    SendStreamingMessage,
    /// `GetTask` / `tasks/get`.
    GetTask,
    /// `ListTasks` / `tasks/list`.
    ListTasks,
    /// `CancelTask` / `tasks/cancel`.
    CancelTask,
    /// `SubscribeToTask` / `tasks/resubscribe`.
    SubscribeToTask,
    /// `CreateTaskPushNotificationConfig` / `tasks/pushNotificationConfig/set`.
    CreatePushConfig,
    /// `GetTaskPushNotificationConfig` / `tasks/pushNotificationConfig/get`.
    GetPushConfig,
    /// `ListTaskPushNotificationConfigs` / `tasks/pushNotificationConfig/list`.
    ListPushConfigs,
    /// `DeleteTaskPushNotificationConfig` / `tasks/pushNotificationConfig/delete`.
    DeletePushConfig,
    /// `GetExtendedAgentCard` / `agent/getAuthenticatedExtendedCard`.
    GetExtendedAgentCard,
}

/// Which generation of names a JSON-RPC request used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Names {
    /// A2A 1.0 PascalCase names.
    V1,
    /// A2A 0.3 slash names.
    V03,
}

const TABLE: &[(Method, &str, &str)] = &[
    (Method::SendMessage, "SendMessage", "message/send"),
    (Method::SendStreamingMessage, "SendStreamingMessage", "message/stream"),
    (Method::GetTask, "GetTask", "tasks/get"),
    (Method::ListTasks, "ListTasks", "tasks/list"),
    (Method::CancelTask, "CancelTask", "tasks/cancel"),
    (Method::SubscribeToTask, "SubscribeToTask", "tasks/resubscribe"),
    (Method::CreatePushConfig, "CreateTaskPushNotificationConfig", "tasks/pushNotificationConfig/set"),
    (Method::GetPushConfig, "GetTaskPushNotificationConfig", "tasks/pushNotificationConfig/get"),
    (Method::ListPushConfigs, "ListTaskPushNotificationConfigs", "tasks/pushNotificationConfig/list"),
    (Method::DeletePushConfig, "DeleteTaskPushNotificationConfig", "tasks/pushNotificationConfig/delete"),
    (Method::GetExtendedAgentCard, "GetExtendedAgentCard", "agent/getAuthenticatedExtendedCard"),
];

impl Method {
    /// The method of a JSON-RPC method name, 1.0 or 0.3.
    pub fn from_jsonrpc(name: &str) -> Option<(Method, Names)> {
        TABLE.iter().find_map(|(m, v1, v03)| {
            if *v1 == name {
                Some((*m, Names::V1))
            } else if *v03 == name {
                Some((*m, Names::V03))
            } else {
                None
            }
        })
    }

    /// The 1.0 name, for logs and metrics.
    pub fn as_str(self) -> &'static str {
        TABLE.iter().find(|(m, ..)| *m == self).map(|(_, n, _)| *n).unwrap_or("unknown")
    }

    /// Whether the answer is an SSE stream.
    pub fn streams(self) -> bool {
        matches!(self, Method::SendStreamingMessage | Method::SubscribeToTask)
    }

    /// Whether the call names an existing task that must belong to the caller.
    pub fn on_task(self) -> bool {
        matches!(
            self,
            Method::GetTask
                | Method::CancelTask
                | Method::SubscribeToTask
                | Method::CreatePushConfig
                | Method::GetPushConfig
                | Method::ListPushConfigs
                | Method::DeletePushConfig
        )
    }

    /// Whether the call sends a message (may create a task).
    pub fn sends(self) -> bool {
        matches!(self, Method::SendMessage | Method::SendStreamingMessage)
    }
}

/// The `A2A-Version` a request asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// 0.3 (also what an absent header means, A2A 1.0 §3.6).
    V03,
    /// 1.x.
    V1,
}

/// The version a request asks for; an unsupported one is A2A's VersionNotSupported.
pub fn version(headers: &HeaderMap) -> Result<Version, A2aError> {
    let Some(v) = headers.get("a2a-version") else { return Ok(Version::V03) };
    let s = v.to_str().map_err(|_| A2aError::VersionNotSupported("<not text>".into()))?.trim();
    if s.is_empty() {
        return Ok(Version::V03);
    }
    let mut parts = s.splitn(2, '.');
    let major = parts.next().unwrap_or_default();
    let minor = parts.next();
    match (major, minor) {
        ("1", None) => Ok(Version::V1),
        ("1", Some(m)) if m.chars().all(|c| c.is_ascii_digit()) && !m.is_empty() => Ok(Version::V1),
        ("0", Some("3")) => Ok(Version::V03),
        _ => Err(A2aError::VersionNotSupported(s.to_string())),
    }
}

/// A REST route: the operation and the task id in the path, if any.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestRoute {
    /// The operation.
    pub method: Method,
    /// Task id from the path.
    pub task_id: Option<String>,
}

/// The REST operation at `path` (the part below `/agents/{name}`, starting with `/`). A2A 1.0
/// bindings may put a tenant first (`/{tenant}/message:send`, the `tenant` of the card's
/// interface): a path that is no route as it is is tried again without its first segment. The
/// gateway does not interpret tenants: the path, tenant included, is forwarded to the agent's REST
/// base, and task ownership stays keyed by agent and task id (ids are the agent's; were two
/// tenants' ids to collide, the second caller would get TaskNotFound, never the other's task).
pub fn rest_route(method: &http::Method, path: &str) -> Option<RestRoute> {
    route_untenanted(method, path).or_else(|| {
        let (tenant, _) = path.strip_prefix('/')?.split_once('/')?;
        if tenant.is_empty() || tenant == "v1" {
            return None;
        }
        route_untenanted(method, &path[tenant.len() + 1..])
    })
}

fn route_untenanted(method: &http::Method, path: &str) -> Option<RestRoute> {
    use http::Method as M;
    let p = path.strip_prefix("/v1").filter(|p| p.starts_with('/')).unwrap_or(path);
    let route =
        |method, task_id: Option<&str>| Some(RestRoute { method, task_id: task_id.map(percent_decode) });
    match (method, p) {
        (&M::POST, "/message:send" | "/message/send") => return route(Method::SendMessage, None),
        (&M::POST, "/message:stream" | "/message/stream") => {
            return route(Method::SendStreamingMessage, None);
        }
        (&M::GET, "/tasks" | "/tasks/") => return route(Method::ListTasks, None),
        (&M::GET, "/extendedAgentCard" | "/agent-card/extended" | "/card") => {
            return route(Method::GetExtendedAgentCard, None);
        }
        _ => {}
    }
    let rest = p.strip_prefix("/tasks/")?;
    let segments: Vec<&str> = rest.split('/').collect();
    match segments.as_slice() {
        [one] if !one.is_empty() => {
            if let Some(id) = one.strip_suffix(":cancel") {
                return (method == M::POST && !id.is_empty()).then(|| route(Method::CancelTask, Some(id)))?;
            }
            if let Some(id) = one.strip_suffix(":subscribe") {
                return (matches!(*method, M::GET | M::POST) && !id.is_empty())
                    .then(|| route(Method::SubscribeToTask, Some(id)))?;
            }
            (method == M::GET).then(|| route(Method::GetTask, Some(one)))?
        }
        [id, "cancel"] if !id.is_empty() && method == M::POST => route(Method::CancelTask, Some(id)),
        [id, "subscribe"] if !id.is_empty() && matches!(*method, M::GET | M::POST) => {
            route(Method::SubscribeToTask, Some(id))
        }
        [id, "pushNotificationConfigs" | "push-configs"] if !id.is_empty() => match *method {
            M::POST => route(Method::CreatePushConfig, Some(id)),
            M::GET => route(Method::ListPushConfigs, Some(id)),
            _ => None,
        },
        [id, "pushNotificationConfigs" | "push-configs", cfg] if !id.is_empty() && !cfg.is_empty() => {
            match *method {
                M::GET => route(Method::GetPushConfig, Some(id)),
                M::DELETE => route(Method::DeletePushConfig, Some(id)),
                _ => None,
            }
        }
        _ => None,
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = ((b[i + 1] as char).to_digit(16), (b[i + 2] as char).to_digit(16))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderValue, Method as M};

    #[test]
    fn both_generations_of_names_map_to_one_method() {
        assert_eq!(Method::from_jsonrpc("SendMessage"), Some((Method::SendMessage, Names::V1)));
        assert_eq!(Method::from_jsonrpc("message/send"), Some((Method::SendMessage, Names::V03)));
        assert_eq!(Method::from_jsonrpc("tasks/resubscribe"), Some((Method::SubscribeToTask, Names::V03)));
        assert_eq!(
            Method::from_jsonrpc("tasks/pushNotificationConfig/set"),
            Some((Method::CreatePushConfig, Names::V03))
        );
        assert_eq!(Method::from_jsonrpc("sendMessage"), None);
        for (m, v1, v03) in TABLE {
            assert_eq!(Method::from_jsonrpc(v1).map(|x| x.0), Some(*m));
            assert_eq!(Method::from_jsonrpc(v03).map(|x| x.0), Some(*m));
            assert_eq!(m.as_str(), *v1);
        }
    }

    #[test]
    fn version_header() {
        let mut h = HeaderMap::new();
        assert_eq!(version(&h), Ok(Version::V03));
        for (v, want) in [
            ("1.0", Ok(Version::V1)),
            ("1", Ok(Version::V1)),
            ("0.3", Ok(Version::V03)),
            ("", Ok(Version::V03)),
        ] {
            h.insert("a2a-version", HeaderValue::from_static(v));
            assert_eq!(version(&h), want, "{v}");
        }
        for v in ["2.0", "0.2", "1.x", "abc"] {
            h.insert("a2a-version", HeaderValue::from_static(v));
            assert_eq!(version(&h), Err(A2aError::VersionNotSupported(v.into())), "{v}");
        }
    }

    #[test]
    fn rest_routes() {
        let r = |m: M, p: &str| rest_route(&m, p).map(|r| (r.method, r.task_id));
        assert_eq!(r(M::POST, "/message:send"), Some((Method::SendMessage, None)));
        assert_eq!(r(M::POST, "/v1/message:stream"), Some((Method::SendStreamingMessage, None)));
        assert_eq!(r(M::GET, "/tasks/t1"), Some((Method::GetTask, Some("t1".into()))));
        assert_eq!(r(M::GET, "/tasks/a%20b"), Some((Method::GetTask, Some("a b".into()))));
        assert_eq!(r(M::POST, "/tasks/t1:cancel"), Some((Method::CancelTask, Some("t1".into()))));
        assert_eq!(r(M::GET, "/tasks/t1:subscribe"), Some((Method::SubscribeToTask, Some("t1".into()))));
        assert_eq!(r(M::POST, "/tasks/t1:subscribe"), Some((Method::SubscribeToTask, Some("t1".into()))));
        assert_eq!(r(M::GET, "/tasks"), Some((Method::ListTasks, None)));
        assert_eq!(
            r(M::POST, "/tasks/t1/pushNotificationConfigs"),
            Some((Method::CreatePushConfig, Some("t1".into())))
        );
        assert_eq!(
            r(M::GET, "/tasks/t1/pushNotificationConfigs"),
            Some((Method::ListPushConfigs, Some("t1".into())))
        );
        assert_eq!(
            r(M::GET, "/tasks/t1/pushNotificationConfigs/c"),
            Some((Method::GetPushConfig, Some("t1".into())))
        );
        assert_eq!(
            r(M::DELETE, "/tasks/t1/pushNotificationConfigs/c"),
            Some((Method::DeletePushConfig, Some("t1".into())))
        );
        assert_eq!(r(M::GET, "/extendedAgentCard"), Some((Method::GetExtendedAgentCard, None)));
        assert_eq!(r(M::GET, "/message:send"), None);
        assert_eq!(r(M::DELETE, "/tasks/t1"), None);
        assert_eq!(r(M::POST, "/tasks/:cancel"), None);
        assert_eq!(r(M::GET, "/nothing"), None);
        // A tenant first.
        assert_eq!(r(M::POST, "/acme/message:send"), Some((Method::SendMessage, None)));
        assert_eq!(r(M::GET, "/acme/tasks/t1"), Some((Method::GetTask, Some("t1".into()))));
        assert_eq!(r(M::POST, "/acme/tasks/t1:cancel"), Some((Method::CancelTask, Some("t1".into()))));
        assert_eq!(r(M::GET, "/acme/tasks"), Some((Method::ListTasks, None)));
        assert_eq!(r(M::GET, "/tasks/t1"), Some((Method::GetTask, Some("t1".into()))), "not tenant 'tasks'");
        assert_eq!(r(M::GET, "/acme/nothing"), None);
        assert_eq!(r(M::GET, "/a/b/message:send"), None, "one tenant segment at most");
        assert_eq!(r(M::POST, "//message:send"), None);
    }
}
