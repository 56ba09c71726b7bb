//! The MCP gateway's two readings of a client's or a server's JSON-RPC body: the general path
//! (`jsonrpc::parse_body` + `Message::from_value`) and the hot path's borrowed views
//! (`mcp::wire`). Neither panics; a message reads back as itself from its wire form; the views
//! agree with the general path on everything they read (so they change how fast a call goes,
//! never what it answers); what the views write is JSON with the fields they promise; and text
//! that `is_canonical` accepts is exactly what serde_json writes for its value.
#![no_main]

use cairn::gateway::jsonrpc::{Body, Message, parse_body};
use cairn::gateway::mcp::wire::{RawResponse, ToolCallRequest, is_canonical};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fn message(v: Value) {
    match Message::from_value(v) {
        Ok(m) => {
            let back = Message::from_value(m.to_value()).expect("a message's wire form reads back");
            assert_eq!(back, m);
            serde_json::to_vec(&m).expect("a message serialises");
        }
        Err(resp) => {
            let e = resp.to_value();
            assert!(e["error"]["code"].is_i64(), "{e}");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let general = parse_body(data);
    match &general {
        Ok(Body::Single(v)) => message(v.clone()),
        Ok(Body::Batch(items)) => items.iter().cloned().for_each(message),
        Err(resp) => assert_eq!(resp.to_value()["error"]["code"], -32700),
    }
    let doc: Option<Value> = serde_json::from_slice(data).ok();

    if let Some(call) = ToolCallRequest::parse(data) {
        let v = doc.clone().expect("a tools/call view is of valid JSON");
        let Ok(Message::Request(r)) = Message::from_value(v.clone()) else {
            panic!("a plain tools/call is a request to the general path too: {v}")
        };
        assert_eq!(r.method, "tools/call");
        assert_eq!(r.id, call.id);
        assert_eq!(r.param_str("name"), Some(call.name));
        assert_eq!(call.params_value().as_ref(), r.params.as_ref());
        let fwd: Value = serde_json::from_slice(&call.forward_body("t")).expect("the forwarded call is JSON");
        assert_eq!(fwd["id"], call.id);
        assert_eq!(fwd["params"]["name"], "t");
        let mut want = r.params.clone().unwrap_or_default();
        want["name"] = "t".into();
        assert_eq!(fwd["params"], want, "only the name changes");
    }

    if let Ok(resp) = RawResponse::parse(data.to_vec()) {
        let v = doc.clone().expect("a response view is of valid JSON");
        let Message::Response(general) = resp.to_message() else { unreachable!() };
        assert_eq!(Message::from_value(v).ok(), Some(Message::Response(general.clone())));
        for stateless in [false, true] {
            let body: Value =
                serde_json::from_slice(&resp.client_body(stateless)).expect("the client's body is JSON");
            assert_eq!(body["id"], resp.id);
            let result = general.outcome.as_ref().expect("a result");
            if stateless {
                assert!(body["result"]["resultType"].is_string(), "{body}");
            } else {
                assert_eq!(&body["result"], result);
            }
        }
    }

    if let (Ok(text), Some(v)) = (std::str::from_utf8(data), &doc)
        && is_canonical(text)
    {
        assert_eq!(serde_json::to_string(v).unwrap(), text, "canonical text is serde_json's own");
    }
});
