// Record the target triple: `self-update` downloads the release asset built for exactly
// this target.
fn main() {
    let target = std::env::var("TARGET").unwrap_or_default();
    println!("cargo:rustc-env=CLERK_MCP_TARGET={target}");
    println!("cargo:rerun-if-changed=build.rs");
}
