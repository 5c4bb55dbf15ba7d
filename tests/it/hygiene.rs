//! Guards on the tests themselves: isolation and socket use that a test cannot get wrong
//! without another test failing here.

use std::path::{Path, PathBuf};

use crate::support::RefusedPort;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every run of the binary with a cleared environment gives it a HOME of its own (a
/// tempfile::tempdir). Without HOME the proxy falls back to the user's real home
/// directory (its sign-ins, mcp-remote's cache); with a shared one (the temp dir, a
/// literal path) tests see each other's files. (`run_in` checks the HOME it is given.)
#[test]
fn every_cleared_environment_sets_a_home_of_its_own() {
    let tests = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let mut files = Vec::new();
    rust_files(&tests, &mut files);
    let shared = ["temp", "_dir()"].concat(); // not spelled out, or this file matches
    let clear = [".env_", "clear()"].concat();
    let home = [".env(\"HOME\",", ""].concat();
    let mut bad = Vec::new();
    for file in &files {
        if file.ends_with("hygiene.rs") {
            continue;
        }
        let src = std::fs::read_to_string(file).unwrap();
        let name = file.strip_prefix(&tests).unwrap().display().to_string();
        let line_of = |at: usize| src[..at].lines().count();
        // Every HOME given to a child: not the temp dir, not a literal path.
        for (at, _) in src.match_indices(&home) {
            let rest = src[at + home.len()..].trim_start();
            let value = rest.lines().next().unwrap_or("").trim_end();
            if value.contains(&shared) || value.starts_with('"') {
                bad.push(format!(
                    "{name}:{}: HOME is {value}, shared by every test",
                    line_of(at)
                ));
            }
        }
        for (at, _) in src.match_indices(&clear) {
            // The statement around it: from the previous `;` to the next.
            let start = src[..at].rfind(';').map_or(0, |i| i + 1);
            let end = src[at..].find(';').map_or(src.len(), |i| at + i);
            let stmt = &src[start..end];
            if !stmt.contains(&home) {
                bad.push(format!(
                    "{name}:{}: env_clear() without .env(\"HOME\", <the test's own dir>)",
                    line_of(at)
                ));
            }
        }
    }
    assert!(files.len() > 10, "found the test sources: {files:?}");
    assert!(
        bad.is_empty(),
        "tests without a HOME of their own:\n{}",
        bad.join("\n")
    );
}

/// `RefusedPort` holds its port: nothing else can bind it while it lives (as a freed
/// port could be taken by another test's server), and a connection to it is refused.
#[tokio::test]
async fn a_refused_port_is_held_and_refuses() {
    let refused = RefusedPort::new();
    let addr = ("127.0.0.1", refused.port);
    for _ in 0..3 {
        let bound = std::net::TcpListener::bind(addr);
        assert!(
            matches!(&bound, Err(e) if e.kind() == std::io::ErrorKind::AddrInUse),
            "another listener could bind port {}: {bound:?}",
            refused.port
        );
        // tokio's listeners (the mock servers') set SO_REUSEADDR.
        let bound = tokio::net::TcpListener::bind(addr).await;
        assert!(
            bound.is_err(),
            "a tokio listener could bind port {}: {bound:?}",
            refused.port
        );
        let connected = std::net::TcpStream::connect(addr);
        assert!(
            matches!(&connected, Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused),
            "a connection to port {} was not refused: {connected:?}",
            refused.port
        );
    }
    assert_eq!(
        refused.url(),
        format!("http://127.0.0.1:{}/mcp", refused.port)
    );
}
