//! The MCP gateway's sealed session ids and list cursors (AEAD, `mcp::session::Sealer`), as a
//! client may send them back: any string opens to nothing or to what this gateway sealed, never
//! a panic; an id sealed for another gateway (or with another key) does not open; one bit
//! flipped anywhere in a sealed id makes it not open; a value sealed opens to itself.
//!
//! Input: the first byte chooses a position to flip; the rest is tried as an id, as a cursor,
//! and as the content of a sealed value.
#![no_main]

use cairn::gateway::mcp::lists::ListCursor;
use cairn::gateway::mcp::session::{Sealer, SessionState};
use libfuzzer_sys::fuzz_target;
use std::sync::LazyLock;

static SEALER: LazyLock<Sealer> = LazyLock::new(|| Sealer::new("fuzz secret", "ns/tools"));
static OTHER_GATEWAY: LazyLock<Sealer> = LazyLock::new(|| Sealer::new("fuzz secret", "ns/other"));
static OTHER_KEY: LazyLock<Sealer> = LazyLock::new(|| Sealer::new("another secret", "ns/tools"));

fuzz_target!(|data: &[u8]| {
    let Some((&flip, rest)) = data.split_first() else { return };
    let text = String::from_utf8_lossy(rest);
    // Anything a client sends: no panic, and (with overwhelming odds) nothing opens.
    assert!(SEALER.open(&text).is_none(), "a forged session id opened: {text:?}");
    assert!(SEALER.open_value::<ListCursor>(&text).is_none(), "a forged cursor opened: {text:?}");
    assert!(SEALER.open_session(&text).is_none());

    // The input as a sealed value.
    let sealed = SEALER.seal_value(&text.as_ref());
    assert!(sealed.bytes().all(|b| b.is_ascii_graphic()), "visible ASCII: {sealed}");
    assert_eq!(SEALER.open_value::<String>(&sealed).as_deref(), Some(text.as_ref()));
    assert!(OTHER_GATEWAY.open_value::<String>(&sealed).is_none(), "bound to its gateway");
    assert!(OTHER_KEY.open_value::<String>(&sealed).is_none(), "bound to its key");
    assert!(SEALER.open_value::<ListCursor>(&sealed).is_none(), "a string is not a cursor");
    assert!(SEALER.open(&sealed).is_none(), "a string is not a session");
    let mut bytes = sealed.into_bytes();
    let i = usize::from(flip) % bytes.len();
    bytes[i] ^= 1 << (flip % 7);
    if let Ok(tampered) = String::from_utf8(bytes) {
        assert!(SEALER.open_value::<String>(&tampered).is_none_or(|t| t == text), "a tampered id opened");
    }
    if let Ok(state) = serde_json::from_str::<SessionState>(&text) {
        let id = SEALER.seal(&state);
        assert!(SEALER.open(&id).is_some(), "a sealed session opens");
    }
});
