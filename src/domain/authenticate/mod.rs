//! Clerk's `authenticateRequest` (spec §2): the header path, the cookie path in its order,
//! handshakes, handshake resolution and server-side refresh, producing Clerk's request
//! state.

mod context;
mod handshake;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;
use url::Url;

pub use context::{CookieChoice, RequestContext, uses_suffixed_cookies};
pub use handshake::{cleaned_url, handshake_url};

use super::auth::SessionAuth;
use super::backend::{ClerkBackend, RefreshRequest};
use super::instance::{InstanceType, PublishableKey};
use super::jwt::{self, Claim, Jwt, TokenCarrier, TokenError, TokenErrorReason, VerifyOptions};
use super::keys::KeySource;
use super::pattern::PathPatterns;
use super::reason::{Reason, RefreshError};
use super::verified::{KeptClaims, Known, REJECTION_TTL_MS, Rejected, Token, TokenCache, Verified};
use context::{js_number, number};

/// The `__clerk_api_version` the handshake URL carries (the SDK's pinned BAPI version).
pub const SUPPORTED_BAPI_VERSION: &str = "2026-05-12";

/// How the instance is set up: the parts of Clerk's options that change decisions.
#[derive(Clone, Debug)]
pub struct ClerkOptions {
    pub publishable_key: PublishableKey,
    pub verify: VerifyOptions,
    /// `CLERK_PROXY_URL`: absolute, or a path resolved against the request's origin.
    pub proxy_url: Option<String>,
    /// `CLERK_DOMAIN`: a satellite's bare host name.
    pub domain: Option<String>,
    pub is_satellite: bool,
    /// `CLERK_SIGN_IN_URL`: absolute, or a path on the request's origin.
    pub sign_in_url: Option<String>,
    pub org_sync: OrgSync,
    /// Longer session tokens are refused before any decoding.
    pub max_token_bytes: usize,
}

impl ClerkOptions {
    /// The frontend API tokens are issued by: the key's, or `clerk.<domain>` for a production
    /// satellite (proxy URLs do not change it, spec §1.1).
    pub fn original_frontend_api(&self) -> Cow<'_, str> {
        match (&self.domain, self.is_satellite, self.instance_type()) {
            (Some(domain), true, InstanceType::Production) => Cow::Owned(format!("clerk.{domain}")),
            _ => Cow::Borrowed(self.publishable_key.frontend_api()),
        }
    }

    pub fn instance_type(&self) -> InstanceType {
        self.publishable_key.instance_type()
    }

    fn is_dev(&self) -> bool {
        self.instance_type() == InstanceType::Development
    }
}

/// `organizationSyncOptions` (spec §6), compiled.
#[derive(Clone, Debug, Default)]
pub struct OrgSync {
    pub organization: Option<PathPatterns>,
    pub personal_account: Option<PathPatterns>,
}

/// Which account a URL asks to be active.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OrgTarget {
    OrganizationId(String),
    OrganizationSlug(String),
    PersonalAccount,
}

impl OrgSync {
    pub fn is_configured(&self) -> bool {
        self.organization.is_some() || self.personal_account.is_some()
    }

    /// Organization patterns first (an `id` param, else a `slug` param), then personal ones.
    pub fn target(&self, path: &str) -> Option<OrgTarget> {
        if let Some(params) = self.organization.as_ref().and_then(|p| p.matches(path)) {
            let get = |name: &str| {
                params
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| (*v).to_owned())
            };
            if let Some(id) = get("id") {
                return Some(OrgTarget::OrganizationId(id));
            }
            if let Some(slug) = get("slug") {
                return Some(OrgTarget::OrganizationSlug(slug));
            }
            return None;
        }
        self.personal_account
            .as_ref()
            .filter(|p| p.is_match(path))
            .map(|_| OrgTarget::PersonalAccount)
    }
}

/// Clerk's request state (spec §2). A `location` on a signed-in or signed-out state sends
/// the browser back to the same URL with cookies (handshake resolution, refresh).
#[derive(Clone, Debug, PartialEq, Eq)]
// Built once per request and consumed at once: boxing the large variant would only add an
// allocation.
#[allow(clippy::large_enum_variant)]
pub enum RequestState {
    SignedIn {
        /// Shared with the token cache: a hit costs no copy.
        auth: Arc<SessionAuth>,
        carrier: TokenCarrier,
        set_cookies: Vec<String>,
        location: Option<String>,
    },
    SignedOut {
        reason: Reason,
        message: String,
        /// Whether a token was presented at all (for `WWW-Authenticate`).
        token_presented: bool,
        set_cookies: Vec<String>,
        location: Option<String>,
    },
    Handshake {
        reason: Reason,
        message: String,
        location: String,
        set_cookies: Vec<String>,
    },
}

