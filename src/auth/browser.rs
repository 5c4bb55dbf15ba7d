//! Opening the authorization URL safely (SEC-URL): http(s) only, never through a shell,
//! always printed to stderr too, and braked so a looping client cannot open tab after tab.

use std::path::Path;

use url::Url;

use crate::auth::store::now_secs;
use crate::auth::{AuthConfig, AuthError};
use crate::error::hint;

/// At most this many unfinished browser opens per minute, across all instances. A
/// sign-in that completes (the callback arrived) does not count, so step-ups work.
const MAX_OPENS_PER_MINUTE: usize = 3;

pub(crate) fn open(url: &Url, cfg: &AuthConfig) -> Result<(), AuthError> {
    check(url)?;
    eprintln!("\nclerk-mcp-server: sign in at this URL:\n\n  {url}\n");
    if cfg.no_browser {
        return Ok(());
    }
    // A person who typed `login` is never braked: the brake is for runaway clients.
    if !cfg.interactive && !brake(&cfg.config_dir) {
        tracing::warn!(
            "not opening the browser again: {MAX_OPENS_PER_MINUTE} sign-ins started within a minute; {}",
            hint::OPEN_URL_YOURSELF
        );
        return Ok(());
    }
    // Off the runtime's one thread: webbrowser waits for the opener (xdg-open...), and
    // the callback listener must be served meanwhile.
    let (url, program) = (url.to_string(), cfg.browser.clone());
    tokio::task::spawn_blocking(move || {
        let result = match program {
            // The program gets the URL as its one argument; no shell is involved.
            Some(program) => std::process::Command::new(program)
                .arg(&url)
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .spawn()
                .map(|_| ()),
            None => webbrowser::open(&url),
        };
        if let Err(e) = result {
            tracing::warn!(
                "could not open a browser ({e}); {}",
                hint::OPEN_URL_YOURSELF
            );
        }
    });
    Ok(())
}

/// Only http and https may be opened: `javascript:`, `file:` and friends are refused.
pub(crate) fn check(url: &Url) -> Result<(), AuthError> {
    match url.scheme() {
        "https" | "http" => Ok(()),
        other => Err(AuthError::UnsafeUrl(format!(
            "the scheme {other:?} is not http or https"
        ))),
    }
}

fn recent_opens(path: &Path) -> Vec<u64> {
    let now = now_secs();
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .filter(|&t: &u64| t + 60 > now)
        .collect()
}

fn write_opens(dir: &Path, opens: &[u64]) {
    let _ = std::fs::create_dir_all(dir);
    let text: String = opens.iter().map(|t| format!("{t}\n")).collect();
    let _ = std::fs::write(dir.join("browser-opens"), text);
}

/// Record an open; false when the unfinished recent ones already reach the limit.
fn brake(dir: &Path) -> bool {
    let mut recent = recent_opens(&dir.join("browser-opens"));
    if recent.len() >= MAX_OPENS_PER_MINUTE {
        return false;
    }
    recent.push(now_secs());
    write_opens(dir, &recent);
    true
}

/// The sign-in the last open started has completed: it no longer counts.
pub(crate) fn completed(dir: &Path) {
    let mut recent = recent_opens(&dir.join("browser-opens"));
    if recent.pop().is_some() {
        write_opens(dir, &recent);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_http_and_https() {
        assert!(check(&Url::parse("https://a.test/authorize").unwrap()).is_ok());
        assert!(check(&Url::parse("javascript:alert(1)").unwrap()).is_err());
        assert!(check(&Url::parse("file:///etc/passwd").unwrap()).is_err());
    }

    #[test]
    fn brake_limits_opens() {
        let dir = tempfile::tempdir().unwrap();
        for _ in 0..MAX_OPENS_PER_MINUTE {
            assert!(brake(dir.path()));
        }
        assert!(!brake(dir.path()));
        completed(dir.path());
        assert!(brake(dir.path()), "a completed sign-in frees its place");
    }
}
