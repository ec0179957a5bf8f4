//! The HTTP client for Clerk's APIs: one configuration (timeouts, no redirects, Clerk's
//! headers, the secret marked sensitive), size-bounded reads, and Clerk's error bodies.

use std::time::Duration;

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue, USER_AGENT};

use crate::config::Secret;
use crate::domain::authenticate::SUPPORTED_BAPI_VERSION;

/// A client for one Clerk API. With a secret it authenticates as the Backend API expects.
pub fn client(
    secret: Option<&Secret>,
    timeout: Duration,
) -> Result<reqwest::Client, reqwest::Error> {
    let mut headers = HeaderMap::new();
    if let Some(secret) = secret
        && let Ok(mut value) = HeaderValue::from_str(&format!("Bearer {}", secret.expose()))
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
    reqwest::Client::builder()
        .default_headers(headers)
        .connect_timeout(timeout)
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
}

/// Why a call produced no answer to look at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallError {
    /// A secret-free description of the transport failure.
    Transport(&'static str),
    TooLarge,
}

/// Sends `request` and reads at most `max_bytes` of the answer.
pub async fn send(
    request: reqwest::RequestBuilder,
    max_bytes: usize,
) -> Result<(u16, Vec<u8>), CallError> {
    let transport = |e: reqwest::Error| {
        CallError::Transport(if e.is_timeout() {
            "timed out"
        } else if e.is_connect() {
            "connection failed"
        } else if e.is_body() || e.is_decode() {
            "the response body could not be read"
        } else {
            "request failed"
        })
    };
    let mut response = request.send().await.map_err(transport)?;
    let status = response.status().as_u16();
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(transport)? {
        if body.len() + chunk.len() > max_bytes {
            return Err(CallError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok((status, body))
}

/// The first error `code` of a Backend API error body (`{"errors":[{"code":…}]}`).
pub fn error_code(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<ApiError>,
    }
    #[derive(serde::Deserialize)]
    struct ApiError {
        code: String,
    }
    serde_json::from_slice::<Errors>(body)
        .ok()
        .and_then(|e| e.errors.into_iter().next())
        .map(|e| e.code)
}
