//! `WWW-Authenticate` parsing (RFC 9110 §11.6.1, RFC 6750 §3, RFC 9728 §5.1): the
//! `Bearer` challenge's `resource_metadata`, `scope` and `error` parameters (A-401).

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub(crate) resource_metadata: Option<String>,
    pub(crate) scope: Option<String>,
    pub(crate) error: Option<String>,
}

impl Challenge {
    /// Parse every `WWW-Authenticate` value; the first `Bearer` challenge wins.
    pub fn parse<'a>(values: impl IntoIterator<Item = &'a str>) -> Option<Challenge> {
        values.into_iter().find_map(parse_one)
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

fn parse_one(value: &str) -> Option<Challenge> {
    let mut rest = value.trim();
    // Several challenges may share one header value: scan for the Bearer one.
    loop {
        let (scheme, after) = split_token(rest);
        if scheme.is_empty() {
            return None;
        }
        if scheme.eq_ignore_ascii_case("bearer") {
            return Some(params(after));
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
}
