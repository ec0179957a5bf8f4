//! Fetches a JWKS document with reqwest: bounded in time and size, Clerk's headers, and
//! errors classified as Clerk classifies them.

use std::time::Duration;

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue, USER_AGENT};
use url::Url;

use crate::config::Secret;
use crate::domain::authenticate::SUPPORTED_BAPI_VERSION;
use crate::domain::jwt::{CONTACT_SUPPORT, TokenError, TokenErrorReason};
use crate::domain::keys::{JwksError, KeySet};
use crate::metrics::FetchOutcome;

/// A JWKS larger than this is refused: Clerk's holds a handful of keys.
const MAX_BODY_BYTES: usize = 256 * 1024;

pub struct Fetcher {
    client: reqwest::Client,
    url: Url,
}

/// A failed fetch: Clerk's error for the request path, and our bounded label for metrics.
#[derive(Clone, Debug)]
pub struct FetchError {
    pub error: TokenError,
    pub outcome: FetchOutcome,
}

impl Fetcher {
    pub fn new(
        url: Url,
        secret_key: Option<&Secret>,
        timeout: Duration,
    ) -> Result<Self, reqwest::Error> {
        let mut headers = HeaderMap::new();
        if let Some(sk) = secret_key
            && let Ok(mut value) = HeaderValue::from_str(&format!("Bearer {}", sk.expose()))
        {
            value.set_sensitive(true);
            headers.insert(AUTHORIZATION, value);
            headers.insert(
                "Clerk-API-Version",
                HeaderValue::from_static(SUPPORTED_BAPI_VERSION),
            );
        }
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(
            USER_AGENT,
            HeaderValue::from_static(concat!("clerk-forward-auth/", env!("CARGO_PKG_VERSION"))),
        );
        let client = reqwest::Client::builder()
            .default_headers(headers)
            .connect_timeout(timeout)
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self { client, url })
    }

    pub fn url(&self) -> &Url {
        &self.url
    }

    /// One fetch. Bad entries inside a good document are dropped, not fatal.
    pub async fn fetch(&self) -> Result<KeySet, FetchError> {
        let failed = |outcome, message: String| FetchError {
            error: TokenError {
                reason: TokenErrorReason::RemoteJwkFailedToLoad,
                message,
                action: Some(CONTACT_SUPPORT),
            },
            outcome,
        };
        let mut response = self
            .client
            .get(self.url.clone())
            .send()
            .await
            .map_err(|e| {
                failed(
                    FetchOutcome::NetworkError,
                    format!(
                        "Error loading Clerk JWKS from {}: {}",
                        self.url,
                        error_kind(&e)
                    ),
                )
            })?;
        let status = response.status();
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| {
            failed(
                FetchOutcome::NetworkError,
                format!(
                    "Error loading Clerk JWKS from {}: {}",
                    self.url,
                    error_kind(&e)
                ),
            )
        })? {
            if body.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(failed(
                    FetchOutcome::Invalid,
                    format!(
                        "The JWKS at {} is larger than {MAX_BODY_BYTES} bytes.",
                        self.url
                    ),
                ));
            }
            body.extend_from_slice(&chunk);
        }
        if !status.is_success() {
            if is_invalid_secret_key(&body) {
                return Err(FetchError {
                    error: TokenError {
                        reason: TokenErrorReason::InvalidSecretKey,
                        message: "The provided Clerk Secret Key is invalid. Make sure that your \
                                  Clerk Secret Key is correct."
                            .into(),
                        action: Some(CONTACT_SUPPORT),
                    },
                    outcome: FetchOutcome::SecretKeyInvalid,
                });
            }
            return Err(failed(
                FetchOutcome::HttpError,
                format!(
                    "Error loading Clerk JWKS from {} with code={}",
                    self.url,
                    status.as_u16()
                ),
            ));
        }
        match KeySet::from_jwks(&body) {
            Ok((keys, skipped)) => {
                for problem in skipped {
                    tracing::warn!(url = %self.url, %problem, "skipped an unusable JWKS entry");
                }
                Ok(keys)
            }
            Err(JwksError::Empty) => Err(failed(
                FetchOutcome::Invalid,
                "The JWKS endpoint did not contain any signing keys. Contact support@clerk.com."
                    .into(),
            )),
            Err(JwksError::Malformed) => Err(failed(
                FetchOutcome::Invalid,
                format!("The JWKS at {} is not a JSON Web Key Set.", self.url),
            )),
        }
    }
}

/// Clerk answers a bad secret key with an error whose code is `clerk_key_invalid`.
fn is_invalid_secret_key(body: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<ApiError>,
    }
    #[derive(serde::Deserialize)]
    struct ApiError {
        code: String,
    }
    serde_json::from_slice::<Errors>(body)
        .is_ok_and(|e| e.errors.iter().any(|e| e.code == "clerk_key_invalid"))
}

/// A short, secret-free description of a transport error.
fn error_kind(error: &reqwest::Error) -> &'static str {
    if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "connection failed"
    } else if error.is_body() || error.is_decode() {
        "the response body could not be read"
    } else {
        "request failed"
    }
}