impl RequestState {
    fn signed_out(reason: Reason, message: impl Into<String>, token_presented: bool) -> Self {
        Self::SignedOut {
            reason,
            message: message.into(),
            token_presented,
            set_cookies: Vec::new(),
            location: None,
        }
    }

    pub fn reason(&self) -> Option<&Reason> {
        match self {
            Self::SignedIn { .. } => None,
            Self::SignedOut { reason, .. } | Self::Handshake { reason, .. } => Some(reason),
        }
    }
}

/// What happened to a handshake resolution; adapters count these.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resolution {
    SignedIn,
    NoSession,
    /// The payload could not be fetched or verified; Clerk logs this and carries on.
    Failed,
    /// The redirect counter says the browser keeps coming back: the handshake was ignored.
    Loop,
}

/// Observes side events of authentication (metrics, logs) without the domain knowing how.
pub trait Observer: Send + Sync {
    fn handshake_resolution(&self, _outcome: Resolution) {}
    fn refresh(&self, _ok: bool) {}
}

/// Observes nothing.
pub struct Quiet;
impl Observer for Quiet {}

/// Runs Clerk's request authentication for one request.
pub struct Authenticator<'o, K, B, O = Quiet> {
    pub options: &'o ClerkOptions,
    pub keys: &'o K,
    pub backend: &'o B,
    pub observer: &'o O,
    /// Verified tokens seen before; `NoCache` verifies every one.
    pub tokens: &'o dyn TokenCache,
}

