//! Typed errors, most of their user-facing hints, and the exit codes.
//!
//! Messages name what failed (host, status) and what to do, and never carry a header
//! value, token or session id.

use std::fmt;
use std::path::PathBuf;

use serde::Deserialize;
use thiserror::Error;

/// What to do next: every message that tells the user which flag to pass or which
/// command to run takes its words from here.
pub(crate) mod hint {
    /// A sign-in that did not finish.
    /// A server that refuses a signed-in user.
    pub(crate) const CHECK_ACCESS: &str = "check that your account has access";
    /// No registration the authorization server allows.
    pub(crate) const CLIENT_ID: &str =
        "pass a pre-registered --client-id (and --client-secret), or --client-metadata-url";
    /// A server that wants a token this proxy does not obtain itself.
    pub(crate) const BEARER_HEADER: &str = "--header \"Authorization: Bearer ...\"";
    /// A TLS handshake that failed.
    pub(crate) const CA_FILE: &str =
        "If a corporate proxy intercepts TLS, pass its CA with --ca-file";
    /// A host name that does not resolve.
    pub(crate) const CHECK_URL: &str = "check the URL and your network";
    /// A refused connection.
    pub(crate) const SERVER_RUNNING: &str = "is the server running?";
    /// A browser that was not opened.
    pub(crate) const OPEN_URL_YOURSELF: &str = "open the URL above yourself";
    /// A failure that can only be a bug of ours.
    pub(crate) const REPORT_BUG: &str = "a bug: please report it with the --log-file output";
    /// `login` with the user's own Authorization header.
    pub(crate) const NOTHING_TO_SIGN_IN: &str =
        "An Authorization header was given with --header: nothing to sign in to.";
}

/// A message over the size bound; `what` names it ("an SSE event", "a response").
pub fn over_limit(what: &str, limit: usize) -> String {
    format!("{what} exceeded the {limit}-byte limit (raise it with --max-message-size)")
}

/// The detail added to an HTTP 401 that this proxy does not answer by signing in.
pub(crate) fn unauthorized_detail() -> String {
    format!(
        " (the server requires sign-in: pass a token with {})",
        hint::BEARER_HEADER
    )
}

/// Sign-in was needed (HTTP `status`) and failed with `err`.
pub(crate) fn sign_in_failed(host: &str, status: u16, err: &AuthError) -> RemoteError {
    RemoteError::Auth(format!(
        "{host} requires sign-in (HTTP {status}), and signing in failed: {err}. If the server \
         uses API keys instead, pass one with {}",
        hint::BEARER_HEADER
    ))
}

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
    #[error(
        "unknown command {given:?}: did you mean `clerk-mcp-server {suggestion}`? (see --help)"
    )]
    UnknownCommand {
        given: String,
        suggestion: &'static str,
    },
    #[error("cannot open --log-file {}: {why}", path.display())]
    LogFile { path: PathBuf, why: String },
    #[error("cannot set up the HTTP client: {0}")]
    Client(String),
    #[error(
        "--token-store keychain: no OS keychain answers ({why}). Unlock or start one (the \
         Secret Service on Linux, e.g. gnome-keyring in a desktop session), or use \
         --token-store file to keep tokens in files in the config directory"
    )]
    Keychain { why: String },
}

/// A failure talking to the remote server. `Display` is what the client sees in a
/// JSON-RPC error message and what `check` prints.
#[derive(Debug, Error)]
pub enum RemoteError {
    #[error("cannot resolve host {host} (DNS lookup failed); {hint}", hint = hint::CHECK_URL)]
    Dns { host: String },
    #[error("TLS handshake with {host} failed: {why}. {hint}", hint = hint::CA_FILE)]
    Tls { host: String, why: String },
    #[error(
        "{host} answered the TLS handshake in plain HTTP: the server speaks http://, not https://, on this port; use an http:// URL"
    )]
    PlainHttp { host: String },
    #[error(
        "{host} asks for a client certificate (mutual TLS): pass it with --tls-cert FILE (and --tls-key FILE if the key is apart)"
    )]
    ClientCertRequired {
        host: String,
        /// The TLS error, for [`RemoteError::with_client_cert`].
        why: String,
    },
    #[error("{host} refused our client certificate (--tls-cert): {why}")]
    ClientCertRefused { host: String, why: String },
    #[error("cannot connect to {host}: {why}")]
    Connect { host: String, why: String },
    // `{secs}`, not `{secs:.0}`: a fractional --request-timeout such as 0.5 must read
    // "within 0.5 s", not "within 0 s". f64's Display still prints 300.0 as "300".
    #[error("{host} did not answer within {secs} s ({flag})")]
    Timeout {
        host: String,
        secs: f64,
        /// The flag that sets this wait.
        flag: &'static str,
    },
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
    #[error("{host} {why}")]
    Redirect { host: String, why: String },
    #[error("{host} does not look like an MCP endpoint: {why}")]
    NotMcp { host: String, why: String },
    #[error("{0}")]
    Auth(String),
    #[error("{0}")]
    Other(String),
}

