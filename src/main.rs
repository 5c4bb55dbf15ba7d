//! A thin entry point: everything lives in the library (see `lib.rs`).
fn main() -> std::process::ExitCode {
    tune_allocator();
    clerk_mcp_server::app::main()
}

/// glibc raises its mmap threshold after the first large free (up to 32 MiB). From then
/// on a 16 MiB message buffer comes from the heap: it is grown by copying and its pages
/// stay with the process after it is freed, so peak and resident memory grow with every
/// large message. A fixed threshold keeps large buffers in their own mappings: grown by
/// `mremap` without a copy, and returned to the system when freed (bench/README.md).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn tune_allocator() {
    // SAFETY: `mallopt` only sets an allocator parameter. It runs first thing in `main`,
    // before any other thread exists, with a parameter and value glibc documents; a
    // refusal (return value 0) leaves glibc's defaults, which are safe too.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune_allocator() {}
