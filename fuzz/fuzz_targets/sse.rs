//! The SSE parser: never panics, respects its bound, and gives the same events however
//! the input is split into chunks.
#![no_main]
use clerk_mcp_server::remote::sse::Parser;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.is_empty() {
        return;
    }
    let split = data[0] as usize % data.len();
    let body = &data[1..];
    let split = split.min(body.len());
    let max = 4096;
    let mut whole = Parser::new(max);
    let mut a = Vec::new();
    let r1 = whole.feed(body, &mut a);
    let mut parts = Parser::new(max);
    let mut b = Vec::new();
    let r2 = parts
        .feed(&body[..split], &mut b)
        .and_then(|()| parts.feed(&body[split..], &mut b));
    if r1.is_ok() && r2.is_ok() {
        assert_eq!(a, b, "events depend on chunking");
        assert_eq!(whole.last_event_id(), parts.last_event_id());
    }
    for e in a.iter().chain(b.iter()) {
        assert!(e.data.len() <= max);
    }
});
