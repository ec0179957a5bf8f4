//! Clerk's `verifyToken`/`verifyJwt` (spec §3): decode, key, header, signature, then claims,
//! in that order and with Clerk's reason strings.

use std::fmt::Write as _;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use jsonwebtoken::Algorithm;
use serde_json::Value;

use super::keys::{KeySource, VerifyingKey};
use super::time::{UtcString, seconds_to_time_ms};
pub use members::{Header, Payload};

/// Clerk's `TokenVerificationErrorReason`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TokenErrorReason {
    TokenExpired,
    TokenInvalid,
    TokenInvalidAlgorithm,
    TokenInvalidAuthorizedParties,
    TokenInvalidSignature,
    TokenNotActiveYet,
    TokenIatInTheFuture,
    TokenVerificationFailed,
    InvalidSecretKey,
    LocalJwkMissing,
    RemoteJwkFailedToLoad,
    RemoteJwkInvalid,
    RemoteJwkMissing,
    JwkFailedToResolve,
    JwkKidMismatch,
}

impl TokenErrorReason {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::TokenExpired => "token-expired",
            Self::TokenInvalid => "token-invalid",
            Self::TokenInvalidAlgorithm => "token-invalid-algorithm",
            Self::TokenInvalidAuthorizedParties => "token-invalid-authorized-parties",
            Self::TokenInvalidSignature => "token-invalid-signature",
            Self::TokenNotActiveYet => "token-not-active-yet",
            Self::TokenIatInTheFuture => "token-iat-in-the-future",
            Self::TokenVerificationFailed => "token-verification-failed",
            Self::InvalidSecretKey => "secret-key-invalid",
            Self::LocalJwkMissing => "jwk-local-missing",
            Self::RemoteJwkFailedToLoad => "jwk-remote-failed-to-load",
            Self::RemoteJwkInvalid => "jwk-remote-invalid",
            Self::RemoteJwkMissing => "jwk-remote-missing",
            Self::JwkFailedToResolve => "jwk-failed-to-resolve",
            Self::JwkKidMismatch => "jwk-kid-mismatch",
        }
    }

    /// Key failures say nothing about the token: the service could not judge it.
    pub const fn is_key_failure(self) -> bool {
        matches!(
            self,
            Self::InvalidSecretKey
                | Self::LocalJwkMissing
                | Self::RemoteJwkFailedToLoad
                | Self::RemoteJwkInvalid
                | Self::RemoteJwkMissing
                | Self::JwkFailedToResolve
        )
    }
}

pub const ENSURE_CLERK_JWT: &str = "Make sure that this is a valid Clerk-generated JWT.";
pub const CONTACT_SUPPORT: &str = "Contact support@clerk.com";

/// Clerk's `TokenVerificationError`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenError {
    pub reason: TokenErrorReason,
    pub message: String,
    pub action: Option<&'static str>,
}

/// Where the token came from; it is part of Clerk's error messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenCarrier {
    Header,
    Cookie,
}

impl TokenCarrier {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Header => "header",
            Self::Cookie => "cookie",
        }
    }
}

impl TokenError {
    fn new(reason: TokenErrorReason, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
            action: None,
        }
    }

    fn ensure_clerk_jwt(reason: TokenErrorReason, message: impl Into<String>) -> Self {
        Self {
            action: Some(ENSURE_CLERK_JWT),
            ..Self::new(reason, message)
        }
    }

    /// `getFullMessage()`: `<message> <action> (reason=…, token-carrier=…)`.
    pub fn full_message(&self, carrier: TokenCarrier) -> String {
        let action = self.action.unwrap_or("");
        let space = if self.message.is_empty() || action.is_empty() {
            ""
        } else {
            " "
        };
        // Built in one allocation: every invalid token's answer carries this message.
        let parts = [
            self.message.as_str(),
            space,
            action,
            " (reason=",
            self.reason.as_str(),
            ", token-carrier=",
            carrier.as_str(),
            ")",
        ];
        let mut text = String::with_capacity(parts.iter().map(|p| p.len()).sum());
        parts.iter().for_each(|p| text.push_str(p));
        text
    }
}

/// JWT header `cat` values (spec §2.2).
pub const CATEGORY_SESSION: &str = "cl_B7d4PD111AAA";
pub const CATEGORY_IGNORE: &str = "cl_I7d4PD111III";
pub const CATEGORY_M2M: &str = "cl_B7d4PD333AAA";

/// Base64url as Clerk's loose parser reads it: padding optional, trailing bits must be zero.
const LOOSE_B64URL: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(false),
);

