//! The SSE parser, fed an upstream's event stream cut into chunks wherever the input says: it
//! never panics; the events (and the error, if any) do not depend on where the stream was cut;
//! no event's data is larger than the bound it was given; a parser that failed keeps failing.
//!
//! Input: the first byte seeds the chunk sizes (1 to 16 bytes, cycling), the rest is the stream.
#![no_main]

use cairn::gateway::sse::{SseEvent, SseParser};
use libfuzzer_sys::fuzz_target;

const MAX: usize = 4096;

/// The stream parsed from `chunks`: its events and how it ended.
fn parse<'a>(chunks: impl Iterator<Item = &'a [u8]>) -> (Vec<SseEvent>, Result<Option<SseEvent>, String>) {
    let mut p = SseParser::new(MAX);
    let mut events = Vec::new();
    for c in chunks {
        if let Err(e) = p.push_into(c, &mut events) {
            assert_eq!(p.push(b"data: x\n\n").map_err(|e| e.to_string()), Err(e.to_string()), "errors stick");
            return (events, Err(e.to_string()));
        }
        assert!(p.buffered() <= 2 * MAX + c.len(), "the parser holds about one event: {}", p.buffered());
    }
    (events, p.finish().map_err(|e| e.to_string()))
}

fuzz_target!(|data: &[u8]| {
    let Some((&seed, stream)) = data.split_first() else { return };
    let (whole_events, whole_end) = parse(std::iter::once(stream));
    let mut sizes = (0..).map(|i| 1 + (usize::from(seed).wrapping_add(i * 7) % 16));
    let mut rest = stream;
    let mut chunks = Vec::new();
    while !rest.is_empty() {
        let (c, r) = rest.split_at(sizes.next().unwrap().min(rest.len()));
        chunks.push(c);
        rest = r;
    }
    let (cut_events, cut_end) = parse(chunks.into_iter());
    match (&whole_end, &cut_end) {
        (Ok(_), Ok(_)) => {
            assert_eq!(whole_events, cut_events, "the same events whatever the chunking");
            assert_eq!(whole_end, cut_end);
        }
        // An error may come earlier or later depending on the cut, but it is the same error and
        // the events before it agree.
        (Err(a), Err(b)) => {
            assert_eq!(a, b);
            let n = whole_events.len().min(cut_events.len());
            assert_eq!(whole_events[..n], cut_events[..n]);
        }
        _ => panic!("one chunking failed and the other did not: {whole_end:?} / {cut_end:?}"),
    }
    for e in whole_events.iter().chain(whole_end.iter().flatten()) {
        assert!(e.data.len() <= MAX, "an event larger than the bound got through");
        // What the gateway writes reads back as the same event.
        let mut p = SseParser::new(usize::MAX);
        let mut again = p.push(&e.encode()).expect("an encoded event parses");
        again.extend(p.finish().expect("and ends"));
        assert_eq!(again.len(), 1, "{e:?}");
        assert_eq!(again[0].data, e.data);
        assert_eq!(again[0].event, e.event);
    }
});
