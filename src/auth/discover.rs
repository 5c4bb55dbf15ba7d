//! Discovery: Protected Resource Metadata (RFC 9728; A-PRM, A-PRM-VALIDATE), then the
//! authorization server's metadata (RFC 8414 and OpenID Connect; A-ASMETA), with the
//! 2025-03-26 fallbacks. Endpoints must be https except on loopback (A-REDIRECT).

use reqwest::header::ACCEPT;
use serde::Deserialize;
use url::Url;

use crate::auth::AuthError;
use crate::auth::challenge::Challenge;
use crate::config::is_loopback;

#[derive(Clone, Debug, Deserialize)]
pub(crate) struct ProtectedResource {
    pub(crate) resource: String,
    #[serde(default)]
    pub(crate) authorization_servers: Vec<String>,
    #[serde(default)]
    pub(crate) scopes_supported: Option<Vec<String>>,
}

#[derive(Clone, Debug, Deserialize, Default)]
pub(crate) struct AsMetadata {
    #[serde(default)]
    pub(crate) issuer: Option<String>,
    pub(crate) authorization_endpoint: String,
    pub(crate) token_endpoint: String,
    #[serde(default)]
    pub(crate) registration_endpoint: Option<String>,
    #[serde(default)]
    pub(crate) device_authorization_endpoint: Option<String>,
    #[serde(default)]
    pub(crate) code_challenge_methods_supported: Option<Vec<String>>,
    #[serde(default)]
    pub(crate) token_endpoint_auth_methods_supported: Option<Vec<String>>,
    #[serde(default)]
    pub(crate) client_id_metadata_document_supported: Option<bool>,
    #[serde(default)]
    pub(crate) authorization_response_iss_parameter_supported: Option<bool>,
    #[serde(default)]
    pub(crate) scopes_supported: Option<Vec<String>>,
    /// RFC 8414: the algorithms a `private_key_jwt` assertion may use.
    #[serde(default)]
    pub(crate) token_endpoint_auth_signing_alg_values_supported: Option<Vec<String>>,
    /// RFC 7009: where `logout` revokes tokens.
    #[serde(default)]
    pub(crate) revocation_endpoint: Option<String>,
    /// RFC 9449 §5.1: the server binds tokens to a DPoP key signed with one of these.
    #[serde(default)]
    pub(crate) dpop_signing_alg_values_supported: Option<Vec<String>>,
}

/// What discovery found.
#[derive(Clone, Debug)]
pub(crate) struct Discovered {
    /// The resource indicator to send (A-RESOURCE).
    pub(crate) resource: String,
    pub(crate) prm: Option<ProtectedResource>,
    /// The authorization server's issuer identifier.
    pub(crate) issuer: String,
    pub(crate) meta: AsMetadata,
    /// Metadata came from a well-known document (not the A-03 defaults).
    pub(crate) from_document: bool,
}

/// `/.well-known/<name>` inserted before the URL's path (RFC 8414 §3.1 / RFC 9728 §3.1).
fn well_known(base: &Url, name: &str, path: &str) -> Option<Url> {
    let path = path.trim_end_matches('/');
    base.join(&format!("/.well-known/{name}{path}")).ok()
}

async fn fetch_json<T: for<'de> Deserialize<'de>>(
    client: &reqwest::Client,
    url: &Url,
) -> Result<Option<T>, AuthError> {
    let resp = client
        .get(url.clone())
        .header(ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| {
            // Unreachable is said at once by the startup probe; other failures are quiet.
            let unreachable = e.is_connect() || e.is_timeout();
            let why = crate::auth::flow::no_answer(e);
            if unreachable {
                AuthError::Unreachable {
                    url: redact(url),
                    why,
                }
            } else {
                AuthError::Discovery(format!("cannot fetch {}: {why}", redact(url)))
            }
        })?;
    if !resp.status().is_success() {
        tracing::debug!(url = %redact(url), status = %resp.status(), "metadata not found here");
        return Ok(None);
    }
    let bytes = resp.bytes().await.map_err(|e| {
        AuthError::Discovery(format!("reading {}: {}", redact(url), e.without_url()))
    })?;
    match serde_json::from_slice(&bytes) {
        Ok(v) => Ok(Some(v)),
        Err(e) => {
            tracing::debug!(url = %redact(url), "not usable metadata: {e}");
            Ok(None)
        }
    }
}

fn redact(url: &Url) -> String {
    crate::config::redact_url(url)
}