/// Base64url-decodes a header or payload and parses it. The JSON is only read while parsing,
/// so a usual-sized part is decoded on the stack rather than into a fresh allocation.
fn decode_part<T>(part: &str, parse: fn(&[u8]) -> serde_json::Result<T>) -> Option<T> {
    let mut stack = [0_u8; 2048];
    if base64::decoded_len_estimate(part.len()) <= stack.len() {
        let len = LOOSE_B64URL.decode_slice(part, &mut stack).ok()?;
        parse(&stack[..len]).ok()
    } else {
        parse(&LOOSE_B64URL.decode(part).ok()?).ok()
    }
}

/// A decoded, not yet verified, JWT.
#[derive(Debug)]
pub struct Jwt<'t> {
    signing_input: &'t str,
    header: Header,
    payload: Payload,
    signature: Vec<u8>,
}

impl<'t> Jwt<'t> {
    /// `decodeJwt`: three dot-separated parts whose header and payload are JSON objects.
    pub fn decode(token: &'t str) -> Result<Self, TokenError> {
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::new(
                TokenErrorReason::TokenInvalid,
                "Invalid JWT form. A JWT consists of three parts separated by dots.",
            ));
        };
        let undecodable = || {
            TokenError::new(
                TokenErrorReason::TokenInvalid,
                "Invalid JWT form. The header, payload, or signature could not be decoded.",
            )
        };
        let header = decode_part(h, Header::from_json).ok_or_else(undecodable)?;
        let payload = decode_part(p, Payload::from_json).ok_or_else(undecodable)?;
        let signature = LOOSE_B64URL.decode(s).map_err(|_| undecodable())?;
        Ok(Self {
            signing_input: &token[..h.len() + 1 + p.len()],
            header,
            payload,
            signature,
        })
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    pub fn payload(&self) -> &Payload {
        &self.payload
    }

    pub fn into_payload(self) -> Payload {
        self.payload
    }

    fn header_str(&self, name: &str) -> Option<&str> {
        self.header.get(name).and_then(Value::as_str)
    }

    pub fn kid(&self) -> Option<&str> {
        self.header_str("kid")
    }

    /// The `iss` claim, if it is a string.
    pub fn issuer(&self) -> Option<&str> {
        self.payload.get("iss").and_then(Value::as_str)
    }

    /// True for tokens Clerk treats as machine tokens on the `any` path (spec §2.1–2.2): an
    /// M2M JWT (`sub` = `mch_…`), an OAuth JWT (`typ` = `at+jwt`), or a header `cat` that is
    /// neither session nor ignore.
    pub fn is_machine_or_non_session(&self) -> bool {
        let machine_sub = self
            .payload
            .get("sub")
            .and_then(Value::as_str)
            .is_some_and(|sub| sub.starts_with("mch_"));
        let oauth = matches!(
            self.header_str("typ"),
            Some("at+jwt" | "application/at+jwt")
        );
        let other_category = match self.header.get("cat") {
            None => false,
            Some(Value::String(cat)) => cat != CATEGORY_SESSION && cat != CATEGORY_IGNORE,
            Some(_) => true,
        };
        machine_sub || oauth || other_category
    }
}

/// True when a header token is an opaque machine token (`mt_`, `oat_`, `ak_`).
pub fn is_opaque_machine_token(token: &str) -> bool {
    ["mt_", "oat_", "ak_"].iter().any(|p| token.starts_with(p))
}

/// The claim checks `verifyJwt` applies after the signature.
#[derive(Clone, Debug, Default)]
pub struct VerifyOptions {
    /// Exact origins allowed in `azp`; empty disables the check.
    pub authorized_parties: Vec<String>,
    /// Allowed `aud` values; empty disables the check.
    pub audience: Vec<String>,
    pub clock_skew_ms: i64,
}

/// `verifyToken`: returns the payload of a valid session token.
pub async fn verify_token<K: KeySource>(
    token: &str,
    keys: &K,
    options: &VerifyOptions,
    now_ms: i64,
) -> Result<Payload, TokenError> {
    let jwt = Jwt::decode(token)?;
    verify_jwt(&jwt, keys, options, now_ms).await?;
    Ok(jwt.into_payload())
}

/// `verifyToken` on an already decoded token.
pub async fn verify_jwt<K: KeySource>(
    jwt: &Jwt<'_>,
    keys: &K,
    options: &VerifyOptions,
    now_ms: i64,
) -> Result<(), TokenError> {
    verified_key(jwt, keys).await?;
    check_claims(jwt.payload(), options, now_ms)
}

