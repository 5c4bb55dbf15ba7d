//! The HTTP side for a resolved config, shared by the proxy, `check` and `login`.

use std::sync::Arc;

use crate::config::Config;
use crate::error::ConfigError;
use crate::remote::http::Http;

/// The pooled client, plus sign-in unless the user supplies their own Authorization
/// header. Sign-in has a client of its own, so the MCP server's cookies never reach an
/// authorization server.
pub(crate) fn connect(config: &Config) -> Result<Arc<Http>, ConfigError> {
    let jar = config.cookies.then(Arc::default);
    let mut http = Http::new(crate::remote::build_client(config, jar)?, config);
    if !config.headers.contains_key(reqwest::header::AUTHORIZATION) {
        http.auth = Some(Arc::new(crate::auth::Auth::new(
            crate::remote::build_client(config, None)?,
            config.url.clone(),
            config.auth.clone(),
        )?));
    }
    Ok(Arc::new(http))
}