/// Fetch and validate the server's Protected Resource Metadata (A-PRM): the challenge's
/// `resource_metadata` first, then the path-aware well-known URL, then the root one.
pub(crate) async fn protected_resource(
    client: &reqwest::Client,
    server: &Url,
    challenge: Option<&Challenge>,
) -> Result<Option<ProtectedResource>, AuthError> {
    let mut candidates = Vec::new();
    if let Some(u) = challenge.and_then(|c| c.resource_metadata.as_deref()) {
        candidates.push(
            Url::parse(u)
                .map_err(|e| AuthError::Discovery(format!("bad resource_metadata URL: {e}")))?,
        );
    }
    if server.path() != "/" && !server.path().is_empty() {
        candidates.extend(well_known(
            server,
            "oauth-protected-resource",
            server.path(),
        ));
    }
    candidates.extend(well_known(server, "oauth-protected-resource", ""));
    for url in candidates {
        if let Some(prm) = fetch_json::<ProtectedResource>(client, &url).await? {
            validate_prm(&prm, server)?;
            tracing::debug!(url = %redact(&url), "protected resource metadata found");
            return Ok(Some(prm));
        }
    }
    Ok(None)
}

/// A-PRM-VALIDATE: non-empty `authorization_servers`, and a `resource` that is the server
/// URL or a parent of it on the same origin. Anything else is refused: tokens must not be
/// obtained for another resource.
pub(crate) fn validate_prm(prm: &ProtectedResource, server: &Url) -> Result<(), AuthError> {
    if prm.authorization_servers.is_empty() {
        return Err(AuthError::Discovery(
            "the server's protected resource metadata lists no authorization server".into(),
        ));
    }
    let resource = Url::parse(&prm.resource).map_err(|_| AuthError::ResourceMismatch {
        advertised: prm.resource.clone(),
        server: redact(server),
    })?;
    let path_ok = {
        let want = server.path().trim_end_matches('/');
        let have = resource.path().trim_end_matches('/');
        want == have || want.starts_with(&format!("{have}/")) || have.is_empty()
    };
    if resource.origin() != server.origin() || !path_ok {
        return Err(AuthError::ResourceMismatch {
            advertised: prm.resource.clone(),
            server: redact(server),
        });
    }
    Ok(())
}

/// RFC 8414 / OIDC discovery for `issuer`, in the specified order (A-ASMETA).
pub(crate) async fn authorization_server(
    client: &reqwest::Client,
    issuer: &Url,
) -> Result<Option<AsMetadata>, AuthError> {
    let path = issuer.path().trim_end_matches('/');
    let candidates: Vec<Url> = if path.is_empty() {
        vec![
            well_known(issuer, "oauth-authorization-server", ""),
            well_known(issuer, "openid-configuration", ""),
        ]
        .into_iter()
        .flatten()
        .collect()
    } else {
        vec![
            well_known(issuer, "oauth-authorization-server", path),
            well_known(issuer, "openid-configuration", path),
            issuer
                .join(&format!("{path}/.well-known/openid-configuration"))
                .ok(),
        ]
        .into_iter()
        .flatten()
        .collect()
    };
    for url in candidates {
        if let Some(meta) = fetch_json::<AsMetadata>(client, &url).await? {
            tracing::debug!(url = %redact(&url), "authorization server metadata found");
            return Ok(Some(meta));
        }
    }
    Ok(None)
}

/// The whole discovery, from a 401's challenge (or none, for `login` and the startup probe).
pub(crate) async fn discover(
    client: &reqwest::Client,
    server: &Url,
    challenge: Option<&Challenge>,
    resource_override: Option<&str>,
) -> Result<Discovered, AuthError> {
    let prm = protected_resource(client, server, challenge).await?;
    let (issuer, meta, from_document) = match &prm {
        Some(prm) => {
            let issuer_url = Url::parse(&prm.authorization_servers[0])
                .map_err(|e| AuthError::Discovery(format!("bad authorization server URL: {e}")))?;
            let meta = authorization_server(client, &issuer_url)
                .await?
                .ok_or_else(|| {
                    AuthError::Discovery(format!(
                        "no OAuth or OpenID metadata found for the authorization server {}",
                        redact(&issuer_url)
                    ))
                })?;
            (prm.authorization_servers[0].clone(), meta, true)
        }
        None => origin_metadata(client, server).await?,
    };
    if let Some(declared) = &meta.issuer
        && declared.trim_end_matches('/') != issuer.trim_end_matches('/')
    {
        return Err(AuthError::Discovery(format!(
            "the authorization server's metadata names issuer {declared:?}, not {issuer:?}; refusing it (RFC 8414 §3.3)"
        )));
    }
    check_endpoints(&meta)?;
    let resource = match (resource_override, &prm) {
        (Some(r), _) => r.to_owned(),
        (None, Some(prm)) => prm.resource.clone(),
        (None, None) => canonical_resource(server),
    };
    Ok(Discovered {
        resource,
        prm,
        issuer,
        meta,
        from_document,
    })
}

