//! Signed JWTs the proxy makes itself: the `private_key_jwt` client assertion (RFC 7523
//! §2.2) of `--grant client-credentials --client-key FILE`, and the DPoP proofs of
//! `dpop`. A `--client-key` is a PEM file; its type picks the algorithm (ES256, ES384,
//! EdDSA; RS256 or PS256 for RSA, from what the authorization server supports). Signing
//! uses ring, the crypto the TLS stack already has.

use std::fmt;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, RsaKeyPair};
use serde_json::{Value, json};

/// A private key read from `--client-key`.
#[derive(Clone)]
pub(crate) struct SigningKey(Arc<Key>);

enum Key {
    Ecdsa {
        pair: EcdsaKeyPair,
        alg: &'static str,
    },
    Ed25519(Ed25519KeyPair),
    Rsa(RsaKeyPair),
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the key: only what kind it is.
        write!(f, "SigningKey({})", self.kind())
    }
}

impl SigningKey {
    /// Read a PEM private key. `Err` says what is wrong and how to fix it.
    pub(crate) fn from_pem(pem: &str) -> Result<SigningKey, String> {
        let (label, der) = pem_block(pem)?;
        let key = match label.as_str() {
            "PRIVATE KEY" => return SigningKey::from_pkcs8(&der),
            "RSA PRIVATE KEY" => Key::Rsa(
                RsaKeyPair::from_der(&der)
                    .map_err(|e| format!("the RSA key cannot be used ({e})"))?,
            ),
            "EC PRIVATE KEY" => {
                return Err("an EC key in SEC 1 form; convert it to PKCS#8 with \
                     `openssl pkcs8 -topk8 -nocrypt -in KEY -out KEY.pk8`"
                    .into());
            }
            "ENCRYPTED PRIVATE KEY" => {
                return Err("the key is encrypted; give an unencrypted PKCS#8 key".into());
            }
            other => return Err(format!("a PEM block of {other:?}, not a private key")),
        };
        Ok(SigningKey(Arc::new(key)))
    }

    /// A PKCS#8 private key (DER).
    pub(crate) fn from_pkcs8(der: &[u8]) -> Result<SigningKey, String> {
        let rng = SystemRandom::new();
        let key = if let Ok(pair) =
            EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, der, &rng)
        {
            Key::Ecdsa { pair, alg: "ES256" }
        } else if let Ok(pair) =
            EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P384_SHA384_FIXED_SIGNING, der, &rng)
        {
            Key::Ecdsa { pair, alg: "ES384" }
        } else if let Ok(pair) = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der) {
            Key::Ed25519(pair)
        } else if let Ok(pair) = RsaKeyPair::from_pkcs8(der) {
            Key::Rsa(pair)
        } else {
            return Err(
                "the key is not an EC P-256 or P-384, Ed25519 or RSA (2048 bits or more) private key"
                    .into(),
            );
        };
        Ok(SigningKey(Arc::new(key)))
    }

    /// A new key for `alg` (ES256, ES384 or EdDSA), with its PKCS#8 form to keep.
    pub(crate) fn generate(alg: &str) -> Option<(SigningKey, Vec<u8>)> {
        let rng = SystemRandom::new();
        let doc = match alg {
            "ES256" => {
                EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            }
            "ES384" => {
                EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P384_SHA384_FIXED_SIGNING, &rng)
            }
            "EdDSA" => Ed25519KeyPair::generate_pkcs8(&rng),
            _ => return None,
        }
        .ok()?;
        let der = doc.as_ref().to_vec();
        Some((SigningKey::from_pkcs8(&der).ok()?, der))
    }

    /// The public key as a JWK (RFC 7517), for a DPoP proof's header. RSA is never
    /// generated for DPoP, so it has none.
    pub(crate) fn public_jwk(&self) -> Option<Value> {
        use ring::signature::KeyPair;
        let b64 = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
        match &*self.0 {
            Key::Ecdsa { pair, alg } => {
                // An uncompressed point: 0x04, then x and y of equal length.
                let point = &pair.public_key().as_ref()[1..];
                let (x, y) = point.split_at(point.len() / 2);
                let crv = if *alg == "ES256" { "P-256" } else { "P-384" };
                Some(json!({"kty": "EC", "crv": crv, "x": b64(x), "y": b64(y)}))
            }
            Key::Ed25519(pair) => {
                Some(json!({"kty": "OKP", "crv": "Ed25519", "x": b64(pair.public_key().as_ref())}))
            }
            Key::Rsa(_) => None,
        }
    }

    fn kind(&self) -> &'static str {
        match &*self.0 {
            Key::Ecdsa { alg, .. } => alg,
            Key::Ed25519(_) => "EdDSA",
            Key::Rsa(_) => "RSA",
        }
    }

    /// The JWS algorithm: the key's own, and for RSA PS256 when the server supports it
    /// and not RS256 (`supported`: its `token_endpoint_auth_signing_alg_values_supported`).
    pub(crate) fn alg(&self, supported: Option<&[String]>) -> &'static str {
        match &*self.0 {
            Key::Rsa(_) => {
                let has = |a: &str| supported.is_some_and(|s| s.iter().any(|x| x == a));
                if has("PS256") && !has("RS256") {
                    "PS256"
                } else {
                    "RS256"
                }
            }
            _ => self.kind(),
        }
    }

    /// A compact JWS of `claims`.
    pub(crate) fn sign(&self, alg: &'static str, claims: &Value) -> Result<String, String> {
        self.sign_with(json!({"alg": alg, "typ": "JWT"}), alg, claims)
    }

    /// A compact JWS of `claims` under `header`, which names `alg`.
    pub(crate) fn sign_with(
        &self,
        header: Value,
        alg: &str,
        claims: &Value,
    ) -> Result<String, String> {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let rng = SystemRandom::new();
        let sig = match &*self.0 {
            Key::Ecdsa { pair, .. } => pair
                .sign(&rng, input.as_bytes())
                .map_err(|_| "ECDSA signing failed".to_owned())?
                .as_ref()
                .to_vec(),
            Key::Ed25519(pair) => pair.sign(input.as_bytes()).as_ref().to_vec(),
            Key::Rsa(pair) => {
                let padding: &dyn signature::RsaEncoding = if alg == "PS256" {
                    &signature::RSA_PSS_SHA256
                } else {
                    &signature::RSA_PKCS1_SHA256
                };
                let mut sig = vec![0; pair.public().modulus_len()];
                pair.sign(padding, &rng, input.as_bytes(), &mut sig)
                    .map_err(|_| "RSA signing failed".to_owned())?;
                sig
            }
        };
        Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig)))
    }
}

