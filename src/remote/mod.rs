//! The transport: the Streamable HTTP client (`http`), the SSE parser (`sse`), the
//! 2024-11-05 HTTP+SSE transport (`legacy_sse`), the modern request headers (`modern`)
//! and the cookie jar of MCP requests (`cookies`).
//!
//! It takes an outgoing message and hands each framed server message to a [`Deliver`],
//! with typed errors. It knows nothing of stdout, of the client's ids, or of tools: what
//! a message means is the message layer's business (`crate::layer`).

pub(crate) mod cookies;
pub(crate) mod http;
pub(crate) mod legacy_sse;
pub(crate) mod modern;
pub mod sse;

use std::future::Future;

use bytes::Bytes;

use crate::config::{Config, read_ca_file};
use crate::error::ConfigError;

/// Build a pooled HTTP client: rustls with ring, webpki roots compiled in (so the
/// binary works in an empty container) plus `--ca-file`, proxies from the environment.
/// MCP requests get one with the cookie `jar`; sign-in requests one without.
pub(crate) fn build_client(
    config: &Config,
    jar: Option<std::sync::Arc<cookies::Jar>>,
) -> Result<reqwest::Client, ConfigError> {
    // One crypto provider for the whole process. Installing twice (tests) is harmless.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut roots: Vec<reqwest::Certificate> = webpki_root_certs::TLS_SERVER_ROOT_CERTS
        .iter()
        .filter_map(|der| reqwest::Certificate::from_der(der).ok())
        .collect();
    if let Some(path) = &config.ca_file {
        roots.extend(read_ca_file(path)?);
    }
    let mut builder = reqwest::Client::builder();
    if let Some(id) = &config.tls_identity {
        builder = builder.identity(id.identity()?);
    }
    if let Some(jar) = jar {
        builder = builder.cookie_provider(jar);
    }
    if config.ipv4 {
        // A local IPv4 address makes the connector try only the IPv4 addresses.
        builder = builder.local_address(std::net::IpAddr::from(std::net::Ipv4Addr::UNSPECIFIED));
    }
    builder
        .tls_certs_only(roots)
        .connect_timeout(config.connect_timeout)
        .pool_idle_timeout(std::time::Duration::from_secs(90))
        .tcp_nodelay(true)
        .user_agent(concat!("clerk-mcp-server/", env!("CARGO_PKG_VERSION")))
        // reqwest's follower cannot see the method, and turns a POST into a GET on
        // 301-303: `Http::send` follows same-origin redirects itself.
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| ConfigError::Client(e.to_string()))
}

/// Where the transport hands the server's messages, one framed message at a time.
pub(crate) trait Deliver: Send {
    /// One server message. `Err` when nothing more can be delivered (stdout is gone):
    /// the transport stops reading.
    fn deliver(&mut self, data: Bytes) -> impl Future<Output = Result<(), Closed>> + Send;
    /// Whether everything the exchange waits for has arrived, so the stream may stop.
    fn complete(&self) -> bool {
        false
    }
    /// Why the last message was refused, when one was (it goes into the error).
    fn take_malformed(&mut self) -> Option<String> {
        None
    }
}

/// The receiving side is gone: stop reading.
#[derive(Debug)]
pub(crate) struct Closed;