/// 2025-03-26 servers have no PRM; the MCP server's origin is the authorization
/// server, with default endpoints if it has no metadata either. Returns the issuer, the
/// metadata, and whether it came from a document.
async fn origin_metadata(
    client: &reqwest::Client,
    server: &Url,
) -> Result<(String, AsMetadata, bool), AuthError> {
    let origin = server
        .join("/")
        .map_err(|e| AuthError::Discovery(e.to_string()))?;
    Ok(match authorization_server(client, &origin).await? {
        // Here the issuer was only a guess: the document's own `issuer` wins.
        Some(meta) => {
            let issuer = meta
                .issuer
                .clone()
                .unwrap_or_else(|| origin.as_str().trim_end_matches('/').to_owned());
            (issuer, meta, true)
        }
        None => {
            let at = |p: &str| origin.join(p).map(String::from).unwrap_or_default();
            let meta = AsMetadata {
                authorization_endpoint: at("/authorize"),
                token_endpoint: at("/token"),
                registration_endpoint: Some(at("/register")),
                ..Default::default()
            };
            (
                origin.as_str().trim_end_matches('/').to_owned(),
                meta,
                false,
            )
        }
    })
}

/// Every endpoint the metadata names must pass [`check_endpoint`].
fn check_endpoints(meta: &AsMetadata) -> Result<(), AuthError> {
    for (name, endpoint) in [
        ("authorization_endpoint", Some(&meta.authorization_endpoint)),
        ("token_endpoint", Some(&meta.token_endpoint)),
        ("registration_endpoint", meta.registration_endpoint.as_ref()),
        (
            "device_authorization_endpoint",
            meta.device_authorization_endpoint.as_ref(),
        ),
    ] {
        if let Some(e) = endpoint {
            check_endpoint(name, e)?;
        }
    }
    Ok(())
}

/// A-REDIRECT: https, or http on loopback only; never another scheme.
pub(crate) fn check_endpoint(name: &str, endpoint: &str) -> Result<Url, AuthError> {
    let url = Url::parse(endpoint)
        .map_err(|e| AuthError::Discovery(format!("{name} {endpoint:?} is not a URL: {e}")))?;
    match url.scheme() {
        "https" => Ok(url),
        "http" if is_loopback(&url) => Ok(url),
        _ => Err(AuthError::Discovery(format!(
            "{name} {} is not https; refusing to send credentials there",
            redact(&url)
        ))),
    }
}

/// RFC 8707 canonical URI of the MCP server: no fragment, lowercase scheme and host.
pub(crate) fn canonical_resource(server: &Url) -> String {
    let mut u = server.clone();
    u.set_fragment(None);
    let s = u.to_string();
    // `Url` keeps a lone "/" path; the canonical form drops it.
    match s.strip_suffix('/') {
        Some(stripped) if u.path() == "/" && u.query().is_none() => stripped.to_owned(),
        _ => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prm(resource: &str) -> ProtectedResource {
        ProtectedResource {
            resource: resource.into(),
            authorization_servers: vec!["https://auth.test".into()],
            scopes_supported: None,
        }
    }

    #[test]
    fn resource_must_cover_the_server() {
        let server = Url::parse("https://x.test/api/mcp").unwrap();
        assert!(validate_prm(&prm("https://x.test/api/mcp"), &server).is_ok());
        assert!(validate_prm(&prm("https://x.test/api"), &server).is_ok());
        assert!(validate_prm(&prm("https://x.test"), &server).is_ok());
        assert!(validate_prm(&prm("https://x.test/other"), &server).is_err());
        assert!(validate_prm(&prm("https://evil.test/api/mcp"), &server).is_err());
        let mut empty = prm("https://x.test/api/mcp");
        empty.authorization_servers.clear();
        assert!(validate_prm(&empty, &server).is_err());
    }

    #[test]
    fn endpoints_https_or_loopback() {
        assert!(check_endpoint("t", "https://a.test/token").is_ok());
        assert!(check_endpoint("t", "http://127.0.0.1:9/token").is_ok());
        assert!(check_endpoint("t", "http://localhost/token").is_ok());
        assert!(check_endpoint("t", "http://a.test/token").is_err());
        assert!(check_endpoint("t", "javascript:alert(1)").is_err());
    }

    #[test]
    fn well_known_forms() {
        let issuer = Url::parse("https://a.test/tenant1").unwrap();
        assert_eq!(
            well_known(&issuer, "oauth-authorization-server", issuer.path())
                .unwrap()
                .as_str(),
            "https://a.test/.well-known/oauth-authorization-server/tenant1"
        );
        assert_eq!(
            canonical_resource(&Url::parse("https://A.test/mcp#x").unwrap()),
            "https://a.test/mcp"
        );
        assert_eq!(
            canonical_resource(&Url::parse("https://a.test/").unwrap()),
            "https://a.test"
        );
    }
}
