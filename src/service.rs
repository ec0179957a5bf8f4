//! The decision service: the configured instance and its key source, turning one auth
//! request into a `Decision`. Adapters call it; it holds no per-request state.

use std::sync::Arc;

use crate::clerk_api::BackendApi;
use crate::config::{KeySettings, Settings};
use crate::domain::authenticate::{
    Authenticator, ClerkOptions, Observer, Quiet, RequestContext, Resolution,
};
use crate::domain::backend::{BackendError, ClerkBackend, NoBackend, RefreshRequest};
use crate::domain::decision::{Decision, Forbidden};
use crate::domain::has::HasParams;
use crate::domain::jwt::TokenError;
use crate::domain::keys::{KeySource, StaticKey, VerifyingKey};
use crate::domain::reason::RefreshError;
use crate::domain::request::{AuthRequestLine, ForwardedHeaders, HeaderPairs, Headers};
use crate::domain::rules::{Action, Matched, Policy};
use crate::domain::time::now_ms;
use crate::domain::verified::{NoCache, TokenCache};
use crate::jwks::JwksSource;
use crate::jwks::fetch::Fetcher;
use crate::metrics::Metrics;
use crate::token_cache::VerifiedTokens;

/// The configured key source.
pub enum Keys {
    Static(StaticKey),
    Jwks(Arc<JwksSource>),
}

impl KeySource for Keys {
    async fn key(&self, kid: Option<&str>) -> Result<Arc<VerifyingKey>, TokenError> {
        match self {
            Self::Static(key) => key.key(kid).await,
            Self::Jwks(jwks) => jwks.key(kid).await,
        }
    }

    fn is_current(&self, kid: Option<&str>, key: &Arc<VerifyingKey>) -> bool {
        match self {
            Self::Static(source) => source.is_current(kid, key),
            Self::Jwks(jwks) => jwks.is_current(kid, key),
        }
    }
}

impl Keys {
    pub fn is_ready(&self) -> bool {
        match self {
            Self::Static(_) => true,
            Self::Jwks(jwks) => jwks.is_ready(),
        }
    }
}

/// The Backend API, when a secret key is configured.
pub enum Backend {
    Api(BackendApi),
    None(NoBackend),
}

impl ClerkBackend for Backend {
    async fn handshake_payload(&self, nonce: &str) -> Result<Vec<String>, BackendError> {
        match self {
            Self::Api(api) => api.handshake_payload(nonce).await,
            Self::None(none) => none.handshake_payload(nonce).await,
        }
    }

    async fn refresh_session(
        &self,
        sid: &str,
        request: &RefreshRequest,
    ) -> Result<Vec<String>, RefreshError> {
        match self {
            Self::Api(api) => api.refresh_session(sid, request).await,
            Self::None(none) => none.refresh_session(sid, request).await,
        }
    }
}

/// Counts the side events of authentication.
struct MetricsObserver(Arc<Metrics>);

impl Observer for MetricsObserver {
    fn handshake_resolution(&self, outcome: Resolution) {
        let label = match outcome {
            Resolution::SignedIn => "signed_in",
            Resolution::NoSession => "no_session",
            Resolution::Failed => "failed",
            Resolution::Loop => "loop",
        };
        self.0
            .handshake_resolutions
            .with_label_values(&[label])
            .inc();
    }

    fn refresh(&self, ok: bool) {
        let label = if ok { "refreshed" } else { "failed" };
        self.0.refreshes.with_label_values(&[label]).inc();
    }
}

pub struct Service {
    /// Where the keys came from, to keep a JWKS cache across reloads that do not change it.
    key_settings: KeySettings,
    /// Verified tokens. Kept across reloads: a hit needs the very key that verified it and
    /// passes the current claim checks, so nothing a reload changes can be bypassed.
    pub tokens: Arc<dyn TokenCache>,
    max_tokens: u64,
    pub options: ClerkOptions,
    pub keys: Keys,
    pub backend: Backend,
    observer: MetricsObserver,
    pub forwarded_headers: ForwardedHeaders,
    pub policy: Policy,
}

