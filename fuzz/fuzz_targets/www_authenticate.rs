//! `WWW-Authenticate` parsing never panics and only reports Bearer parameters.
#![no_main]
use clerk_mcp_server::auth::challenge::Challenge;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let values: Vec<&str> = text.split('\n').collect();
    if let Some(c) = Challenge::parse(values.iter().copied()) {
        let _ = c.insufficient_scope();
    }
});
