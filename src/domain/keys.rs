//! Verification keys: a PEM `jwtKey`, a parsed JWKS, and the `KeySource` port the JWKS
//! adapter implements.

use std::cell::Cell;
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
#[cfg(target_arch = "x86_64")]
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use aws_lc_rs::signature::{self, ParsedPublicKey, RsaPublicKeyComponents};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::Algorithm;

use super::jwt::{TokenError, TokenErrorReason};

#[cfg(target_arch = "x86_64")]
mod avx512;

/// Clerk signs with 2048-bit keys; anything smaller is refused outright.
pub const MIN_RSA_BITS: usize = 2048;

thread_local! {
    static SIGNATURES_CHECKED: Cell<u64> = const { Cell::new(0) };
}

/// `keys.vector_rsa`: a process setting like the CPU it concerns, so that keys parsed while
/// the settings load, and keys fetched later, all follow the one value.
static VECTOR_RSA: AtomicBool = AtomicBool::new(true);

/// Whether RSA-2048 checks may run on this service's AVX-512 code; takes effect at once.
pub fn allow_vector_rsa(allowed: bool) {
    VECTOR_RSA.store(allowed, Ordering::Relaxed);
}

/// How many signatures this thread has checked: the HTTP adapter compares two readings to
/// tell a decision that did public-key work from one answered from memory.
pub fn signatures_checked() -> u64 {
    SIGNATURES_CHECKED.with(Cell::get)
}

/// One RSA public key, ready to verify signatures.
pub struct VerifyingKey {
    kid: Option<Arc<str>>,
    /// The JWK's `alg`, when it names one: WebCrypto refuses to use the key with another hash,
    /// which Clerk reports as `token-verification-failed`.
    alg: Option<Algorithm>,
    /// The key parsed once per hash: parsing an RSA key per signature would cost a sixth
    /// of the check itself (measured in benches/decide.rs).
    rs256: ParsedPublicKey,
    rs384: ParsedPublicKey,
    rs512: ParsedPublicKey,
    bits: usize,
    /// The modulus and exponent, to tell a refetched copy of this key from a new key.
    n: Box<[u8]>,
    e: Box<[u8]>,
    /// The same key for the vector unit, where the CPU and the key allow: a check in 60 %
    /// of aws-lc's time (README, Performance). Prepared at its first check (about 100 µs),
    /// so a key nobody uses, or a service with the setting off, never pays for it.
    #[cfg(target_arch = "x86_64")]
    avx512: OnceLock<Option<avx512::PublicKey>>,
}