/// Everything `verifyToken` checks before the claims: the category, the key, the header and
/// the signature. Returns the key that verified the token.
pub async fn verified_key<K: KeySource>(
    jwt: &Jwt<'_>,
    keys: &K,
) -> Result<Arc<VerifyingKey>, TokenError> {
    check_category(jwt)?;
    let key = keys.key(jwt.kid()).await?;
    verify_signature(jwt, &key)?;
    Ok(key)
}

/// The check `verifyToken` makes before looking up a key: the category.
pub fn check_category(jwt: &Jwt<'_>) -> Result<(), TokenError> {
    if jwt.header_str("cat") == Some(CATEGORY_M2M) {
        return Err(TokenError::new(
            TokenErrorReason::TokenInvalid,
            "Invalid session token category",
        ));
    }
    Ok(())
}

/// Header checks and the signature, before any claim is looked at (no claim oracle).
pub fn verify_signature(jwt: &Jwt<'_>, key: &Arc<VerifyingKey>) -> Result<(), TokenError> {
    check_type(jwt)?;
    let alg = check_algorithm(jwt)?;
    check_signature(jwt, key, alg)
}

fn check_type(jwt: &Jwt<'_>) -> Result<(), TokenError> {
    match jwt.header.get("typ") {
        None => Ok(()),
        Some(Value::String(typ)) if typ == "JWT" => Ok(()),
        Some(other) => Err(TokenError::ensure_clerk_jwt(
            TokenErrorReason::TokenInvalid,
            format!("Invalid JWT type {}. Expected \"JWT\".", json(Some(other))),
        )),
    }
}

/// The algorithm comes from an allow-list, never from the token alone.
fn check_algorithm(jwt: &Jwt<'_>) -> Result<Algorithm, TokenError> {
    match jwt.header_str("alg") {
        Some("RS256") => Ok(Algorithm::RS256),
        Some("RS384") => Ok(Algorithm::RS384),
        Some("RS512") => Ok(Algorithm::RS512),
        _ => Err(TokenError::ensure_clerk_jwt(
            TokenErrorReason::TokenInvalidAlgorithm,
            format!(
                "Invalid JWT algorithm {}. Supported: RS256,RS384,RS512.",
                json(jwt.header.get("alg"))
            ),
        )),
    }
}

fn check_signature(jwt: &Jwt<'_>, key: &VerifyingKey, alg: Algorithm) -> Result<(), TokenError> {
    match key.verify(alg, jwt.signing_input.as_bytes(), &jwt.signature) {
        Ok(true) => Ok(()),
        Ok(false) => Err(TokenError::new(
            TokenErrorReason::TokenInvalidSignature,
            "JWT signature is invalid.",
        )),
        Err(crypto) => Err(TokenError::ensure_clerk_jwt(
            TokenErrorReason::TokenVerificationFailed,
            format!("Error verifying JWT signature. {crypto}"),
        )),
    }
}

/// The registered claims that verification and the cookie rules read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Claim {
    Sub,
    Aud,
    Azp,
    Exp,
    Nbf,
    Iat,
    Iss,
}

impl Claim {
    pub const ALL: [Self; 7] = [
        Self::Sub,
        Self::Aud,
        Self::Azp,
        Self::Exp,
        Self::Nbf,
        Self::Iat,
        Self::Iss,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Self::Sub => "sub",
            Self::Aud => "aud",
            Self::Azp => "azp",
            Self::Exp => "exp",
            Self::Nbf => "nbf",
            Self::Iat => "iat",
            Self::Iss => "iss",
        }
    }
}

/// Where claims are read from: a decoded payload, or the few a remembered token keeps.
pub trait Claims {
    fn claim(&self, claim: Claim) -> Option<&Value>;
}

impl Claims for Payload {
    fn claim(&self, claim: Claim) -> Option<&Value> {
        // `members::PAYLOAD` starts with `Claim::ALL`, in its order.
        self.slot_value(claim as usize)
    }
}

/// The inputs of one claim check.
struct ClaimInput<'a> {
    payload: &'a dyn Claims,
    options: &'a VerifyOptions,
    now: f64,
    skew: f64,
}

type ClaimCheck = fn(&ClaimInput<'_>) -> Result<(), TokenError>;

/// `verifyJwt`'s claim checks, in Clerk's order.
const CLAIM_CHECKS: [(&str, ClaimCheck); 6] = [
    ("sub", check_sub),
    ("aud", |i| {
        check_audience(i.payload.claim(Claim::Aud), &i.options.audience)
    }),
    ("azp", check_azp),
    ("exp", check_exp),
    ("nbf", |i| check_not_after_now(i, Claim::Nbf)),
    ("iat", |i| check_not_after_now(i, Claim::Iat)),
];

fn claim_input<'a>(
    payload: &'a dyn Claims,
    options: &'a VerifyOptions,
    now_ms: i64,
) -> ClaimInput<'a> {
    #[allow(clippy::cast_precision_loss)]
    ClaimInput {
        payload,
        options,
        now: now_ms as f64,
        skew: options.clock_skew_ms as f64,
    }
}

