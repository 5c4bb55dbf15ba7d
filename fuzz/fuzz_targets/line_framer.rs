//! Stdin framing: frames never hold a newline, lines are non-blank and within the bound.
#![no_main]
use clerk_mcp_server::stdio::{Frame, LineReader};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    rt.block_on(async {
        let max = 64;
        let reader = tokio::io::BufReader::with_capacity(7, data);
        let mut lines = LineReader::new(reader, max);
        while let Some(frame) = lines.next().await.unwrap() {
            match frame {
                Frame::Line(l) => {
                    assert!(!l.contains(&b'\n'));
                    assert!(l.len() <= max);
                    assert!(!l.iter().all(u8::is_ascii_whitespace));
                }
                Frame::TooLong { len, head } => assert!(len > max && head.len() <= len),
            }
        }
    });
});