impl std::fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("bits", &self.bits)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyParseError {
    #[error("not PEM or base64: {0}")]
    Encoding(&'static str),
    #[error("not an RSA public key (SPKI `PUBLIC KEY` or PKCS#1 `RSA PUBLIC KEY`)")]
    NotRsa,
    #[error("RSA key of {0} bits; at least {MIN_RSA_BITS} are required")]
    TooSmall(usize),
    #[error("unsupported JWK: {0}")]
    Jwk(&'static str),
}

impl VerifyingKey {
    fn from_components(
        kid: Option<&str>,
        alg: Option<Algorithm>,
        n: &[u8],
        e: &[u8],
    ) -> Result<Self, KeyParseError> {
        let n = strip_leading_zeros(n);
        let e = strip_leading_zeros(e);
        if n.is_empty() || e.is_empty() {
            return Err(KeyParseError::NotRsa);
        }
        let bits = n.len() * 8 - n[0].leading_zeros() as usize;
        if bits < MIN_RSA_BITS {
            return Err(KeyParseError::TooSmall(bits));
        }
        let components = RsaPublicKeyComponents { n, e };
        let parse = |params| {
            components
                .to_parsed_public_key(params)
                .map_err(|_| KeyParseError::NotRsa)
        };
        Ok(Self {
            kid: kid.map(Arc::from),
            alg,
            rs256: parse(&signature::RSA_PKCS1_2048_8192_SHA256)?,
            rs384: parse(&signature::RSA_PKCS1_2048_8192_SHA384)?,
            rs512: parse(&signature::RSA_PKCS1_2048_8192_SHA512)?,
            bits,
            n: n.into(),
            e: e.into(),
            #[cfg(target_arch = "x86_64")]
            avx512: OnceLock::new(),
        })
    }

    /// Whether `other` is this very key: same kid, algorithm, modulus and exponent.
    pub fn is_same_key(&self, other: &Self) -> bool {
        self.kid == other.kid && self.alg == other.alg && self.n == other.n && self.e == other.e
    }

    /// Parses `CLERK_JWT_KEY`: a PEM (SPKI or PKCS#1), with real newlines or the literal `\n`
    /// escapes `.env` files carry, or just the base64 body on one line. Clerk only verifies
    /// RS256 with this key, so it is pinned to RS256.
    pub fn from_pem(pem: &str) -> Result<Self, KeyParseError> {
        let text = pem.replace("\\r", "").replace("\\n", "\n");
        let body: String = text
            .lines()
            .map(str::trim)
            .filter(|line| !line.starts_with("-----"))
            .collect();
        if body.is_empty() {
            return Err(KeyParseError::Encoding("empty key"));
        }
        let der = STANDARD
            .decode(body.trim_end_matches('='))
            .or_else(|_| STANDARD.decode(&body))
            .map_err(|_| KeyParseError::Encoding("the key body is not base64"))?;
        let public =
            aws_lc_rs::rsa::PublicKey::from_der(&der).map_err(|_| KeyParseError::NotRsa)?;
        let components = aws_lc_rs::rsa::PublicKeyComponents::<Vec<u8>>::from(&public);
        Self::from_components(None, Some(Algorithm::RS256), &components.n, &components.e)
    }

    /// Builds a key from one JWKS entry. Only RSA signing keys are accepted.
    pub fn from_jwk(jwk: &Jwk) -> Result<Self, KeyParseError> {
        if jwk.kty != "RSA" {
            return Err(KeyParseError::Jwk("kty is not RSA"));
        }
        if jwk.key_use.as_deref().is_some_and(|u| u != "sig") {
            return Err(KeyParseError::Jwk("use is not sig"));
        }
        let alg = match jwk.alg.as_deref() {
            None => None,
            Some("RS256") => Some(Algorithm::RS256),
            Some("RS384") => Some(Algorithm::RS384),
            Some("RS512") => Some(Algorithm::RS512),
            Some(_) => return Err(KeyParseError::Jwk("alg is not RS256/384/512")),
        };
        let n = decode_b64url(jwk.n.as_deref().ok_or(KeyParseError::Jwk("no n"))?)?;
        let e = decode_b64url(jwk.e.as_deref().ok_or(KeyParseError::Jwk("no e"))?)?;
        Self::from_components(jwk.kid.as_deref(), alg, &n, &e)
    }

    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    pub fn bits(&self) -> usize {
        self.bits
    }

    /// The key for the vector unit, when allowed and this key and CPU fit it.
    #[cfg(target_arch = "x86_64")]
    fn vector(&self, allowed: bool) -> Option<&avx512::PublicKey> {
        if !allowed {
            return None;
        }
        self.avx512
            .get_or_init(|| avx512::PublicKey::new(&self.n, &self.e))
            .as_ref()
    }

    /// Verifies `signature` over `message` with `alg`. `Err` is a crypto error (wrong key
    /// algorithm), `Ok(false)` a signature that does not match.
    pub fn verify(&self, alg: Algorithm, message: &[u8], signature: &[u8]) -> Result<bool, String> {
        if let Some(key_alg) = self.alg
            && key_alg != alg
        {
            return Err("DataError: JWK \"alg\" does not match the requested algorithm".into());
        }
        let key = match alg {
            Algorithm::RS256 => &self.rs256,
            Algorithm::RS384 => &self.rs384,
            Algorithm::RS512 => &self.rs512,
            other => {
                return Err(format!(
                    "NotSupportedError: {other:?} is not an RSA PKCS#1 v1.5 algorithm"
                ));
            }
        };
        SIGNATURES_CHECKED.with(|n| n.set(n.get() + 1));
        #[cfg(target_arch = "x86_64")]
        if let Some(key) = self.vector(VECTOR_RSA.load(Ordering::Relaxed)) {
            return Ok(key.verify(alg, message, signature));
        }
        Ok(key.verify_sig(message, signature).is_ok())
    }
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    &bytes[start..]
}

fn decode_b64url(value: &str) -> Result<Vec<u8>, KeyParseError> {
    URL_SAFE_NO_PAD
        .decode(value.trim_end_matches('='))
        .map_err(|_| KeyParseError::Jwk("n or e is not base64url"))
}

/// One entry of a JWKS document, as far as we read it.
#[derive(Clone, Debug, Default, serde::Deserialize, serde::Serialize)]
pub struct Jwk {
    #[serde(default)]
    pub kty: String,
    #[serde(default)]
    pub kid: Option<String>,
    #[serde(default)]
    pub alg: Option<String>,
    #[serde(default, rename = "use")]
    pub key_use: Option<String>,
    #[serde(default)]
    pub n: Option<String>,
    #[serde(default)]
    pub e: Option<String>,
}

/// The keys of one JWKS fetch, by `kid`.
#[derive(Debug, Default)]
pub struct KeySet {
    keys: HashMap<Arc<str>, Arc<VerifyingKey>>,
}

/// Why a JWKS document gave no usable keys.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JwksError {
    #[error("the JWKS is not JSON with a `keys` array")]
    Malformed,
    #[error("the JWKS endpoint did not contain any signing keys")]
    Empty,
}

impl KeySet {
    /// Parses a JWKS document. Keys that are unusable (not RSA, too small, no `kid`) are
    /// skipped and reported, so one bad entry never drops the good ones.
    pub fn from_jwks(body: &[u8]) -> Result<(Self, Vec<KeyParseError>), JwksError> {
        #[derive(serde::Deserialize)]
        struct Doc {
            keys: Vec<serde_json::Value>,
        }
        let doc: Doc = serde_json::from_slice(body).map_err(|_| JwksError::Malformed)?;
        let mut set = Self::default();
        let mut skipped = Vec::new();
        for value in doc.keys {
            let parsed = serde_json::from_value::<Jwk>(value)
                .map_err(|_| KeyParseError::Jwk("not a JWK object"))
                .and_then(|jwk| VerifyingKey::from_jwk(&jwk));
            match parsed {
                Ok(key) => match key.kid.clone() {
                    Some(kid) => {
                        set.keys.insert(kid, Arc::new(key));
                    }
                    None => skipped.push(KeyParseError::Jwk("no kid")),
                },
                Err(e) => skipped.push(e),
            }
        }
        if set.keys.is_empty() {
            return Err(JwksError::Empty);
        }
        Ok((set, skipped))
    }

