//! Fetches a JWKS document with reqwest: bounded in time and size, Clerk's headers, and
//! errors classified as Clerk classifies them.

use std::time::Duration;

use url::Url;

use crate::clerk_http::{self, CallError};
use crate::config::Secret;
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
        Ok(Self {
            client: clerk_http::client(secret_key, timeout)?,
            url,
        })
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
        let (status, body) =
            match clerk_http::send(self.client.get(self.url.clone()), MAX_BODY_BYTES).await {
                Ok(answer) => answer,
                Err(CallError::Transport(kind)) => {
                    return Err(failed(
                        FetchOutcome::NetworkError,
                        format!("Error loading Clerk JWKS from {}: {kind}", self.url),
                    ));
                }
                Err(CallError::TooLarge) => {
                    return Err(failed(
                        FetchOutcome::Invalid,
                        format!(
                            "The JWKS at {} is larger than {MAX_BODY_BYTES} bytes.",
                            self.url
                        ),
                    ));
                }
            };
        if !(200..300).contains(&status) {
            if clerk_http::error_code(&body).as_deref() == Some("clerk_key_invalid") {
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
                    self.url, status
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