impl RemoteError {
    /// Classify a reqwest error by walking its source chain (DNS, TLS, refused, timeout).
    /// A failed handshake. A plain-HTTP server answers a TLS hello with an HTTP
    /// response, which rustls reads as a record of an invalid content type.
    fn tls(host: String, why: String) -> RemoteError {
        // The server's alert after our Certificate message: it wanted one (TLS 1.3 says
        // CertificateRequired; TLS 1.2 servers say BadCertificate or HandshakeFailure to
        // an empty one). With a certificate set, see `with_client_cert`.
        let cert_alert = [
            "CertificateRequired",
            "BadCertificate",
            "UnknownCA",
            "CertificateUnknown",
            "HandshakeFailure",
        ]
        .iter()
        .any(|a| why.contains(a));
        if why.contains("InvalidContentType") {
            RemoteError::PlainHttp { host }
        } else if cert_alert {
            RemoteError::ClientCertRequired { host, why }
        } else {
            RemoteError::Tls { host, why }
        }
    }

    /// With `--tls-cert` set, a certificate alert means ours was refused. So does
    /// DecryptError: a server that cannot verify our certificate's signature (a CA it
    /// knows by name but that did not sign it) sends that alert.
    pub(crate) fn with_client_cert(self, client_cert: bool) -> RemoteError {
        match self {
            RemoteError::ClientCertRequired { host, why } if client_cert => {
                RemoteError::ClientCertRefused { host, why }
            }
            RemoteError::Tls { host, why } if client_cert && why.contains("DecryptError") => {
                RemoteError::ClientCertRefused { host, why }
            }
            e => e,
        }
    }

    pub(crate) fn from_reqwest(host: &str, err: &reqwest::Error, timeout_secs: f64) -> RemoteError {
        let host = host.to_owned();
        if err.is_timeout() {
            return RemoteError::Timeout {
                host,
                secs: timeout_secs,
                flag: "--request-timeout",
            };
        }
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
        let mut chain = Vec::new();
        while let Some(s) = source {
            if let Some(tls) = s.downcast_ref::<rustls::Error>() {
                return RemoteError::tls(host, tls.to_string());
            }
            if let Some(io) = s.downcast_ref::<std::io::Error>() {
                if let Some(inner) = io.get_ref()
                    && let Some(tls) = inner.downcast_ref::<rustls::Error>()
                {
                    return RemoteError::tls(host, tls.to_string());
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
                    return RemoteError::tls(host, io.to_string());
                }
                if io.kind() == std::io::ErrorKind::ConnectionRefused {
                    return RemoteError::Connect {
                        host,
                        why: format!("connection refused ({})", hint::SERVER_RUNNING),
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

/// A sign-in failure. `Display` names what failed and what to do; it never carries a
/// token, an authorization code or a client secret.
#[derive(Debug, Error)]
pub(crate) enum AuthError {
    #[error("sign-in discovery failed: {0}")]
    Discovery(String),
    /// A metadata URL could not be fetched at all (DNS, connection, TLS).
    #[error("sign-in discovery failed: fetching {url}: {why}")]
    Unreachable { url: String, why: String },
    #[error(
        "the server's metadata names the resource {advertised:?}, which does not match {server}; refusing to sign in (it could hand a token for one service to another)"
    )]
    ResourceMismatch { advertised: String, server: String },
    #[error(
        "the authorization server supports no registration this client can use; {hint}",
        hint = hint::CLIENT_ID
    )]
    NoRegistration,
    #[error("client registration failed: {0}")]
    Registration(String),
    #[error("sign-in is not possible: {0}")]
    Unsupported(String),
    #[error("sign-in callback: {0}")]
    Callback(String),
    #[error("sign-in was refused: {0}")]
    Denied(String),
    #[error("the token request failed: {0}")]
    Token(String),
    /// An OAuth endpoint answered with an error (RFC 6749 §5.2).
    #[error("{} failed: {error}", .endpoint.request())]
    OAuth {
        endpoint: OAuthEndpoint,
        error: OAuthError,
    },
    #[error(
        "sign-in did not complete in time (--auth-timeout); run `clerk-mcp-server login {url}` to try again"
    )]
    TimedOut { url: String },
    /// The authorization server does not know a client given by flags.
    #[error(
        "the authorization server refused the client {client_id:?} ({error}); check --client-id and --client-secret or --client-key (CLERK_MCP_CLIENT_ID, CLERK_MCP_CLIENT_SECRET, CLERK_MCP_CLIENT_KEY)"
    )]
    ClientRejected { client_id: String, error: String },
    /// Internal: a stale registration was dropped; the sign-in starts over once.
    #[error("the authorization server no longer knows this client's registration")]
    RegistrationDropped,
    #[error(
        "the server still refuses the request after signing in ({0}); {hint}",
        hint = hint::CHECK_ACCESS
    )]
    StillRefused(String),
    #[error("cannot store credentials: {0}")]
    Store(String),
    #[error("refused to open the authorization URL: {0}")]
    UnsafeUrl(String),
}

