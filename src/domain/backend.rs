//! The Backend API calls Clerk's request authentication makes (handshake payloads and
//! session refresh), as a port the HTTP adapter implements.

use std::future::Future;

use super::reason::RefreshError;

/// Why a handshake payload could not be had. Clerk logs it and carries on with no cookies.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    #[error("no secret key is configured, so the Backend API cannot be called")]
    NoApiClient,
    #[error("the Backend API answered {status}{}", code.as_ref().map(|c| format!(" ({c})")).unwrap_or_default())]
    Status { status: u16, code: Option<String> },
    #[error("the Backend API could not be reached: {0}")]
    Transport(&'static str),
    #[error("the Backend API answered something unexpected")]
    Malformed,
}

/// The body of `POST /v1/sessions/{sid}/refresh` (spec §2.5).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct RefreshRequest {
    #[serde(skip)]
    pub suffixed_cookies: bool,
    pub format: &'static str,
    pub expired_token: String,
    pub refresh_token: String,
    pub request_origin: String,
    pub request_headers: std::collections::BTreeMap<String, Vec<String>>,
}

pub trait ClerkBackend: Send + Sync {
    /// `GET /v1/clients/handshake_payload?nonce=…`: the `Set-Cookie` directives.
    fn handshake_payload(
        &self,
        nonce: &str,
    ) -> impl Future<Output = Result<Vec<String>, BackendError>> + Send;

    /// `POST /v1/sessions/{sid}/refresh`: the new `Set-Cookie` directives, or Clerk's refresh
    /// error code.
    fn refresh_session(
        &self,
        sid: &str,
        request: &RefreshRequest,
    ) -> impl Future<Output = Result<Vec<String>, RefreshError>> + Send;
}

/// No secret key: every call fails as Clerk's SDK fails without an API client.
pub struct NoBackend;

impl ClerkBackend for NoBackend {
    async fn handshake_payload(&self, _nonce: &str) -> Result<Vec<String>, BackendError> {
        Err(BackendError::NoApiClient)
    }

    async fn refresh_session(
        &self,
        _sid: &str,
        _request: &RefreshRequest,
    ) -> Result<Vec<String>, RefreshError> {
        Err(RefreshError::MissingApiClient)
    }
}
