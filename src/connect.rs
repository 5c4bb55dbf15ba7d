//! The HTTP side for a resolved config, shared by the proxy, `check` and `login`.

use std::sync::Arc;

use crate::config::Config;
use crate::error::ConfigError;
use crate::remote::http::Http;

/// The pooled client, plus sign-in unless the user supplies their own Authorization
/// header.
pub(crate) fn connect(config: &Config) -> Result<Arc<Http>, ConfigError> {
    let client = crate::remote::build_client(config)?;
    let mut http = Http::new(client.clone(), config);
    if !config.headers.contains_key(reqwest::header::AUTHORIZATION) {
        http.auth = Some(Arc::new(crate::auth::Auth::new(
            client,
            config.url.clone(),
            config.auth.clone(),
        )));
    }
    Ok(Arc::new(http))
}
