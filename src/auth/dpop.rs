//! DPoP (RFC 9449): tokens bound to a key this proxy holds, so a stolen token is useless
//! without it (A-DPOP).
//!
//! - The key is made when the authorization server advertises
//!   `dpop_signing_alg_values_supported`, and kept in the token file (0600) with the
//!   tokens it binds: a refresh token bound to it must be refreshed with it.
//! - Every token request and every request to the MCP server carries a fresh proof: a
//!   new `jti`, the method, `htu` (the URL without query or fragment, §4.2), and on the
//!   resource server `ath`, the access token's hash (§4.3).
//! - Each server may ask for a nonce (`DPoP-Nonce`, §8 and §9); the latest one it gave is
//!   put in the next proof. The nonces live in memory only.

use std::sync::Mutex;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};
use serde_json::json;
use url::Url;

use super::assertion::SigningKey;
use super::store::{Secret, now_secs};

/// The algorithms we can make keys for, in order of preference.
const ALGS: [&str; 3] = ["ES256", "EdDSA", "ES384"];

/// The error code of a server that wants a (new) nonce in the proof.
pub(crate) const USE_NONCE: &str = "use_dpop_nonce";

/// The header that carries a proof, and the one a server's nonce arrives in.
pub(crate) const DPOP: &str = "dpop";
pub(crate) const DPOP_NONCE: &str = "dpop-nonce";

/// A key as stored with the tokens.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct KeyRecord {
    pub(crate) alg: String,
    /// PKCS#8, base64.
    pub(crate) pkcs8: Secret,
}

/// A proof key, ready to sign.
#[derive(Debug)]
pub(crate) struct DpopKey {
    key: SigningKey,
    alg: &'static str,
    jwk: serde_json::Value,
    record: KeyRecord,
}

impl DpopKey {
    /// A new key for the first algorithm of ours that `supported` lists.
    pub(crate) fn generate(supported: &[String]) -> Option<DpopKey> {
        let alg = ALGS
            .into_iter()
            .find(|a| supported.iter().any(|s| s == a))?;
        let (key, der) = SigningKey::generate(alg)?;
        DpopKey::new(
            key,
            KeyRecord {
                alg: alg.to_owned(),
                pkcs8: Secret::new(STANDARD.encode(der)),
            },
        )
    }

    /// The key kept in a token file; `None` if it cannot be read (the next sign-in
    /// makes a new one).
    pub(crate) fn from_record(record: &KeyRecord) -> Option<DpopKey> {
        let der = STANDARD.decode(record.pkcs8.expose()).ok()?;
        DpopKey::new(SigningKey::from_pkcs8(&der).ok()?, record.clone())
    }

    fn new(key: SigningKey, record: KeyRecord) -> Option<DpopKey> {
        let alg = key.alg(None);
        if !ALGS.contains(&alg) || record.alg != alg {
            return None;
        }
        Some(DpopKey {
            jwk: key.public_jwk()?,
            key,
            alg,
            record,
        })
    }

    pub(crate) fn record(&self) -> &KeyRecord {
        &self.record
    }

    /// Whether an authorization server that supports `supported` accepts this key.
    pub(crate) fn usable_with(&self, supported: &[String]) -> bool {
        supported.iter().any(|s| s == self.alg)
    }

    /// A proof for one request: `token` is the access token presented with it, if any.
    pub(crate) fn proof(
        &self,
        method: &str,
        url: &Url,
        token: Option<&str>,
        nonce: Option<&str>,
    ) -> Result<String, String> {
        let mut claims = json!({
            "jti": super::flow::random_token(16),
            "htm": method,
            "htu": htu(url),
            "iat": now_secs(),
        });
        if let Some(token) = token {
            let hash = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
            claims["ath"] = URL_SAFE_NO_PAD.encode(hash.as_ref()).into();
        }
        if let Some(nonce) = nonce {
            claims["nonce"] = nonce.into();
        }
        let header = json!({"typ": "dpop+jwt", "alg": self.alg, "jwk": self.jwk});
        self.key.sign_with(header, self.alg, &claims)
    }
}

/// RFC 9449 §4.2: the request URI without query and fragment.
fn htu(url: &Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    u.set_fragment(None);
    u.to_string()
}

