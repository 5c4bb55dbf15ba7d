//! JSON-RPC classification: never panics; requests have ids; error responses built for
//! whatever id was read (also by `id_from_prefix`) are single-line valid JSON.
#![no_main]
use clerk_mcp_server::jsonrpc::{self, Kind, Parsed};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The id of an over-long line, from its first bytes (any bytes): never panics, and an
    // id it finds makes a valid error response.
    if let Some(id) = jsonrpc::id_from_prefix(data) {
        let line = jsonrpc::error_response(Some(&id), -32600, "too long");
        serde_json::from_str::<&serde_json::value::RawValue>(&line).unwrap();
    }
    let Ok(text) = jsonrpc::as_utf8(data) else { return };
    let check = |m: &jsonrpc::Message<'_>| {
        if m.kind == Kind::Request {
            assert!(m.id.is_some());
        }
        let line = jsonrpc::error_response(m.id.as_ref(), -32000, m.method());
        assert!(!line.contains('\n'));
        // Valid JSON text. (Not `Value`: an id like 22e222222 is valid JSON that f64
        // cannot hold, and the client chose it; it is echoed back as written.)
        serde_json::from_str::<&serde_json::value::RawValue>(&line).unwrap();
    };
    match jsonrpc::parse(text) {
        Ok(Parsed::Single(m)) => check(&m),
        Ok(Parsed::Batch(ms)) => ms.iter().for_each(check),
        Err(e) => {
            let line = jsonrpc::error_response(e.id(), e.code(), &e.to_string());
            serde_json::from_str::<&serde_json::value::RawValue>(&line).unwrap();
        }
    }
});
