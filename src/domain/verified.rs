//! Verified tokens, remembered: what verifying a token established, so that a token seen
//! again is neither decoded nor verified again. The cache itself is an adapter.

use std::sync::Arc;

use serde_json::Value;

use super::auth::SessionAuth;
use super::jwt::{Claim, Claims, Jwt, Payload, TokenError};
use super::keys::VerifyingKey;

/// The claims decisions read after verification (the claim checks and the cookie rules'
/// `iss`), each in its own slot: a hit reads six of them, and a lookup by name was most of
/// the claim checks' cost. The rest of the payload is not kept.
#[derive(Debug)]
pub struct KeptClaims([Option<Value>; Claim::ALL.len()]);

impl KeptClaims {
    pub fn new(payload: &Payload) -> Self {
        Self(Claim::ALL.map(|claim| payload.claim(claim).cloned()))
    }
}

impl Claims for KeptClaims {
    fn claim(&self, claim: Claim) -> Option<&Value> {
        self.0[claim as usize].as_ref()
    }
}

/// A token whose signature verified.
#[derive(Debug)]
pub struct Verified {
    /// The key that verified it: a hit counts only while this very key is still current.
    pub key: Arc<VerifyingKey>,
    kid: Option<Box<str>>,
    claims: KeptClaims,
    pub auth: Arc<SessionAuth>,
    /// A machine or non-session token (spec §2.2 step 1).
    pub machine: bool,
}

impl Verified {
    pub fn new(jwt: Jwt<'_>, key: Arc<VerifyingKey>) -> Self {
        let kid = jwt.kid().map(Box::from);
        let machine = jwt.is_machine_or_non_session();
        let payload = jwt.into_payload();
        Self {
            key,
            kid,
            claims: KeptClaims::new(&payload),
            auth: Arc::new(SessionAuth::from_claims(payload)),
            machine,
        }
    }

    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The kept claims, enough for `check_claims` and the cookie rules.
    pub fn claims(&self) -> &KeptClaims {
        &self.claims
    }

    /// When the entry must be gone: the token's `exp` plus the clock skew. `None` when the
    /// token has no usable `exp` (it will never pass the checks, so it is not kept).
    pub fn expires_at_ms(&self, clock_skew_ms: i64) -> Option<i64> {
        let exp = self.claims.claim(Claim::Exp)?.as_f64()?;
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
        /// What the cookie rules read before verification, so a repeat is not decoded.
        claims: Box<KeptClaims>,
        machine: bool,
    },
    /// It is correctly signed but failed a claim check (typically expired). The checks run
    /// again on every hit, so a token whose `nbf` is reached passes then.
    Claims(Arc<Verified>),
}

/// How long a rejection is remembered.
pub const REJECTION_TTL_MS: i64 = 60_000;

/// What a cache remembers of a token.
#[derive(Clone, Debug)]
pub enum Known {
    /// Verified, with all that verification established: no decoding, no signature check.
    Verified(Arc<Verified>),
    /// Its signature verified with this key. It is decoded again but not checked again:
    /// this is what a cache can keep of many sessions in little memory.
    Signed(Arc<VerifyingKey>),
    /// It failed.
    Rejected(Arc<Rejected>),
}

/// Where verified tokens are remembered. Implementations must bound their size and drop an
/// entry at its `expires_at_ms`.
pub trait TokenCache: Send + Sync {
    /// What is remembered of `token` at `now_ms`, the decision's one reading of the clock.
    fn lookup(&self, token: &str, now_ms: i64) -> Option<Known>;
    /// Remembers a token whose signature has just been checked.
    fn insert(&self, token: &str, verified: Arc<Verified>, expires_at_ms: i64);
    /// Keeps a token found `Known::Signed`, now decoded again, at hand.
    fn recent(&self, _token: &str, _verified: Arc<Verified>, _expires_at_ms: i64) {}
    fn reject(&self, _token: &str, _rejected: Arc<Rejected>, _until_ms: i64) {}
}

/// No cache: every token is verified (`--no-token-cache`, and the rare paths).
pub struct NoCache;

impl TokenCache for NoCache {
    fn lookup(&self, _token: &str, _now_ms: i64) -> Option<Known> {
        None
    }

    fn insert(&self, _token: &str, _verified: Arc<Verified>, _expires_at_ms: i64) {}
}

/// A session token as the request path sees it: remembered, known to fail with a key, or
/// decoded now (with what the cache knew of it, if anything).
pub enum Token<'t> {
    Cached(Arc<Verified>),
    /// A `Rejected::WithKey`: refused again without decoding while that key is current.
    Rejected(Arc<Rejected>),
    /// Boxed: a decoded token is large (its members sit in fixed slots) and moves about.
    Decoded(Box<Jwt<'t>>, Option<Known>),
}

impl Token<'_> {
    /// A payload claim the cookie rules read (`iss`, `iat`, `exp`).
    pub fn claim(&self, claim: Claim) -> Option<&Value> {
        match self {
            Self::Cached(verified) => verified.claims().claim(claim),
            Self::Rejected(rejected) => match &**rejected {
                Rejected::WithKey { claims, .. } => claims.claim(claim),
                Rejected::Claims(verified) => verified.claims().claim(claim),
                Rejected::Malformed(_) => None,
            },
            Self::Decoded(jwt, _) => jwt.payload().claim(claim),
        }
    }

    pub fn is_machine(&self) -> bool {
        match self {
            Self::Cached(verified) => verified.machine,
            Self::Rejected(rejected) => match &**rejected {
                Rejected::WithKey { machine, .. } => *machine,
                Rejected::Claims(verified) => verified.machine,
                Rejected::Malformed(_) => false,
            },
            Self::Decoded(jwt, _) => jwt.is_machine_or_non_session(),
        }
    }
}
