//! The process's cookie jar (mcp-remote keeps one too): sticky load balancers and
//! session-affinity cookies need their cookie back on the next request.
//!
//! Stricter than a browser on purpose: a cookie goes back only to the exact origin
//! (scheme, host and port) that set it, whatever its `Domain` says, and only on MCP
//! requests: the sign-in traffic uses another client, so nothing set by the MCP server
//! reaches an authorization server or an identity provider. Nothing is written to disk.
//! Bounded: a cookie over 4 KiB is ignored, and an origin keeps at most 50.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use reqwest::header::HeaderValue;
use url::Url;

const MAX_COOKIE: usize = 4096;
const MAX_PER_ORIGIN: usize = 50;

#[derive(Default, Debug)]
pub(crate) struct Jar {
    by_origin: Mutex<HashMap<String, Vec<Kept>>>,
}

#[derive(Debug)]
struct Kept {
    name: String,
    value: String,
    path: String,
    expires: Option<SystemTime>,
}

impl Kept {
    fn live(&self, now: SystemTime) -> bool {
        self.expires.is_none_or(|e| e > now)
    }
}

/// RFC 6265 §5.1.4: the directory of the request path.
fn default_path(url: &Url) -> String {
    let path = url.path();
    match path.rfind('/') {
        Some(0) | None => "/".to_owned(),
        Some(i) => path[..i].to_owned(),
    }
}

/// RFC 6265 §5.1.4 path-match.
fn path_matches(cookie_path: &str, request_path: &str) -> bool {
    request_path == cookie_path
        || request_path.starts_with(cookie_path)
            && (cookie_path.ends_with('/') || request_path[cookie_path.len()..].starts_with('/'))
}

impl Jar {
    fn store(&self, header: &str, url: &Url, now: SystemTime) {
        if header.len() > MAX_COOKIE {
            tracing::debug!("ignored a Set-Cookie of {} bytes", header.len());
            return;
        }
        let Ok(c) = cookie::Cookie::parse(header) else {
            return;
        };
        // Max-Age wins over Expires (RFC 6265 §5.3).
        let expires = match (c.max_age(), c.expires_datetime()) {
            (Some(age), _) => {
                Some(now + Duration::from_secs(u64::try_from(age.whole_seconds()).unwrap_or(0)))
            }
            (None, Some(at)) => Some(SystemTime::from(at)),
            (None, None) => None,
        };
        let path = c
            .path()
            .filter(|p| p.starts_with('/'))
            .map(str::to_owned)
            .unwrap_or_else(|| default_path(url));
        let kept = Kept {
            name: c.name().to_owned(),
            value: c.value().to_owned(),
            path,
            expires,
        };
        let mut jar = self.by_origin.lock().unwrap_or_else(|p| p.into_inner());
        let origin = jar.entry(url.origin().ascii_serialization()).or_default();
        origin.retain(|k| !(k.name == kept.name && k.path == kept.path) && k.live(now));
        if kept.live(now) && origin.len() < MAX_PER_ORIGIN {
            origin.push(kept);
        }
    }

    fn header_for(&self, url: &Url, now: SystemTime) -> Option<HeaderValue> {
        let jar = self.by_origin.lock().unwrap_or_else(|p| p.into_inner());
        let line = jar
            .get(&url.origin().ascii_serialization())?
            .iter()
            .filter(|k| k.live(now) && path_matches(&k.path, url.path()))
            .map(|k| format!("{}={}", k.name, k.value))
            .collect::<Vec<_>>()
            .join("; ");
        if line.is_empty() {
            return None;
        }
        let mut v = HeaderValue::from_str(&line).ok()?;
        v.set_sensitive(true);
        Some(v)
    }
}

impl reqwest::cookie::CookieStore for Jar {
    fn set_cookies(&self, headers: &mut dyn Iterator<Item = &HeaderValue>, url: &Url) {
        let now = SystemTime::now();
        for h in headers {
            if let Ok(h) = h.to_str() {
                self.store(h, url, now);
            }
        }
    }

    fn cookies(&self, url: &Url) -> Option<HeaderValue> {
        self.header_for(url, SystemTime::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn cookies_go_back_only_to_their_origin_and_path() {
        let jar = Jar::default();
        let now = SystemTime::now();
        let mcp = url("https://mcp.test/api/mcp");
        jar.store("lb=node-3; Domain=test; Secure; HttpOnly", &mcp, now);
        jar.store("p=1; Path=/other", &mcp, now);
        let sent = |u: &str| {
            jar.header_for(&url(u), now)
                .map(|v| v.to_str().unwrap().to_owned())
        };
        assert_eq!(
            sent("https://mcp.test/api/mcp").as_deref(),
            Some("lb=node-3")
        );
        assert_eq!(sent("https://mcp.test/other/x").as_deref(), Some("p=1"));
        // Not to another host of the Domain, another scheme, or another port.
        assert_eq!(sent("https://auth.test/api/mcp"), None);
        assert_eq!(sent("http://mcp.test/api/mcp"), None);
        assert_eq!(sent("https://mcp.test:8443/api/mcp"), None);
        // Not to a path outside the cookie's (default path /api).
        assert_eq!(sent("https://mcp.test/apix"), None);
    }

    #[test]
    fn expiry_replacement_and_bounds() {
        let jar = Jar::default();
        let now = SystemTime::now();
        let u = url("https://mcp.test/mcp");
        jar.store("a=1", &u, now);
        jar.store("a=2", &u, now);
        jar.store("gone=1; Max-Age=0", &u, now);
        jar.store("old=1; Expires=Wed, 21 Oct 2015 07:28:00 GMT", &u, now);
        jar.store("short=1; Max-Age=10", &u, now);
        let line = |t| {
            jar.header_for(&u, t)
                .map(|v| v.to_str().unwrap().to_owned())
        };
        assert_eq!(line(now).as_deref(), Some("a=2; short=1"));
        assert_eq!(line(now + Duration::from_secs(11)).as_deref(), Some("a=2"));
        jar.store("a=x; Max-Age=0", &u, now);
        assert_eq!(line(now).as_deref(), Some("short=1"));
        jar.store(&format!("big={}", "x".repeat(MAX_COOKIE)), &u, now);
        for i in 0..100 {
            jar.store(&format!("c{i}=v"), &u, now);
        }
        let count = line(now).unwrap().split("; ").count();
        assert_eq!(count, MAX_PER_ORIGIN);
    }
}