/// `sub`, `aud`, `azp`, `exp`, `nbf`, `iat`, in Clerk's order. Time checks depend on `now`,
/// so this runs on every request even when the signature result is cached.
pub fn check_claims(
    payload: &dyn Claims,
    options: &VerifyOptions,
    now_ms: i64,
) -> Result<(), TokenError> {
    let input = claim_input(payload, options, now_ms);
    CLAIM_CHECKS.iter().try_for_each(|(_, check)| check(&input))
}

fn check_sub(i: &ClaimInput<'_>) -> Result<(), TokenError> {
    let sub = i.payload.claim(Claim::Sub);
    if matches!(sub, Some(Value::String(_))) {
        return Ok(());
    }
    Err(TokenError::ensure_clerk_jwt(
        TokenErrorReason::TokenVerificationFailed,
        format!(
            "Subject claim (sub) is required and must be a string. Received {}.",
            json(sub)
        ),
    ))
}

fn check_azp(i: &ClaimInput<'_>) -> Result<(), TokenError> {
    let parties = &i.options.authorized_parties;
    if parties.is_empty() {
        return Ok(());
    }
    let azp = i.payload.claim(Claim::Azp);
    let allowed = match azp {
        Some(Value::String(azp)) => !azp.is_empty() && parties.iter().any(|p| p == azp),
        _ => false,
    };
    if allowed {
        return Ok(());
    }
    Err(TokenError::new(
        TokenErrorReason::TokenInvalidAuthorizedParties,
        format!(
            "Invalid JWT Authorized party claim (azp) {}. Expected \"{}\".",
            json(azp),
            parties.join(",")
        ),
    ))
}

/// A numeric date claim: `None` when absent, `Some(None)` when out of `Date`'s range.
fn date_claim(i: &ClaimInput<'_>, claim: Claim) -> Result<Option<Option<f64>>, TokenError> {
    let name = claim.name();
    let label = match claim {
        Claim::Exp => "expiry date",
        Claim::Nbf => "not before date",
        _ => "issued at date",
    };
    match i.payload.claim(claim) {
        None => Ok(None),
        Some(Value::Number(n)) => Ok(Some(n.as_f64().and_then(seconds_to_time_ms))),
        Some(other) => Err(TokenError::ensure_clerk_jwt(
            TokenErrorReason::TokenVerificationFailed,
            format!(
                "Invalid JWT {label} claim ({name}) {}. Expected number.",
                json(Some(other))
            ),
        )),
    }
}

fn check_exp(i: &ClaimInput<'_>) -> Result<(), TokenError> {
    let Some(exp) = date_claim(i, Claim::Exp)? else {
        return Err(TokenError::ensure_clerk_jwt(
            TokenErrorReason::TokenVerificationFailed,
            "Invalid JWT expiry date claim (exp) undefined. Expected number.",
        ));
    };
    if exp.is_some_and(|exp| exp <= i.now - i.skew) {
        // Sized for two dates: `format!` guesses short and reallocates.
        let mut message = String::with_capacity(112);
        let _ = write!(
            message,
            "JWT is expired. Expiry date: {}, Current date: {}.",
            UtcString(exp),
            UtcString(Some(i.now))
        );
        return Err(TokenError::new(TokenErrorReason::TokenExpired, message));
    }
    Ok(())
}

/// `nbf` and `iat` fail when later than now plus the skew.
fn check_not_after_now(i: &ClaimInput<'_>, claim: Claim) -> Result<(), TokenError> {
    let Some(value) = date_claim(i, claim)? else {
        return Ok(());
    };
    if !value.is_some_and(|v| v > i.now + i.skew) {
        return Ok(());
    }
    let (current, at) = (UtcString(Some(i.now)), UtcString(value));
    Err(if claim == Claim::Nbf {
        TokenError::new(
            TokenErrorReason::TokenNotActiveYet,
            format!(
                "JWT cannot be used prior to not before date claim (nbf). Not before date: {at}; \
                 Current date: {current};"
            ),
        )
    } else {
        TokenError::new(
            TokenErrorReason::TokenIatInTheFuture,
            format!(
                "JWT issued at date claim (iat) is in the future. Issued at date: {at}; Current \
                 date: {current};"
            ),
        )
    })
}

