//! The HTTP side: the Streamable HTTP client (`http`), the SSE parser (`sse`), the
//! 2024-11-05 HTTP+SSE transport (`legacy_sse`) and the modern request headers (`modern`).

pub mod http;
pub mod legacy_sse;
pub mod modern;
pub mod sse;

use std::sync::Arc;

use crate::config::{Config, read_ca_file};
use crate::error::ConfigError;

/// Build the one pooled HTTP client: rustls with ring, webpki roots compiled in (so the
/// binary works in an empty container) plus `--ca-file`, proxies from the environment.
pub fn build_client(config: &Config) -> Result<reqwest::Client, ConfigError> {
    // One crypto provider for the whole process. Installing twice (tests) is harmless.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut roots: Vec<reqwest::Certificate> = webpki_root_certs::TLS_SERVER_ROOT_CERTS
        .iter()
        .filter_map(|der| reqwest::Certificate::from_der(der).ok())
        .collect();
    if let Some(path) = &config.ca_file {
        roots.extend(read_ca_file(path)?);
    }
    reqwest::Client::builder()
        .tls_certs_only(roots)
        .connect_timeout(config.connect_timeout)
        .pool_idle_timeout(std::time::Duration::from_secs(90))
        .tcp_nodelay(true)
        .user_agent(concat!("clerk-mcp-server/", env!("CARGO_PKG_VERSION")))
        // Redirects would re-send the body and headers (tokens) to another place.
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| ConfigError::Client(e.to_string()))
}

/// Shared handle to the HTTP side, cheap to clone into request tasks.
pub type Shared<T> = Arc<T>;