    pub fn get(&self, kid: &str) -> Option<&Arc<VerifyingKey>> {
        self.keys.get(kid)
    }

    /// Takes `previous`'s key for every kid whose key did not change. The token cache knows
    /// a key by identity, so a refresh that only fetched the same keys again must not look
    /// like a rotation: that would send every cached session back to the RSA check each
    /// refresh interval.
    pub fn keep_unchanged(&mut self, previous: &KeySet) {
        for (kid, key) in &mut self.keys {
            if let Some(old) = previous.keys.get(kid)
                && old.is_same_key(key)
            {
                *key = old.clone();
            }
        }
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<VerifyingKey>> {
        self.keys.values()
    }

    /// The kids, sorted, as Clerk lists them in `jwk-kid-mismatch` messages.
    pub fn kids(&self) -> Vec<&str> {
        let mut kids: Vec<&str> = self.keys.keys().map(|k| &**k).collect();
        kids.sort_unstable();
        kids
    }
}

/// Where verification keys come from. The domain only asks; adapters decide how keys are
/// fetched, cached and refreshed.
pub trait KeySource: Send + Sync {
    /// The key for a token whose header names `kid`. Errors carry Clerk's reasons
    /// (`jwk-kid-mismatch`, `jwk-remote-failed-to-load`, `secret-key-invalid`, …).
    fn key(
        &self,
        kid: Option<&str>,
    ) -> impl Future<Output = Result<Arc<VerifyingKey>, TokenError>> + Send;

    /// Whether `key` is what `kid` resolves to now, answered from what is at hand (no
    /// fetch): asked on every cached token, so it must not write shared state.
    fn is_current(&self, kid: Option<&str>, key: &Arc<VerifyingKey>) -> bool;
}

/// A `jwtKey` PEM: networkless, and like Clerk it ignores the token's `kid`.
pub struct StaticKey(pub Arc<VerifyingKey>);

impl KeySource for StaticKey {
    async fn key(&self, _kid: Option<&str>) -> Result<Arc<VerifyingKey>, TokenError> {
        Ok(self.0.clone())
    }

