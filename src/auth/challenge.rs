//! `WWW-Authenticate` parsing (RFC 9110 §11.6.1, RFC 6750 §3, RFC 9728 §5.1, RFC 9449
//! §7.1): the `Bearer` or `DPoP` challenge's `resource_metadata`, `scope` and `error`
//! parameters (A-401, A-DPOP).

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub(crate) resource_metadata: Option<String>,
    pub(crate) scope: Option<String>,
    pub(crate) error: Option<String>,
}

impl Challenge {
    /// Parse every `WWW-Authenticate` value. A server that takes both schemes may send
    /// a `Bearer` and a `DPoP` challenge: each parameter comes from the first that has it,
    /// except that a request for a DPoP nonce is never hidden by another error.
    pub fn parse<'a>(values: impl IntoIterator<Item = &'a str>) -> Option<Challenge> {
        values
            .into_iter()
            .flat_map(parse_all)
            .reduce(|a, b| Challenge {
                resource_metadata: a.resource_metadata.or(b.resource_metadata),
                scope: a.scope.or(b.scope),
                error: match (a.error, b.error) {
                    (_, Some(n)) if n == super::dpop::USE_NONCE => Some(n),
                    (a, b) => a.or(b),
                },
            })
    }

    /// The Bearer challenge of a response's `WWW-Authenticate` headers.
    pub(crate) fn from_headers(headers: &reqwest::header::HeaderMap) -> Option<Challenge> {
        Challenge::parse(
            headers
                .get_all(reqwest::header::WWW_AUTHENTICATE)
                .iter()
                .filter_map(|v| v.to_str().ok()),
        )
    }

    pub fn insufficient_scope(&self) -> bool {
        self.error.as_deref() == Some("insufficient_scope")
    }
}

/// The Bearer and DPoP challenges of one header value, in order.
fn parse_all(value: &str) -> Vec<Challenge> {
    let mut found = Vec::new();
    let mut rest = value.trim();
    // Several challenges may share one header value.
    loop {
        let (scheme, after) = split_token(rest);
        if scheme.is_empty() {
            return found;
        }
        if scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("dpop") {
            found.push(params(after));
        }
        // Skip this challenge's parameters up to the next scheme.
        rest = skip_params(after);
    }
}

fn split_token(s: &str) -> (&str, &str) {
    let s = s.trim_start_matches([' ', '\t', ',']);
    let end = s.find([' ', '\t', ',', '=']).unwrap_or(s.len());
    (&s[..end], &s[end..])
}

/// Parse `name=value` pairs (quoted or token values) until the next challenge.
fn params(mut s: &str) -> Challenge {
    let mut c = Challenge::default();
    while let Some((name, value, rest)) = next_param(s) {
        match name.to_ascii_lowercase().as_str() {
            "resource_metadata" => c.resource_metadata = Some(value),
            "scope" => c.scope = Some(value),
            "error" => c.error = Some(value),
            _ => {}
        }
        s = rest;
    }
    c
}

fn skip_params(mut s: &str) -> &str {
    while let Some((_, _, rest)) = next_param(s) {
        s = rest;
    }
    s
}

/// One `name=value` pair; `None` when the next item is a new scheme (no `=`).
fn next_param(s: &str) -> Option<(String, String, &str)> {
    let s = s.trim_start_matches([' ', '\t', ',']);
    let eq = s.find('=')?;
    let name = s[..eq].trim();
    if name.is_empty() || name.contains([' ', '\t', ',']) {
        return None;
    }
    let after = s[eq + 1..].trim_start();
    if let Some(quoted) = after.strip_prefix('"') {
        let mut value = String::new();
        let mut chars = quoted.char_indices();
        while let Some((i, ch)) = chars.next() {
            match ch {
                '\\' => {
                    if let Some((_, esc)) = chars.next() {
                        value.push(esc);
                    }
                }
                '"' => return Some((name.to_owned(), value, &quoted[i + 1..])),
                _ => value.push(ch),
            }
        }
        Some((name.to_owned(), value, ""))
    } else {
        let end = after.find([',', ' ', '\t']).unwrap_or(after.len());
        Some((name.to_owned(), after[..end].to_owned(), &after[end..]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_parameters() {
        let c = Challenge::parse([
            r#"Bearer resource_metadata="https://x.test/.well-known/oauth-protected-resource/mcp", scope="files:read files:write", error="insufficient_scope""#,
        ])
        .unwrap();
        assert_eq!(
            c.resource_metadata.as_deref(),
            Some("https://x.test/.well-known/oauth-protected-resource/mcp")
        );
        assert_eq!(c.scope.as_deref(), Some("files:read files:write"));
        assert!(c.insufficient_scope());
    }

    #[test]
    fn other_schemes_and_tokens() {
        let c =
            Challenge::parse([r#"Basic realm="x", Bearer error=invalid_token, scope=a"#]).unwrap();
        assert_eq!(c.error.as_deref(), Some("invalid_token"));
        assert_eq!(c.scope.as_deref(), Some("a"));
        assert_eq!(Challenge::parse(["Basic realm=\"x\""]), None);
        assert_eq!(Challenge::parse(["Bearer"]), Some(Challenge::default()));
        let c = Challenge::parse([r#"Bearer realm="a \"q\" b""#]).unwrap();
        assert_eq!(c, Challenge::default());
    }

    #[test]
    fn dpop_challenges() {
        let c = Challenge::parse([r#"DPoP algs="ES256", resource_metadata="https://x.test/m""#])
            .unwrap();
        assert_eq!(c.resource_metadata.as_deref(), Some("https://x.test/m"));
        let c = Challenge::parse([
            r#"Bearer error="invalid_token", scope="a""#,
            r#"DPoP error="use_dpop_nonce", resource_metadata="https://x.test/m""#,
        ])
        .unwrap();
        assert_eq!(c.error.as_deref(), Some("use_dpop_nonce"));
        assert_eq!(c.scope.as_deref(), Some("a"));
        assert_eq!(c.resource_metadata.as_deref(), Some("https://x.test/m"));
    }
}
