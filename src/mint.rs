//! Signs Clerk-shaped session tokens with a local RSA key: for `dev` mode and the tests.
//! Production never signs anything.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{self, KeyPair as _};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

/// An RSA signing key with the `kid` its tokens carry.
pub struct Signer {
    key: KeyPair,
    kid: String,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot load the RSA private key: {0}")]
pub struct SignerError(String);

impl Signer {
    /// A fresh 2048-bit key, as Clerk uses.
    pub fn generate(kid: &str) -> Result<Self, SignerError> {
        let key = KeyPair::generate(KeySize::Rsa2048).map_err(|e| SignerError(e.to_string()))?;
        Ok(Self {
            key,
            kid: kid.to_owned(),
        })
    }

    /// Loads a PKCS#8 PEM private key.
    pub fn from_pkcs8_pem(pem: &str, kid: &str) -> Result<Self, SignerError> {
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let der = STANDARD
            .decode(body.trim())
            .map_err(|e| SignerError(e.to_string()))?;
        let key = KeyPair::from_pkcs8(&der).map_err(|e| SignerError(e.to_string()))?;
        Ok(Self {
            key,
            kid: kid.to_owned(),
        })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key as an SPKI PEM, the form `CLERK_JWT_KEY` takes.
    pub fn public_pem(&self) -> String {
        let der = self
            .key
            .public_key()
            .as_der()
            .map(|d| d.as_ref().to_vec())
            .unwrap_or_default();
        let body = STANDARD.encode(der);
        let lines: Vec<&str> = body
            .as_bytes()
            .chunks(64)
            .filter_map(|c| std::str::from_utf8(c).ok())
            .collect();
        format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            lines.join("\n")
        )
    }

    /// The public key as a JWK, as Clerk's JWKS endpoints serve it.
    pub fn jwk(&self) -> Value {
        let components =
            aws_lc_rs::rsa::PublicKeyComponents::<Vec<u8>>::from(self.key.public_key());
        json!({
            "use": "sig", "kty": "RSA", "kid": self.kid, "alg": "RS256",
            "n": URL_SAFE_NO_PAD.encode(&components.n),
            "e": URL_SAFE_NO_PAD.encode(&components.e),
        })
    }

    /// Signs `claims` with RS256 and Clerk's header.
    pub fn sign(&self, claims: &Value) -> String {
        self.sign_with_header(
            &json!({"alg": "RS256", "kid": self.kid, "typ": "JWT"}),
            claims,
        )
    }

    /// Signs with an arbitrary header; its `alg` picks RS256/384/512 (anything else is signed
    /// RS256, which lets tests forge mismatched headers).
    pub fn sign_with_header(&self, header: &Value, claims: &Value) -> String {
        self.sign_raw(&header.to_string(), &claims.to_string())
    }

    /// Signs a header and payload given as JSON text, exactly as written (duplicate keys and
    /// all, for tests of hostile input). The header's `alg` picks the hash as above.
    pub fn sign_raw(&self, header: &str, payload: &str) -> String {
        let alg = serde_json::from_str::<Value>(header)
            .ok()
            .and_then(|h| h.get("alg").and_then(Value::as_str).map(str::to_owned));
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(payload)
        );
        let encoding: &'static dyn signature::RsaEncoding = match alg.as_deref() {
            Some("RS384") => &signature::RSA_PKCS1_SHA384,
            Some("RS512") => &signature::RSA_PKCS1_SHA512,
            _ => &signature::RSA_PKCS1_SHA256,
        };
        let mut sig = vec![0; self.key.public_modulus_len()];
        let rng = aws_lc_rs::rand::SystemRandom::new();
        if self
            .key
            .sign(encoding, &rng, input.as_bytes(), &mut sig)
            .is_err()
        {
            sig.clear();
        }
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
    }
}

/// Claims of a typical Clerk v2 session token for `sub`, valid for `ttl_s` from `now_s`.
pub fn session_claims(sub: &str, issuer: &str, now_s: i64, ttl_s: i64) -> Value {
    json!({
        "azp": "http://localhost:3000",
        "exp": now_s + ttl_s,
        "fva": [0, -1],
        "iat": now_s,
        "iss": format!("https://{issuer}"),
        "nbf": now_s - 10,
        "sid": format!("sess_{}", sub.trim_start_matches("user_")),
        "sts": "active",
        "sub": sub,
        "v": 2,
    })
}
