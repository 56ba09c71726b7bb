//! The access and audit log writer: one JSON object per line on stdout, written whole in one
//! write under the stdout lock, so lines of concurrent requests never interleave. What a line
//! holds is each layer's own record (never prompt or answer bodies, never keys).

use serde::Serialize;
use std::cell::RefCell;

/// Writes `line` as one JSON line on stdout (a line that cannot be serialised is dropped). The
/// line is built in a buffer each thread reuses: no allocation per line once warm.
pub fn write_line(line: &impl Serialize) {
    thread_local! {
        static LINE: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    }
    LINE.with_borrow_mut(|buf| {
        buf.clear();
        if serde_json::to_writer(&mut *buf, line).is_ok() {
            buf.push(b'\n');
            let _ = std::io::Write::write_all(&mut std::io::stdout().lock(), buf);
        }
        if buf.capacity() > 64 * 1024 {
            *buf = Vec::new(); // an unusually large line (logged arguments): not kept
        }
    });
}