    fn is_current(&self, _kid: Option<&str>, key: &Arc<VerifyingKey>) -> bool {
        Arc::ptr_eq(&self.0, key)
    }
}

/// The `jwk-kid-mismatch` error, worded as Clerk words it.
pub fn kid_mismatch(kid: Option<&str>, available: &[&str]) -> TokenError {
    // The kid comes from the token: cap what is echoed, so a huge kid cannot make a huge
    // answer header (nginx refuses upstream headers over its buffer size).
    let kid = kid.map(|k| crate::domain::jwt::truncate(k, 64));
    TokenError {
        reason: TokenErrorReason::JwkKidMismatch,
        message: format!(
            "Unable to find a signing key in JWKS that matches the kid='{}' of the provided session \
             token. Please make sure that the __session cookie or the HTTP authorization header \
             contain a Clerk-generated session JWT. The following kid is available: {}",
            kid.as_deref().unwrap_or("undefined"),
            available.join(", ")
        ),
        action: Some(
            "Go to your Dashboard and validate your secret and public keys are correct. Contact \
             support@clerk.com if the issue persists.",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub const PUBLIC_PEM: &str = include_str!("../../tests/fixtures/key1.pub.pem");

    #[test]
    fn a_spki_pem_parses_with_real_or_escaped_newlines_or_bare() {
        let real = VerifyingKey::from_pem(PUBLIC_PEM).unwrap();
        assert_eq!(real.bits(), 2048);
        let escaped = PUBLIC_PEM.replace('\n', "\\n");
        assert_eq!(VerifyingKey::from_pem(&escaped).unwrap().bits(), 2048);
        let bare: String = PUBLIC_PEM
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect();
        assert_eq!(VerifyingKey::from_pem(&bare).unwrap().bits(), 2048);
    }

    /// Turned off, a key never builds its vector form and aws-lc decides; on, a 2048-bit key
    /// takes it on a CPU with IFMA (avx512.rs holds the two to the same answers).
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_vector_check_is_used_only_where_allowed() {
        let key = VerifyingKey::from_pem(PUBLIC_PEM).unwrap();
        assert!(key.vector(false).is_none());
        assert!(key.avx512.get().is_none(), "not even prepared");
        let ifma = std::arch::is_x86_feature_detected!("avx512ifma");
        assert_eq!(key.vector(true).is_some(), ifma);
        let big = VerifyingKey::from_pem(include_str!("../../tests/fixtures/key4096.pub.pem"));
        assert!(
            big.unwrap().vector(true).is_none(),
            "4096 bits stay with aws-lc"
        );
    }

    #[test]
    fn a_4096_bit_key_is_accepted() {
        let key = VerifyingKey::from_pem(include_str!("../../tests/fixtures/key4096.pub.pem"));
        assert_eq!(key.unwrap().bits(), 4096);
    }

    #[test]
    fn small_or_foreign_keys_are_refused() {
        assert_eq!(
            VerifyingKey::from_pem(include_str!("../../tests/fixtures/key1024.pub.pem"))
                .unwrap_err(),
            KeyParseError::TooSmall(1024)
        );
        assert_eq!(
            VerifyingKey::from_pem(include_str!("../../tests/fixtures/ec.pub.pem")).unwrap_err(),
            KeyParseError::NotRsa
        );
        assert!(matches!(
            VerifyingKey::from_pem("-----BEGIN PUBLIC KEY-----\n@@@\n-----END PUBLIC KEY-----"),
            Err(KeyParseError::Encoding(_))
        ));
        assert!(matches!(
            VerifyingKey::from_pem(""),
            Err(KeyParseError::Encoding(_))
        ));
    }

    #[test]
    fn a_jwks_keeps_good_keys_and_reports_bad_ones() {
        let good = include_str!("../../tests/fixtures/key1.jwk.json");
        let body = format!(
            r#"{{"keys":[{good},{{"kty":"EC","kid":"ec1"}},{{"kty":"RSA","kid":"x","n":"AQAB","e":"AQAB"}},7]}}"#
        );
        let (set, skipped) = KeySet::from_jwks(body.as_bytes()).unwrap();
        assert_eq!(set.kids(), vec!["ins_test_key1"]);
        assert_eq!(skipped.len(), 3);
    }

    #[test]
    fn a_refetched_set_keeps_unchanged_keys_and_takes_changed_ones() {
        let key1 = include_str!("../../tests/fixtures/key1.jwk.json");
        let key2 = include_str!("../../tests/fixtures/key2.jwk.json");
        let doc = |keys: &[&str]| format!(r#"{{"keys":[{}]}}"#, keys.join(","));
        let (before, _) = KeySet::from_jwks(doc(&[key1, key2]).as_bytes()).unwrap();
        // key1 fetched again; key2's kid now names other material (key1's modulus).
        let reused_kid = key1.replace("ins_test_key1", "ins_test_key2");
        let (mut after, _) = KeySet::from_jwks(doc(&[key1, &reused_kid]).as_bytes()).unwrap();
        after.keep_unchanged(&before);
        let same = |kid| Arc::ptr_eq(before.get(kid).unwrap(), after.get(kid).unwrap());
        assert!(same("ins_test_key1"), "an unchanged key keeps its identity");
        assert!(
            !same("ins_test_key2"),
            "new material under an old kid is a new key"
        );
    }

    #[test]
    fn an_empty_or_malformed_jwks_is_an_error() {
        assert_eq!(
            KeySet::from_jwks(br#"{"keys":[]}"#).unwrap_err(),
            JwksError::Empty
        );
        assert_eq!(
            KeySet::from_jwks(b"<html>").unwrap_err(),
            JwksError::Malformed
        );
        assert_eq!(
            KeySet::from_jwks(br#"{"keys":{}}"#).unwrap_err(),
            JwksError::Malformed
        );
    }
}
