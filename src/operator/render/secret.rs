//! The gateway's credentials Secret: the bundle of only the credentials its config references,
//! plus its generated keys, as one value, with the bundle's digest as annotation.

use super::child::{Child, ChildKind, Gateway, gateway_labels, meta, secret_name};
use crate::config::packed;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;

pub(super) fn credentials(gw: Gateway<'_>) -> Child {
    let name = secret_name(&gw.owner.name, gw.layer);
    let creds = &gw.compiled.credentials;
    let mut m = meta(gw.owner, &name, &gateway_labels(&gw.owner.name, gw.layer));
    m["annotations"] = json!({packed::CREDENTIALS_ANNOTATION: creds.digest()});
    let rest = json!({
        "type": "Opaque",
        "data": {packed::CREDENTIALS_KEY: STANDARD.encode(creds.to_json())},
    });
    Child::new(ChildKind::Secret, &name, m, rest)
}
