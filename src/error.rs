//! Typed errors, and the one place that turns them into user-facing hints and exit codes.
//!
//! Messages name what failed (host, status) and what to do, and never carry a header
//! value, token or session id.

use std::path::PathBuf;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("invalid server URL {url:?}: {why}")]
    Url { url: String, why: String },
    #[error("invalid header ({origin}): {why}")]
    Header { origin: String, why: String },
    #[error("cannot read --header-file {}: {why}", path.display())]
    HeaderFile { path: PathBuf, why: String },
    #[error("cannot use --ca-file {}: {why}", path.display())]
    CaFile { path: PathBuf, why: String },
    #[error("invalid {flag}: {why}")]
    Invalid { flag: &'static str, why: String },
    #[error("cannot open --log-file {}: {why}", path.display())]
    LogFile { path: PathBuf, why: String },
    #[error("cannot set up the HTTP client: {0}")]
    Client(String),
}

/// A failure talking to the remote server. `Display` is what the client sees in a
/// JSON-RPC error message and what `check` prints.
#[derive(Debug, Error)]
pub enum RemoteError {
    #[error("cannot resolve host {host} (DNS lookup failed); check the URL and your network")]
    Dns { host: String },
    #[error(
        "TLS handshake with {host} failed: {why}. If a corporate proxy intercepts TLS, pass its CA with --ca-file"
    )]
    Tls { host: String, why: String },
    #[error("cannot connect to {host}: {why}")]
    Connect { host: String, why: String },
    // `{secs}`, not `{secs:.0}`: a fractional --request-timeout such as 0.5 must read
    // "within 0.5 s", not "within 0 s". f64's Display still prints 300.0 as "300".
    #[error("{host} did not answer within {secs} s (--request-timeout)")]
    Timeout { host: String, secs: f64 },
    #[error("connection to {host} failed: {why}")]
    Io { host: String, why: String },
    #[error("{host} answered HTTP {status}{detail}")]
    Status {
        host: String,
        status: u16,
        /// Already formatted: ": <summary>" or empty.
        detail: String,
    },
    #[error("{host} sent a malformed message: {why}")]
    Malformed { host: String, why: String },
    #[error("the stream from {host} ended before the response{why}")]
    StreamEnded { host: String, why: String },
    #[error("{host} does not look like an MCP endpoint: {why}")]
    NotMcp { host: String, why: String },
    #[error("{0}")]
    Auth(String),
    #[error("{0}")]
    Other(String),
}

impl RemoteError {
    /// Classify a reqwest error by walking its source chain (DNS, TLS, refused, timeout).
    pub fn from_reqwest(host: &str, err: &reqwest::Error, timeout_secs: f64) -> RemoteError {
        let host = host.to_owned();
        if err.is_timeout() {
            return RemoteError::Timeout {
                host,
                secs: timeout_secs,
            };
        }
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
        let mut chain = Vec::new();
        while let Some(s) = source {
            if let Some(tls) = s.downcast_ref::<rustls::Error>() {
                return RemoteError::Tls {
                    host,
                    why: tls.to_string(),
                };
            }
            if let Some(io) = s.downcast_ref::<std::io::Error>() {
                if let Some(inner) = io.get_ref()
                    && let Some(tls) = inner.downcast_ref::<rustls::Error>()
                {
                    return RemoteError::Tls {
                        host,
                        why: tls.to_string(),
                    };
                }
                // tokio-rustls reports handshake and certificate failures as InvalidData
                // I/O errors wrapping the TLS error.
                let https = err.url().is_some_and(|u| u.scheme() == "https");
                if https
                    && err.is_connect()
                    && matches!(
                        io.kind(),
                        std::io::ErrorKind::InvalidData | std::io::ErrorKind::Other
                    )
                {
                    return RemoteError::Tls {
                        host,
                        why: io.to_string(),
                    };
                }
                if io.kind() == std::io::ErrorKind::ConnectionRefused {
                    return RemoteError::Connect {
                        host,
                        why: "connection refused (is the server running?)".into(),
                    };
                }
            }
            chain.push(s.to_string());
            source = s.source();
        }
        let text = chain.join(": ");
        if text.contains("dns error") || text.contains("failed to lookup address") {
            return RemoteError::Dns { host };
        }
        if err.is_connect() {
            return RemoteError::Connect {
                host,
                why: chain.last().cloned().unwrap_or_default(),
            };
        }
        RemoteError::Io {
            host,
            why: chain.last().cloned().unwrap_or_default(),
        }
    }
}

/// Exit codes: 0 success, 1 the remote failed, 2 bad usage or configuration.
pub fn exit_code(err: &anyhow::Error) -> u8 {
    if err.downcast_ref::<ConfigError>().is_some() {
        2
    } else {
        1
    }
}