/// The label and DER bytes of the first PEM block.
fn pem_block(pem: &str) -> Result<(String, Vec<u8>), String> {
    let begin = pem
        .find("-----BEGIN ")
        .ok_or("no PEM block (-----BEGIN ...-----) in the file")?;
    let rest = &pem[begin + "-----BEGIN ".len()..];
    let label_end = rest.find("-----").ok_or("a malformed PEM header")?;
    let label = rest[..label_end].to_owned();
    let body = &rest[label_end + 5..];
    let end = body
        .find("-----END ")
        .ok_or("the PEM block has no END line")?;
    let b64: String = body[..end].chars().filter(|c| !c.is_whitespace()).collect();
    let der = STANDARD
        .decode(b64)
        .map_err(|e| format!("the PEM body is not base64 ({e})"))?;
    Ok((label, der))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::KeyPair;

    fn pem(label: &str, der: &[u8]) -> String {
        format!(
            "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
            STANDARD.encode(der)
        )
    }

    #[test]
    fn ec_keys_sign_verifiable_jwts() {
        let rng = SystemRandom::new();
        let doc = EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .unwrap();
        let key = SigningKey::from_pem(&pem("PRIVATE KEY", doc.as_ref())).unwrap();
        assert_eq!(key.alg(None), "ES256");
        assert_eq!(format!("{key:?}"), "SigningKey(ES256)");
        let jwt = key.sign("ES256", &json!({"iss": "c"})).unwrap();
        let parts: Vec<&str> = jwt.split('.').collect();
        let pair = EcdsaKeyPair::from_pkcs8(
            &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            doc.as_ref(),
            &rng,
        )
        .unwrap();
        let public = signature::UnparsedPublicKey::new(
            &signature::ECDSA_P256_SHA256_FIXED,
            pair.public_key().as_ref(),
        );
        let sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        public
            .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig)
            .unwrap();
        let header: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
        assert_eq!(header["alg"], "ES256");
    }

    #[test]
    fn ed25519_and_bad_keys() {
        let rng = SystemRandom::new();
        let doc = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let key = SigningKey::from_pem(&pem("PRIVATE KEY", doc.as_ref())).unwrap();
        assert_eq!(key.alg(Some(&["RS256".into()])), "EdDSA");
        assert!(key.sign("EdDSA", &json!({})).unwrap().split('.').count() == 3);
        for (text, why) in [
            ("hello", "no PEM block"),
            (&pem("EC PRIVATE KEY", b"x")[..], "openssl pkcs8"),
            (&pem("CERTIFICATE", b"x")[..], "not a private key"),
            (&pem("PRIVATE KEY", b"not a key")[..], "is not an EC"),
        ] {
            let e = SigningKey::from_pem(text).unwrap_err();
            assert!(e.contains(why), "{e}");
        }
    }
}
