//! A thin entry point: everything lives in the library (see `lib.rs`).
fn main() -> std::process::ExitCode {
    clerk_mcp_server::app::main()
}
