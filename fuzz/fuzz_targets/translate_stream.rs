//! Stream translation both ways, fed an upstream's events: an Anthropic Messages event stream
//! into OpenAI chunks (`MessagesToChatStream`), and OpenAI chunks into Anthropic events
//! (`ChatToMessagesStream`). Never a panic; every event out is JSON of the client's API (or
//! OpenAI's `[DONE]`); nothing follows the end of a stream; the Anthropic side's content blocks
//! open and close in order with consecutive indices, after exactly one `message_start`.
//!
//! Input: lines; a line `event<TAB>data` is an event with a name, any other line is data.
#![no_main]

use cairn::gateway::ai::translate::{ChatToMessagesStream, MessagesToChatStream};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let events: Vec<(Option<&str>, &str)> = text
        .lines()
        .map(|l| match l.split_once('\t') {
            Some((e, d)) => (Some(e), d),
            None => (None, l),
        })
        .collect();

    // Anthropic → OpenAI.
    let mut to_chat = MessagesToChatStream::new("m", 0, true);
    let mut finished = false;
    for (event, data) in &events {
        let was_done = to_chat.is_done();
        for out in to_chat.on_event(*event, data) {
            assert!(!was_done && !finished, "an event after the end: {out:?}");
            if out.is_done() {
                finished = true;
                continue;
            }
            let v: Value = serde_json::from_str(&out.data).expect("a chunk is JSON");
            assert!(v["object"] == "chat.completion.chunk" || v.get("error").is_some(), "{v}");
        }
    }
    let _ = to_chat.usage();

    // OpenAI → Anthropic.
    let mut to_messages = ChatToMessagesStream::new("m", 7);
    let mut out = Vec::new();
    for (_, data) in &events {
        let was_done = to_messages.is_done();
        let got = to_messages.on_data(data);
        assert!(!was_done || got.is_empty(), "events after the end: {got:?}");
        out.extend(got);
    }
    out.extend(to_messages.finish());
    assert!(to_messages.is_done(), "finish ends the message");
    assert!(to_messages.finish().is_empty());
    let mut started = 0;
    let mut open: Option<u64> = None;
    let mut next = 0;
    for ev in &out {
        let v: Value = serde_json::from_str(&ev.data).expect("an event is JSON");
        let name = ev.event.as_deref().expect("Anthropic events are named");
        assert_eq!(v["type"], name, "{v}");
        match name {
            "message_start" => {
                assert_eq!((started, next), (0, 0), "one message_start, first");
                started += 1;
            }
            "content_block_start" => {
                assert!(open.is_none(), "a block opened while another is open");
                assert_eq!(v["index"], next, "consecutive block indices");
                open = Some(next);
                next += 1;
            }
            "content_block_delta" => assert_eq!(v["index"].as_u64(), open, "a delta of the open block"),
            "content_block_stop" => {
                assert_eq!(v["index"].as_u64(), open, "the open block closes");
                open = None;
            }
            "message_delta" | "message_stop" => assert!(open.is_none(), "the message ends with its blocks closed"),
            "error" | "ping" => {}
            other => panic!("an unknown event {other}"),
        }
    }
});
