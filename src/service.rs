//! The decision service: the configured instance and its key source, turning one auth
//! request into a `Decision`. Adapters call it; it holds no per-request state.

use std::sync::Arc;

use crate::config::{KeySettings, Settings};
use crate::domain::authenticate::{Authenticator, ClerkOptions, RequestContext};
use crate::domain::decision::Decision;
use crate::domain::jwt::TokenError;
use crate::domain::keys::{KeySource, StaticKey, VerifyingKey};
use crate::domain::request::{AuthRequestLine, ForwardedHeaders, Headers};
use crate::domain::time::now_ms;
use crate::jwks::JwksSource;
use crate::jwks::fetch::Fetcher;
use crate::metrics::Metrics;

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
}

impl Keys {
    pub fn is_ready(&self) -> bool {
        match self {
            Self::Static(_) => true,
            Self::Jwks(jwks) => jwks.is_ready(),
        }
    }
}

pub struct Service {
    pub options: ClerkOptions,
    pub keys: Keys,
    pub forwarded_headers: ForwardedHeaders,
}

impl Service {
    /// Builds the key source from settings. A JWKS source starts empty: the caller spawns
    /// its refresh loop.
    pub fn new(settings: &Settings, metrics: &Arc<Metrics>) -> Result<Self, reqwest::Error> {
        let keys = match &settings.keys {
            KeySettings::Pem(key) => {
                metrics.static_keys_loaded();
                metrics.ready.set(1);
                Keys::Static(StaticKey(key.clone()))
            }
            KeySettings::Jwks { url, secret_key } => {
                let fetcher =
                    Fetcher::new(url.clone(), secret_key.as_ref(), settings.jwks.timeout)?;
                Keys::Jwks(Arc::new(JwksSource::new(
                    fetcher,
                    &settings.jwks,
                    metrics.clone(),
                )))
            }
        };
        Ok(Self {
            options: settings.clerk.clone(),
            keys,
            forwarded_headers: settings.forwarded_headers,
        })
    }

    /// Decides one auth request.
    pub async fn decide<H: Headers>(
        &self,
        headers: &H,
        line: AuthRequestLine<'_>,
    ) -> (Decision, Outcome) {
        let ctx = RequestContext::from_headers(
            headers,
            self.forwarded_headers,
            line,
            self.options.publishable_key.cookie_suffix(),
        );
        let authenticator = Authenticator {
            options: &self.options,
            keys: &self.keys,
        };
        let state = authenticator.authenticate(&ctx, now_ms()).await;
        let decision = Decision::from_state(state);
        let outcome = Outcome {
            host: ctx.request.host.to_owned(),
            path: ctx.request.path().to_owned(),
        };
        (decision, outcome)
    }
}

/// What the decision log line says about the original request (never the query, which can
/// carry handshake tokens).
pub struct Outcome {
    pub host: String,
    pub path: String,
}
