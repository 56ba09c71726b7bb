//! The MCP gateway as an OAuth resource server (RFC 9728): the Protected Resource Metadata
//! document, and the `401` that points a client at it.

use super::reply::{json_response, plain};
use super::runtime::McpRuntime;
use crate::gateway::identity::AuthError;
use crate::gateway::jsonrpc::{INVALID_REQUEST, Response as RpcResponse, RpcError};
use crate::gateway::response::{Body, full};
use http::{Response, StatusCode};
use serde_json::{Value, json};

/// The well-known path of Protected Resource Metadata (RFC 9728).
pub const PRM_PATH: &str = "/.well-known/oauth-protected-resource";

/// `resource_metadata` URL for the gateway's resource: the well-known path with the resource's
/// path appended (RFC 9728 §3.1).
pub fn metadata_url(resource: &str) -> String {
    match resource.parse::<http::Uri>() {
        Ok(u) if u.scheme().is_some() && u.authority().is_some() => {
            let path = u.path().trim_end_matches('/');
            format!(
                "{}://{}{PRM_PATH}{path}",
                u.scheme_str().unwrap_or("https"),
                u.authority().expect("checked")
            )
        }
        _ => format!("{resource}{PRM_PATH}"),
    }
}

pub(super) fn unauthorized(rt: &McpRuntime, e: &AuthError) -> Response<Body> {
    let mut b = Response::builder()
        .status(StatusCode::UNAUTHORIZED)
        .header(http::header::CONTENT_TYPE, "application/json");
    if let Some(o) = &rt.mcp.oauth {
        let mut v = format!("Bearer resource_metadata=\"{}\"", metadata_url(&o.resource));
        if !o.scopes.is_empty() {
            v.push_str(&format!(", scope=\"{}\"", o.scopes.join(" ")));
        }
        if !matches!(e, AuthError::Missing) {
            v.push_str(", error=\"invalid_token\"");
        }
        b = b.header(http::header::WWW_AUTHENTICATE, v);
    } else {
        b = b.header(http::header::WWW_AUTHENTICATE, "Bearer");
    }
    let body = RpcResponse::error(Value::Null, RpcError::new(INVALID_REQUEST, e.to_string())).to_value();
    b.body(full(serde_json::to_vec(&body).expect("json"))).expect("valid response")
}

pub(super) fn prm(rt: &McpRuntime) -> Response<Body> {
    let Some(o) = &rt.mcp.oauth else { return plain(StatusCode::NOT_FOUND, "not found") };
    let mut doc = json!({
        "resource": o.resource,
        "authorization_servers": o.authorization_servers,
        "bearer_methods_supported": ["header"],
        "resource_name": format!("Cairn MCP gateway {}", rt.gateway),
    });
    if !o.scopes.is_empty() {
        doc["scopes_supported"] = json!(o.scopes);
    }
    json_response(StatusCode::OK, &doc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_url_appends_the_resource_path() {
        assert_eq!(
            metadata_url("https://mcp.example.com/mcp"),
            "https://mcp.example.com/.well-known/oauth-protected-resource/mcp"
        );
        assert_eq!(
            metadata_url("https://mcp.example.com"),
            "https://mcp.example.com/.well-known/oauth-protected-resource"
        );
    }
}
