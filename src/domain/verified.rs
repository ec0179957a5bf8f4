//! Verified tokens, remembered: what verifying a token established, so that a token seen
//! again is neither decoded nor verified again. The cache itself is an adapter.

use std::sync::Arc;

use serde_json::{Map, Value};

use super::auth::SessionAuth;
use super::jwt::{Jwt, TokenError};
use super::keys::VerifyingKey;

/// The claims decisions read after verification: the claim checks (`sub`, `aud`, `azp`,
/// `exp`, `nbf`, `iat`) and the cookie rules (`iss`). The rest of the payload is not kept.
const KEPT_CLAIMS: [&str; 7] = ["sub", "aud", "azp", "exp", "nbf", "iat", "iss"];

/// A token whose signature verified.
#[derive(Debug)]
pub struct Verified {
    /// The key that verified it: a hit counts only while this very key is still current.
    pub key: Arc<VerifyingKey>,
    kid: Option<Box<str>>,
    claims: Map<String, Value>,
    pub auth: Arc<SessionAuth>,
    /// A machine or non-session token (spec §2.2 step 1).
    pub machine: bool,
}

impl Verified {
    pub fn new(jwt: &Jwt<'_>, key: Arc<VerifyingKey>) -> Self {
        let payload = jwt.payload();
        let claims = KEPT_CLAIMS
            .iter()
            .filter_map(|name| Some(((*name).to_owned(), payload.get(*name)?.clone())))
            .collect();
        Self {
            key,
            kid: jwt.kid().map(Box::from),
            claims,
            auth: Arc::new(SessionAuth::from_claims(payload)),
            machine: jwt.is_machine_or_non_session(),
        }
    }

    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The kept claims, enough for `check_claims` and the cookie rules.
    pub fn claims(&self) -> &Map<String, Value> {
        &self.claims
    }

    /// When the entry must be gone: the token's `exp` plus the clock skew. `None` when the
    /// token has no usable `exp` (it will never pass the checks, so it is not kept).
    pub fn expires_at_ms(&self, clock_skew_ms: i64) -> Option<i64> {
        let exp = self.claims.get("exp")?.as_f64()?;
        let ms = exp.trunc() * 1000.0;
        // Anything past the year 10000 is capped; `Date` would reject it anyway.
        #[allow(clippy::cast_possible_truncation)]
        let ms = ms.clamp(0.0, 253_402_300_800_000.0) as i64;
        Some(ms.saturating_add(clock_skew_ms.max(0)))
    }
}

/// A token known to fail, so a forged or stale token repeated is refused without the RSA
/// check. Each is remembered briefly and only while what it depends on holds.
#[derive(Debug)]
pub enum Rejected {
    /// It fails before any key is involved (it does not decode, or has the M2M category).
    Malformed(TokenError),
    /// It fails against this key (header or signature): only while `key` is the one its kid
    /// resolves to.
    WithKey {
        kid: Option<Box<str>>,
        key: Arc<VerifyingKey>,
        error: TokenError,
    },
    /// It is correctly signed but failed a claim check (typically expired). The checks run
    /// again on every hit, so a token whose `nbf` is reached passes then.
    Claims(Arc<Verified>),
}

/// How long a rejection is remembered.
pub const REJECTION_TTL_MS: i64 = 60_000;

/// Where verified tokens are remembered. Implementations must bound their size and drop an
/// entry at its `expires_at_ms`.
pub trait TokenCache: Send + Sync {
    fn get(&self, token: &str) -> Option<Arc<Verified>>;
    fn insert(&self, token: &str, verified: Arc<Verified>, expires_at_ms: i64);
    /// A rejection remembered for `token`.
    fn rejected(&self, _token: &str) -> Option<Arc<Rejected>> {
        None
    }
    fn reject(&self, _token: &str, _rejected: Arc<Rejected>, _until_ms: i64) {}
}

/// No cache: every token is verified (`--no-token-cache`, and the rare paths).
pub struct NoCache;

impl TokenCache for NoCache {
    fn get(&self, _token: &str) -> Option<Arc<Verified>> {
        None
    }

    fn insert(&self, _token: &str, _verified: Arc<Verified>, _expires_at_ms: i64) {}
}

/// A session token as the request path sees it: remembered, or decoded now.
pub enum Token<'t> {
    Cached(Arc<Verified>),
    Decoded(Jwt<'t>),
}

impl Token<'_> {
    /// The payload claims the cookie rules read (`iss`, `iat`, `exp`).
    pub fn claims(&self) -> &Map<String, Value> {
        match self {
            Self::Cached(verified) => verified.claims(),
            Self::Decoded(jwt) => jwt.payload(),
        }
    }

    pub fn is_machine(&self) -> bool {
        match self {
            Self::Cached(verified) => verified.machine,
            Self::Decoded(jwt) => jwt.is_machine_or_non_session(),
        }
    }
}