impl Service {
    /// Builds the service from settings. A new JWKS source starts empty and its refresh
    /// loop is spawned (so this runs inside a Tokio runtime); `previous`'s source is kept
    /// when the JWKS location and secret are unchanged, cache and all.
    pub fn new(
        settings: &Settings,
        metrics: &Arc<Metrics>,
        previous: Option<&Service>,
    ) -> Result<Self, reqwest::Error> {
        let reusable = previous.and_then(|p| match (&p.keys, &p.key_settings, &settings.keys) {
            (
                Keys::Jwks(source),
                KeySettings::Jwks {
                    url: a,
                    secret_key: sa,
                },
                KeySettings::Jwks {
                    url: b,
                    secret_key: sb,
                },
            ) if a == b && sa == sb => Some(source.clone()),
            _ => None,
        });
        let keys = match (&settings.keys, reusable) {
            (KeySettings::Pem(key), _) => {
                metrics.static_keys_loaded();
                metrics.ready.set(1);
                Keys::Static(StaticKey(key.clone()))
            }
            (KeySettings::Jwks { .. }, Some(source)) => Keys::Jwks(source),
            (KeySettings::Jwks { url, secret_key }, None) => {
                let fetcher =
                    Fetcher::new(url.clone(), secret_key.as_ref(), settings.jwks.timeout)?;
                metrics.jwks_source_started();
                let source = Arc::new(JwksSource::new(fetcher, &settings.jwks, metrics.clone()));
                tokio::spawn(JwksSource::run_refresh(Arc::downgrade(&source)));
                Keys::Jwks(source)
            }
        };
        let backend = match &settings.secret_key {
            Some(secret) => Backend::Api(BackendApi::new(
                &settings.api_url,
                &settings.api_version,
                secret,
                settings.jwks.timeout,
            )?),
            None => Backend::None(NoBackend),
        };
        crate::domain::keys::allow_vector_rsa(settings.vector_rsa);
        let tokens: Arc<dyn TokenCache> = match previous {
            Some(p) if p.max_tokens == settings.max_cached_tokens => p.tokens.clone(),
            _ if settings.max_cached_tokens == 0 => Arc::new(NoCache),
            _ => {
                let cache = Arc::new(VerifiedTokens::new(settings.max_cached_tokens, metrics));
                let sized = Arc::downgrade(&cache);
                let _ = metrics
                    .cache_entries
                    .set(Box::new(move || sized.upgrade().map_or(0, |c| c.entries())));
                cache
            }
        };
        Ok(Self {
            tokens,
            max_tokens: settings.max_cached_tokens,
            key_settings: settings.keys.clone(),
            options: settings.clerk.clone(),
            keys,
            backend,
            observer: MetricsObserver(metrics.clone()),
            forwarded_headers: settings.forwarded_headers,
            policy: settings.policy.clone(),
        })
    }

    /// Decides one auth request.
    pub async fn decide<'a, H: Headers + HeaderPairs>(
        &'a self,
        headers: &'a H,
        line: AuthRequestLine<'a>,
        how: How,
    ) -> (Decision, Outcome<'a>) {
        let ctx = RequestContext::from_headers(
            headers,
            how.forwarded_headers.unwrap_or(self.forwarded_headers),
            line,
            self.options.publishable_key.cookie_suffix(),
        );
        let mut matched = self.policy.matched(
            ctx.request.method,
            ctx.request.host,
            ctx.request.path_and_query,
        );
        matched.add(how.extra);
        let decision = self
            .decide_matched(&ctx, &matched, how.no_side_effects)
            .await;
        let outcome = Outcome {
            host: ctx.request.host,
            path: ctx.request.path(),
            rule: matched.names,
            redirect_count: ctx.redirect_count(),
            public_url: if how.public_url {
                ctx.clerk_url().map(ToString::to_string)
            } else {
                None
            },
        };
        (decision, outcome)
    }

    async fn decide_matched(
        &self,
        ctx: &RequestContext<'_>,
        matched: &Matched<'_>,
        no_side_effects: bool,
    ) -> Decision {
        if matched.action == Action::Deny {
            return Decision::Forbidden(Forbidden::DeniedByRule);
        }
        if ctx.is_preflight && self.policy.allow_cors_preflight {
            return Decision::Anonymous { reason: None };
        }
        let now = now_ms();
        let state = if no_side_effects {
            // No Backend API call: a nonce is single-use, and a refresh rotates tokens, so
            // they are left to the second hop, which answers the browser itself.
            let authenticator = Authenticator {
                options: &self.options,
                keys: &self.keys,
                backend: &NoBackend,
                observer: &Quiet,
                tokens: &*self.tokens,
            };
            authenticator.authenticate(ctx, now).await
        } else {
            let authenticator = Authenticator {
                options: &self.options,
                keys: &self.keys,
                backend: &self.backend,
                observer: &self.observer,
                tokens: &*self.tokens,
            };
            authenticator.authenticate(ctx, now).await
        };
        let protected = matched.action != Action::Public;
        Decision::decide_for(state, ctx, &self.options, now, protected).authorize(matched)
    }
}

/// What the decision log line says about the original request (never the query, which can
/// carry handshake tokens).
pub struct Outcome<'a> {
    pub host: &'a str,
    pub path: &'a str,
    /// The matched rule names.
    pub rule: crate::domain::rules::RuleNames<'a>,
    /// The request's `__clerk_redirect_count`.
    pub redirect_count: f64,
    /// The original request's public URL, when asked for and it has one.
    pub public_url: Option<String>,
}

/// How to decide: requirements from the auth URL, a header family forced by the endpoint,
/// and whether Backend API calls are allowed.
#[derive(Default)]
pub struct How {
    pub extra: Vec<HasParams>,
    pub forwarded_headers: Option<ForwardedHeaders>,
    pub no_side_effects: bool,
    /// Report the public URL in the outcome (for `/answer`).
    pub public_url: bool,
}