impl<K: KeySource, B: ClerkBackend, O: Observer> Authenticator<'_, K, B, O> {
    pub async fn authenticate(&self, ctx: &RequestContext<'_>, now_ms: i64) -> RequestState {
        match ctx.header_token() {
            Some(token) => self.header_path(ctx, token, now_ms).await,
            None => self.cookie_path(ctx, now_ms).await,
        }
    }

    /// Spec §2.2: a header token is verified on its own; no cookie rule applies.
    async fn header_path(
        &self,
        ctx: &RequestContext<'_>,
        token: &str,
        now_ms: i64,
    ) -> RequestState {
        if token.len() > self.options.max_token_bytes {
            return self.too_large(TokenCarrier::Header);
        }
        if jwt::is_opaque_machine_token(token) {
            return RequestState::signed_out(Reason::TokenTypeMismatch, "", true);
        }
        let verified = match self.token(token, now_ms) {
            Ok(t) if t.is_machine() => {
                return RequestState::signed_out(Reason::TokenTypeMismatch, "", true);
            }
            Ok(t) => self.verify(token, t, now_ms).await,
            Err(error) => Err(error),
        };
        match verified {
            Ok(auth) => RequestState::SignedIn {
                auth,
                carrier: TokenCarrier::Header,
                set_cookies: Vec::new(),
                location: None,
            },
            Err(error) => {
                // Only a failure needs the cookies (for the handshake URL and refresh).
                let cookies = CookieChoice::new(self.options, ctx, now_ms, self.tokens);
                self.token_error(ctx, &cookies, error, TokenCarrier::Header, now_ms)
                    .await
            }
        }
    }

    /// A session token, from the cache of verified tokens or decoded now. A token remembered
    /// as malformed fails at once; one remembered as correctly signed but failing its claims
    /// comes back with its claims, which are checked again.
    fn token<'t>(&self, raw: &'t str, now_ms: i64) -> Result<Token<'t>, TokenError> {
        let known = match self.tokens.lookup(raw, now_ms) {
            Some(Known::Verified(verified)) => return Ok(Token::Cached(verified)),
            Some(Known::Rejected(rejected)) => match &*rejected {
                Rejected::Malformed(error) => return Err(error.clone()),
                Rejected::Claims(verified) => return Ok(Token::Cached(verified.clone())),
                Rejected::WithKey { .. } => return Ok(Token::Rejected(rejected)),
            },
            other => other,
        };
        Jwt::decode(raw)
            .map(|jwt| Token::Decoded(Box::new(jwt), known))
            .inspect_err(|error| self.reject(raw, Rejected::Malformed(error.clone()), now_ms))
    }

    /// Remembers a refused token from the decision's time, not another clock reading.
    fn reject(&self, raw: &str, rejected: Rejected, now_ms: i64) {
        let until = now_ms + REJECTION_TTL_MS;
        self.tokens.reject(raw, Arc::new(rejected), until);
    }

    /// `verifyToken`, remembering what it established. A remembered token skips decoding and
    /// the signature, but only while the key that verified it is still current; its claims
    /// (times included) are checked again now. A token whose signature is remembered skips
    /// the signature under the same condition. A remembered failure is repeated without the
    /// RSA check, under the same condition.
    async fn verify(
        &self,
        raw: &str,
        token: Token<'_>,
        now_ms: i64,
    ) -> Result<Arc<SessionAuth>, TokenError> {
        let options = &self.options.verify;
        let (jwt, known) = match token {
            Token::Cached(verified) => {
                if self.keys.is_current(verified.kid(), &verified.key) {
                    jwt::check_claims(verified.claims(), options, now_ms)?;
                    return Ok(verified.auth.clone());
                }
                (Box::new(Jwt::decode(raw)?), None)
            }
            Token::Rejected(rejected) => {
                if let Rejected::WithKey {
                    kid, key, error, ..
                } = &*rejected
                    && self.keys.is_current(kid.as_deref(), key)
                {
                    return Err(error.clone());
                }
                (Box::new(Jwt::decode(raw)?), None)
            }
            Token::Decoded(jwt, known) => (jwt, known),
        };
        if let Err(error) = jwt::check_category(&jwt) {
            self.reject(raw, Rejected::Malformed(error.clone()), now_ms);
            return Err(error);
        }
        // Key failures (unknown kid, JWKS down) are not the token's fault: not remembered.
        let key = self.keys.key(jwt.kid()).await?;
        let signed = matches!(&known, Some(Known::Signed(by)) if Arc::ptr_eq(by, &key));
        if !signed && let Err(error) = jwt::verify_signature(&jwt, &key) {
            let kid = jwt.kid().map(Box::from);
            self.reject(
                raw,
                Rejected::WithKey {
                    kid,
                    key,
                    error: error.clone(),
                    claims: Box::new(KeptClaims::new(jwt.payload())),
                    machine: jwt.is_machine_or_non_session(),
                },
                now_ms,
            );
            return Err(error);
        }
        let verified = Arc::new(Verified::new(*jwt, key));
        let remembered = verified
            .expires_at_ms(options.clock_skew_ms)
            .filter(|expires_at| *expires_at > now_ms);
        if let Some(expires_at) = remembered {
            if signed {
                self.tokens.recent(raw, verified.clone(), expires_at);
            } else {
                self.tokens.insert(raw, verified.clone(), expires_at);
            }
        }
        if let Err(error) = jwt::check_claims(verified.claims(), options, now_ms) {
            if remembered.is_none() {
                self.reject(raw, Rejected::Claims(verified), now_ms);
            }
            return Err(error);
        }
        Ok(verified.auth.clone())
    }

    /// Spec §2.3, the cookie path, in its order.
    async fn cookie_path(&self, ctx: &RequestContext<'_>, now_ms: i64) -> RequestState {
        let cookies = CookieChoice::new(self.options, ctx, now_ms, self.tokens);
        let dev = self.options.is_dev();

        // 1. Handshake resolution. Rare, so its large future is boxed rather than carried
        // (allocated and copied) by every request's.
        if let Some(handshake) = Handshake::of(ctx)
            && let Some(state) = Box::pin(self.resolve_handshake(ctx, handshake, now_ms)).await
        {
            return state;
        }
        let has_client = cookies.client_uat != 0;
        let has_session = cookies.session.is_some();

        // 2. Satellite sync.
        if self.options.is_satellite
            && ctx.is_document_get()
            && ctx.query("__clerk_synced").as_deref() != Some("true")
        {
            let needs_sync = ctx.query("__clerk_synced").as_deref() == Some("false");
            let has_cookies = has_session || has_client;
            if !has_cookies && !needs_sync {
                return RequestState::signed_out(Reason::SessionTokenAndUatMissing, "", false);
            }
            if !has_cookies || needs_sync {
                if !dev {
                    return self.maybe_handshake(
                        ctx,
                        &cookies,
                        Reason::SatelliteCookieNeedsSyncing,
                        String::new(),
                        None,
                    );
                }
                let location = self.options.sign_in_url.as_deref().and_then(|sign_in| {
                    let mut url = ctx.clerk_url()?.join(sign_in).ok()?;
                    let current = ctx.clerk_url()?.to_string();
                    crate::domain::urls::append_query_param(
                        &mut url,
                        "__clerk_redirect_url",
                        &current,
                    );
                    Some(url.to_string())
                });
                if let Some(location) = location {
                    return self.maybe_handshake(
                        ctx,
                        &cookies,
                        Reason::SatelliteCookieNeedsSyncing,
                        String::new(),
                        Some(location),
                    );
                }
            }
        }

        // 3. A development primary answering a satellite's sync request.
        if dev
            && !self.options.is_satellite
            && let Some(target) = ctx.query("__clerk_redirect_url")
            && let Ok(mut url) = Url::parse(&target)
            && matches!(url.scheme(), "http" | "https")
        {
            if let Some(db) = cookies.dev_browser.as_deref() {
                crate::domain::urls::append_query_param(&mut url, "__clerk_db_jwt", db);
            }
            crate::domain::urls::append_query_param(&mut url, "__clerk_synced", "true");
            return self.maybe_handshake(
                ctx,
                &cookies,
                Reason::PrimaryRespondsToSyncing,
                String::new(),
                Some(url.to_string()),
            );
        }

        // 4–5. The development browser.
        if dev && ctx.query("__clerk_db_jwt").is_some() {
            return self.maybe_handshake(
                ctx,
                &cookies,
                Reason::DevBrowserSync,
                String::new(),
                None,
            );
        }
        if dev && cookies.dev_browser.is_none() {
            return self.maybe_handshake(
                ctx,
                &cookies,
                Reason::DevBrowserMissing,
                String::new(),
                None,
            );
        }

        // 6–8. client_uat against the session cookie.
        let Some(session) = cookies.session.as_deref() else {
            return if has_client {
                self.maybe_handshake(
                    ctx,
                    &cookies,
                    Reason::ClientUatWithoutSessionToken,
                    String::new(),
                    None,
                )
            } else {
                RequestState::signed_out(Reason::SessionTokenAndUatMissing, "", false)
            };
        };
        if !has_client {
            return self.maybe_handshake(
                ctx,
                &cookies,
                Reason::SessionTokenWithoutClientUat,
                String::new(),
                None,
            );
        }

        // 9–11. Decode, token class, freshness against client_uat.
        if session.len() > self.options.max_token_bytes {
            return self.too_large(TokenCarrier::Cookie);
        }
        let token = match self.token(session, now_ms) {
            Ok(token) => token,
            Err(error) => {
                return self
                    .token_error(ctx, &cookies, error, TokenCarrier::Cookie, now_ms)
                    .await;
            }
        };
        if token.is_machine() {
            return RequestState::signed_out(Reason::TokenTypeMismatch, "", true);
        }
        #[allow(clippy::cast_precision_loss)]
        if number(token.claim(Claim::Iat)).is_some_and(|iat| iat < cookies.client_uat as f64) {
            return self.maybe_handshake(
                ctx,
                &cookies,
                Reason::SessionTokenIatBeforeClientUat,
                String::new(),
                None,
            );
        }

        // 12–13. Verification.
        let auth = match self.verify(session, token, now_ms).await {
            Ok(auth) => auth,
            Err(error) => {
                return self
                    .token_error(ctx, &cookies, error, TokenCarrier::Cookie, now_ms)
                    .await;
            }
        };

        // 14. A primary receiving a page load from another origin re-syncs once.
        if !self.options.is_satellite
            && ctx.is_document_get()
            && ctx.redirect_count() == 0.0
            && self.is_cross_origin_referrer(ctx)
        {
            return self.maybe_handshake(
                ctx,
                &cookies,
                Reason::PrimaryDomainCrossOriginSync,
                "Cross-origin request from satellite domain requires handshake".into(),
                None,
            );
        }

        // 15. Organization sync.
        if self.options.org_sync.is_configured()
            && let Some(path) = ctx.clerk_url().map(Url::path)
            && let Some(target) = self.options.org_sync.target(path)
            && is_org_mismatch(&auth, &target)
        {
            if ctx.redirect_count() >= 3.0 {
                tracing::warn!(
                    "Clerk: Organization activation handshake loop detected. This is likely due to \
                     an invalid organization ID or slug. Skipping organization activation."
                );
            } else {
                let state = self.maybe_handshake(
                    ctx,
                    &cookies,
                    Reason::ActiveOrganizationMismatch,
                    String::new(),
                    None,
                );
                if matches!(state, RequestState::Handshake { .. }) {
                    return state;
                }
            }
        }

        // 16.
        RequestState::SignedIn {
            auth,
            carrier: TokenCarrier::Cookie,
            set_cookies: Vec::new(),
            location: None,
        }
    }

    /// A token over the size limit is refused unread: decoding it would cost more than
    /// any real Clerk token (about 1 KiB) ever does.
    fn too_large(&self, carrier: TokenCarrier) -> RequestState {
        let error = TokenError {
            reason: TokenErrorReason::TokenInvalid,
            message: format!(
                "The session token is larger than {} bytes.",
                self.options.max_token_bytes
            ),
            action: Some(jwt::ENSURE_CLERK_JWT),
        };
        RequestState::signed_out(
            Reason::Token(error.reason),
            error.full_message(carrier),
            true,
        )
    }

    /// `handleSessionTokenError` (spec §2.4), with the refresh attempt of §2.5.
    async fn token_error(
        &self,
        ctx: &RequestContext<'_>,
        cookies: &CookieChoice<'_>,
        error: TokenError,
        carrier: TokenCarrier,
        now_ms: i64,
    ) -> RequestState {
        let message = error.full_message(carrier);
        let refresh = if error.reason == TokenErrorReason::TokenExpired
            && ctx.cookies.refresh_suffixed.is_some()
            && ctx.is_get()
        {
            // Boxed: rare, and large (see `cookie_path`).
            match Box::pin(self.refresh(ctx, cookies, now_ms)).await {
                Ok(state) => {
                    self.observer.refresh(true);
                    return state;
                }
                Err(refresh) => {
                    self.observer.refresh(false);
                    refresh
                }
            }
        } else if !ctx.is_get() {
            RefreshError::NonEligibleNonGet
        } else {
            RefreshError::NonEligibleNoRefreshCookie
        };
        let reason = match error.reason {
            TokenErrorReason::TokenExpired => Reason::SessionTokenExpiredRefresh(refresh),
            TokenErrorReason::TokenNotActiveYet => Reason::SessionTokenNbf,
            TokenErrorReason::TokenIatInTheFuture => Reason::SessionTokenIatInTheFuture,
            other => return RequestState::signed_out(Reason::Token(other), message, true),
        };
        self.maybe_handshake(ctx, cookies, reason, message, None)
    }

    /// `attemptRefresh` (spec §2.5): the Backend API trades the refresh cookie and the expired
    /// token for new cookies; the browser is sent back to the same URL with them.
    async fn refresh(
        &self,
        ctx: &RequestContext<'_>,
        cookies: &CookieChoice<'_>,
        now_ms: i64,
    ) -> Result<RequestState, RefreshError> {
        let expired = cookies
            .session
            .as_deref()
            .or(ctx.header_token())
            .ok_or(RefreshError::MissingSessionToken)?;
        let refresh_token = ctx
            .cookies
            .refresh_suffixed
            .as_deref()
            .ok_or(RefreshError::MissingRefreshToken)?;
        let decoded =
            Jwt::decode(expired).map_err(|_| RefreshError::ExpiredSessionTokenDecodeFailed)?;
        let sid = decoded
            .payload()
            .get("sid")
            .and_then(Value::as_str)
            .filter(|sid| !sid.is_empty())
            .ok_or(RefreshError::ExpiredSessionTokenMissingSidClaim)?;
        let clerk_url = ctx.clerk_url().ok_or(RefreshError::UnexpectedSdkError)?;
        let mut request_headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (name, value) in ctx.all_headers.pairs() {
            request_headers.entry(name).or_default().push(value);
        }
        let request = RefreshRequest {
            suffixed_cookies: cookies.suffixed,
            format: "cookie",
            expired_token: expired.to_owned(),
            refresh_token: refresh_token.to_owned(),
            request_origin: clerk_url.origin().ascii_serialization(),
            request_headers,
        };
        let directives = self.backend.refresh_session(sid, &request).await?;
        if directives.is_empty() {
            return Err(RefreshError::UnexpectedSdkError);
        }
        let token = handshake::session_from_directives(&directives);
        let claims = jwt::verify_token(&token, self.keys, &self.options.verify, now_ms)
            .await
            .map_err(|_| RefreshError::InvalidSessionToken)?;
        Ok(RequestState::SignedIn {
            auth: Arc::new(SessionAuth::from_claims(claims)),
            carrier: TokenCarrier::Cookie,
            set_cookies: directives,
            location: Some(clerk_url.to_string()),
        })
    }

    /// Spec §2.3 step 1 and §2.8: a browser coming back from the Frontend API with a nonce
    /// or a signed handshake. `None` means carry on as if there had been none.
    async fn resolve_handshake(
        &self,
        ctx: &RequestContext<'_>,
        Handshake { nonce, token }: Handshake<'_>,
        now_ms: i64,
    ) -> Option<RequestState> {
        let dev = self.options.is_dev();
        let clerk_url = ctx.clerk_url()?;
        // Clerk's production SDK adds these cookies to the app's own response; a forward-auth
        // hop cannot, so a page load goes back to the cleaned URL with them, as in development.
        let redirect = dev || ctx.is_doc_eligible();
        if redirect && ctx.redirect_count() >= 3.0 {
            tracing::warn!(
                "handshake resolution keeps coming back (stale or replayed nonce?); ignoring it"
            );
            self.observer.handshake_resolution(Resolution::Loop);
            return None;
        }
        let directives = if let Some(nonce) = nonce {
            match self.backend.handshake_payload(&nonce).await {
                Ok(directives) => directives,
                Err(error) => {
                    tracing::warn!(%error, "Clerk: HandshakeService: error getting handshake payload");
                    self.observer.handshake_resolution(Resolution::Failed);
                    Vec::new()
                }
            }
        } else {
            match handshake::verify_handshake_token(token.as_deref().unwrap_or(""), self.keys).await
            {
                Ok(directives) => directives,
                Err(error) => {
                    self.observer.handshake_resolution(Resolution::Failed);
                    let message = error.full_message(TokenCarrier::Cookie);
                    tracing::warn!(
                        reason = error.reason.as_str(),
                        "Clerk: unable to resolve handshake"
                    );
                    // Development throws here (a 500 in Clerk's middleware); we answer
                    // signed out with the reason instead.
                    return dev.then(|| {
                        RequestState::signed_out(Reason::Token(error.reason), message, true)
                    });
                }
            }
        };
        let mut set_cookies = directives;
        let location = redirect.then(|| {
            set_cookies.push(format!(
                "__clerk_redirect_count={}; SameSite=Lax; HttpOnly; Max-Age=2",
                js_number(ctx.redirect_count() + 1.0)
            ));
            cleaned_url(clerk_url).to_string()
        });
        let token = handshake::session_from_directives(&set_cookies);
        if token.is_empty() {
            self.observer.handshake_resolution(Resolution::NoSession);
            return Some(RequestState::SignedOut {
                reason: Reason::SessionTokenMissing,
                message: String::new(),
                token_presented: false,
                set_cookies,
                location,
            });
        }
        let mut verified = jwt::verify_token(&token, self.keys, &self.options.verify, now_ms).await;
        if dev
            && let Err(e) = &verified
            && matches!(
                e.reason,
                TokenErrorReason::TokenExpired
                    | TokenErrorReason::TokenNotActiveYet
                    | TokenErrorReason::TokenIatInTheFuture
            )
        {
            tracing::warn!(
                "Clerk: Clock skew detected. Retrying the handshake with a 24 hour skew."
            );
            let lenient = VerifyOptions {
                clock_skew_ms: 86_400_000,
                ..self.options.verify.clone()
            };
            verified = jwt::verify_token(&token, self.keys, &lenient, now_ms).await;
        }
        match verified {
            Ok(claims) => {
                self.observer.handshake_resolution(Resolution::SignedIn);
                Some(RequestState::SignedIn {
                    auth: Arc::new(SessionAuth::from_claims(claims)),
                    carrier: TokenCarrier::Cookie,
                    set_cookies,
                    location,
                })
            }
            Err(error) => {
                // Clerk throws a plain error here, which the cookie path logs and ignores.
                tracing::warn!(
                    reason = error.reason.as_str(),
                    "Clerk: unable to resolve handshake"
                );
                self.observer.handshake_resolution(Resolution::Failed);
                None
            }
        }
    }

    /// `handleMaybeHandshakeStatus` (spec §2.6); `location` replaces the handshake URL for
    /// the multi-domain sync redirects.
    fn maybe_handshake(
        &self,
        ctx: &RequestContext<'_>,
        cookies: &CookieChoice<'_>,
        reason: Reason,
        message: String,
        location: Option<String>,
    ) -> RequestState {
        let token_presented = cookies.session.is_some() || ctx.header_token().is_some();
        if !ctx.is_doc_eligible() {
            return RequestState::signed_out(reason, message, token_presented);
        }
        let Some(location) =
            location.or_else(|| handshake_url(self.options, ctx, cookies, &reason))
        else {
            return RequestState::signed_out(reason, message, token_presented);
        };
        let count = ctx.redirect_count();
        if count == 3.0 {
            tracing::warn!(
                reason = %reason,
                "Clerk: Refreshing the session token resulted in an infinite redirect loop. This \
                 usually means that your Clerk instance keys do not match - make sure to copy the \
                 correct publishable and secret keys from the Clerk dashboard."
            );
            return RequestState::signed_out(reason, message, token_presented);
        }
        RequestState::Handshake {
            reason,
            message,
            location,
            set_cookies: vec![format!(
                "__clerk_redirect_count={}; SameSite=Lax; HttpOnly; Max-Age=2",
                js_number(count + 1.0)
            )],
        }
    }

    /// A `referer` from another origin that is not one of Clerk's own hosts.
    fn is_cross_origin_referrer(&self, ctx: &RequestContext<'_>) -> bool {
        let (Some(referer), Some(clerk_url)) = (ctx.referer, ctx.clerk_url()) else {
            return false;
        };
        let Ok(referer) = Url::parse(referer) else {
            return false;
        };
        if referer.origin() == clerk_url.origin() {
            return false;
        }
        !self.is_known_clerk_referrer(&referer)
    }

    fn is_known_clerk_referrer(&self, referer: &Url) -> bool {
        let host = referer.host_str().unwrap_or("");
        let fapi = self.options.original_frontend_api();
        if host == fapi {
            return true;
        }
        let accounts = format!("accounts.{}", fapi.strip_prefix("clerk.").unwrap_or(&fapi));
        if host == accounts {
            return true;
        }
        self.options.is_dev()
            && ([
                ".accounts.dev",
                ".accountsstage.dev",
                ".accounts.lclclerk.com",
            ]
            .iter()
            .any(|suffix| host.ends_with(suffix))
                || (host.starts_with("accounts.") && host.ends_with(".lcl.dev")))
    }
}

/// What a browser back from the Frontend API's handshake carries: a nonce, a signed
/// handshake, or both, each from the query or a cookie.
struct Handshake<'a> {
    nonce: Option<Cow<'a, str>>,
    token: Option<Cow<'a, str>>,
}

impl<'a> Handshake<'a> {
    fn of(ctx: &'a RequestContext<'_>) -> Option<Self> {
        let nonce = ctx
            .query("__clerk_handshake_nonce")
            .or_else(|| ctx.cookies.handshake_nonce.clone());
        let token = ctx
            .query("__clerk_handshake")
            .or_else(|| ctx.cookies.handshake.clone());
        (nonce.is_some() || token.is_some()).then_some(Self { nonce, token })
    }
}

/// The active organization differs from what the URL asks for (spec §6).
fn is_org_mismatch(auth: &SessionAuth, target: &OrgTarget) -> bool {
    match target {
        OrgTarget::OrganizationId(id) => auth.org_id.as_deref() != Some(id.as_str()),
        OrgTarget::OrganizationSlug(slug) => auth.org_slug.as_deref() != Some(slug.as_str()),
        OrgTarget::PersonalAccount => auth.org_id.is_some(),
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod flow_tests;