/// The OAuth endpoints whose error answers are read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OAuthEndpoint {
    Token,
    DeviceAuthorization,
    Registration,
}

impl OAuthEndpoint {
    /// The endpoint, as messages name it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            OAuthEndpoint::Token => "the token endpoint",
            OAuthEndpoint::DeviceAuthorization => "the device authorization endpoint",
            OAuthEndpoint::Registration => "the registration endpoint",
        }
    }

    /// The request that failed, as messages name it.
    fn request(self) -> &'static str {
        match self {
            OAuthEndpoint::Token | OAuthEndpoint::DeviceAuthorization => "the token request",
            OAuthEndpoint::Registration => "client registration",
        }
    }

    /// A failure with no error answer to read (unreachable, unreadable, bare status).
    pub(crate) fn failed(self, why: String) -> AuthError {
        match self {
            OAuthEndpoint::Token | OAuthEndpoint::DeviceAuthorization => AuthError::Token(why),
            OAuthEndpoint::Registration => AuthError::Registration(why),
        }
    }
}

/// An OAuth error answer: RFC 6749 §5.2, also used by registration (RFC 7591 §3.2.2)
/// and the device grant (RFC 8628 §3.5). Only the server's code and description: never
/// anything that was sent.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub(crate) struct OAuthError {
    /// `invalid_grant`, `invalid_client`, `authorization_pending`, ...
    #[serde(rename = "error")]
    pub(crate) code: String,
    #[serde(rename = "error_description", default)]
    pub(crate) description: Option<String>,
}

impl fmt::Display for OAuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let description = self.description.as_deref().unwrap_or_default();
        f.write_str(format!("{} {description}", self.code).trim())
    }
}

/// Exit codes: 0 success, 1 the remote failed, 2 bad usage or configuration.
pub(crate) fn exit_code(err: &anyhow::Error) -> u8 {
    if err.downcast_ref::<ConfigError>().is_some() {
        2
    } else {
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oauth_errors_read_and_shown() {
        let e: OAuthError = serde_json::from_str(
            r#"{"error":"invalid_grant","error_description":"The refresh token expired"}"#,
        )
        .unwrap();
        assert_eq!(e.code, "invalid_grant");
        let shown = AuthError::OAuth {
            endpoint: OAuthEndpoint::Token,
            error: e,
        }
        .to_string();
        assert_eq!(
            shown,
            "the token request failed: invalid_grant The refresh token expired"
        );
        let e: OAuthError = serde_json::from_str(r#"{"error":"invalid_client_metadata"}"#).unwrap();
        let shown = AuthError::OAuth {
            endpoint: OAuthEndpoint::Registration,
            error: e,
        };
        assert_eq!(
            shown.to_string(),
            "client registration failed: invalid_client_metadata"
        );
        assert!(serde_json::from_str::<OAuthError>(r#"{"access_token":"x"}"#).is_err());
    }

    #[test]
    fn hints_read_as_before() {
        assert_eq!(
            unauthorized_detail(),
            " (the server requires sign-in: pass a token with --header \"Authorization: Bearer ...\")"
        );
        let timed_out = AuthError::TimedOut {
            url: "https://x.test/mcp".into(),
        };
        let e = sign_in_failed("x.test", 401, &timed_out).to_string();
        assert!(
            e.ends_with(
                "run `clerk-mcp-server login https://x.test/mcp` to try again. If the server \
                 uses API keys instead, pass one with --header \"Authorization: Bearer ...\""
            ),
            "{e}"
        );
    }
}