/// The latest nonce one server gave, and whether it is new since it was last used to
/// retry: a server that keeps asking for a nonce it was just given is not asked again.
#[derive(Debug, Default)]
pub(crate) struct Nonce(Mutex<(Option<String>, bool)>);

impl Nonce {
    pub(crate) fn get(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).0.clone()
    }

    /// Keep a nonce from a response's `DPoP-Nonce` header.
    pub(crate) fn observe(&self, headers: &reqwest::header::HeaderMap) {
        let Some(v) = headers.get(DPOP_NONCE).and_then(|v| v.to_str().ok()) else {
            return;
        };
        // RFC 9449 §8.1: a nonce is NQCHAR, bounded here so a server cannot grow it.
        if v.is_empty() || v.len() > 512 || !v.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
            tracing::debug!("ignored a malformed DPoP-Nonce header");
            return;
        }
        let mut g = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if g.0.as_deref() != Some(v) {
            *g = (Some(v.to_owned()), true);
        }
    }

    /// A `use_dpop_nonce` answer: retry if a nonce arrived that has not been retried yet.
    pub(crate) fn take_fresh(&self) -> bool {
        let mut g = self.0.lock().unwrap_or_else(|p| p.into_inner());
        std::mem::replace(&mut g.1, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn part(jwt: &str, i: usize) -> Value {
        let p = jwt.split('.').nth(i).unwrap();
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).unwrap()).unwrap()
    }

    #[test]
    fn proofs_follow_rfc_9449() {
        let key = DpopKey::generate(&["RS256".into(), "ES256".into()]).unwrap();
        let url = Url::parse("https://mcp.test/mcp?x=1#f").unwrap();
        let a = key.proof("POST", &url, Some("tok"), Some("n1")).unwrap();
        let b = key.proof("POST", &url, Some("tok"), None).unwrap();
        let (h, c) = (part(&a, 0), part(&a, 1));
        assert_eq!(h["typ"], "dpop+jwt");
        assert_eq!(h["alg"], "ES256");
        assert_eq!(h["jwk"]["crv"], "P-256");
        assert!(h["jwk"].get("d").is_none(), "never the private part");
        assert_eq!(c["htm"], "POST");
        assert_eq!(c["htu"], "https://mcp.test/mcp");
        assert_eq!(c["nonce"], "n1");
        // RFC 9449 §4.3's ath of "tok": base64url(SHA-256).
        let hash = ring::digest::digest(&ring::digest::SHA256, b"tok");
        assert_eq!(c["ath"], URL_SAFE_NO_PAD.encode(hash.as_ref()));
        assert_ne!(c["jti"], part(&b, 1)["jti"], "a fresh jti per proof");
        assert!(part(&b, 1).get("nonce").is_none());
    }

    #[test]
    fn keys_survive_the_token_file_and_never_show() {
        let key = DpopKey::generate(&["EdDSA".into()]).unwrap();
        let again = DpopKey::from_record(key.record()).unwrap();
        assert_eq!(key.jwk, again.jwk);
        assert_eq!(again.jwk["kty"], "OKP");
        assert!(!format!("{key:?}").contains(key.record().pkcs8.expose()));
        assert!(DpopKey::generate(&["RS256".into()]).is_none());
        assert!(key.usable_with(&["EdDSA".into()]));
        assert!(!key.usable_with(&["ES256".into()]));
        let wrong = KeyRecord {
            alg: "ES256".into(),
            ..key.record().clone()
        };
        assert!(DpopKey::from_record(&wrong).is_none());
    }

    #[test]
    fn nonces_retry_once_each() {
        let n = Nonce::default();
        let mut h = reqwest::header::HeaderMap::new();
        assert!(!n.take_fresh());
        h.insert(DPOP_NONCE, "abc".parse().unwrap());
        n.observe(&h);
        assert_eq!(n.get().as_deref(), Some("abc"));
        assert!(n.take_fresh());
        n.observe(&h);
        assert!(
            !n.take_fresh(),
            "the same nonce again is not a reason to retry"
        );
        h.insert(DPOP_NONCE, "bad nonce".parse().unwrap());
        n.observe(&h);
        assert_eq!(n.get().as_deref(), Some("abc"));
    }
}