/// One step of verification, for `explain`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    pub name: &'static str,
    /// `Ok(detail)` or the error Clerk would report.
    pub outcome: Result<String, TokenError>,
}

/// Runs every verification step in Clerk's order and reports each, going on past a failure
/// where the later steps still mean something (the claims after a bad signature do not).
pub async fn explain<K: KeySource>(
    token: &str,
    keys: &K,
    options: &VerifyOptions,
    now_ms: i64,
) -> Vec<Step> {
    let mut steps = Vec::new();
    let jwt = match Jwt::decode(token) {
        Ok(jwt) => {
            let detail = format!("header {}", Value::Object(jwt.header.to_map()));
            steps.push(Step {
                name: "decode",
                outcome: Ok(detail),
            });
            jwt
        }
        Err(e) => {
            steps.push(Step {
                name: "decode",
                outcome: Err(e),
            });
            return steps;
        }
    };
    let key = keys.key(jwt.kid()).await;
    steps.push(Step {
        name: "key",
        outcome: key
            .as_ref()
            .map(|k| {
                format!(
                    "{} bits, kid {}",
                    k.bits(),
                    k.kid().unwrap_or("(networkless PEM)")
                )
            })
            .map_err(Clone::clone),
    });
    steps.push(Step {
        name: "typ",
        outcome: check_type(&jwt).map(|()| "JWT or absent".into()),
    });
    let alg = check_algorithm(&jwt);
    steps.push(Step {
        name: "alg",
        outcome: alg.clone().map(|a| format!("{a:?}")),
    });
    let signed = match (&key, alg) {
        (Ok(key), Ok(alg)) => {
            let outcome = check_signature(&jwt, key, alg).map(|()| "valid".to_owned());
            let ok = outcome.is_ok();
            steps.push(Step {
                name: "signature",
                outcome,
            });
            ok
        }
        _ => false,
    };
    if !signed {
        return steps;
    }
    let input = claim_input(jwt.payload(), options, now_ms);
    for (name, check) in CLAIM_CHECKS {
        let detail = jwt
            .payload()
            .get(name)
            .map_or_else(|| "absent".to_owned(), Value::to_string);
        steps.push(Step {
            name,
            outcome: check(&input).map(|()| detail),
        });
    }
    steps
}

fn check_audience(aud: Option<&Value>, audience: &[String]) -> Result<(), TokenError> {
    if audience.iter().all(String::is_empty) {
        return Ok(());
    }
    let wanted: Vec<&str> = audience
        .iter()
        .map(String::as_str)
        .filter(|a| !a.is_empty())
        .collect();
    let present = match aud {
        None | Some(Value::Null) => false,
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Array(items)) => items.iter().any(truthy),
        Some(other) => truthy(other),
    };
    if wanted.is_empty() || !present {
        return Ok(());
    }
    let list = serde_json::to_string(&wanted).unwrap_or_default();
    match aud {
        Some(Value::String(s)) if !wanted.contains(&s.as_str()) => {
            Err(TokenError::ensure_clerk_jwt(
                TokenErrorReason::TokenVerificationFailed,
                format!(
                    "Invalid JWT audience claim (aud) {}. Is not included in \"{list}\".",
                    json(aud)
                ),
            ))
        }
        Some(Value::Array(items))
            if !items.is_empty()
                && items.iter().all(Value::is_string)
                && !items
                    .iter()
                    .filter_map(Value::as_str)
                    .any(|a| wanted.contains(&a)) =>
        {
            Err(TokenError::ensure_clerk_jwt(
                TokenErrorReason::TokenVerificationFailed,
                format!(
                    "Invalid JWT audience claim array (aud) {}. Is not included in \"{list}\".",
                    json(aud)
                ),
            ))
        }
        // Clerk lets an `aud` of any other shape through.
        _ => Ok(()),
    }
}

/// At most `max` bytes of `text` (on a character boundary), with `...` when cut.
pub fn truncate(text: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if text.len() <= max {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    std::borrow::Cow::Owned(format!("{}...", &text[..end]))
}

/// JavaScript truthiness of a JSON value.
pub fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}

/// `JSON.stringify`, with `undefined` for an absent value.
fn json(value: Option<&Value>) -> String {
    value.map_or_else(|| "undefined".to_owned(), Value::to_string)
}

/// Encodes bytes as unpadded base64url (used when minting tokens in `dev` and tests).
pub fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

mod members;
#[cfg(test)]
mod tests;
