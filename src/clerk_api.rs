//! The Backend API client (reqwest): handshake payloads and session refresh, bounded in
//! time and size, with errors classified as Clerk's SDK classifies them.

use std::time::Duration;

use url::Url;

use crate::clerk_http::{self, CallError, error_code};
use crate::config::Secret;
use crate::domain::backend::{BackendError, ClerkBackend, RefreshRequest};
use crate::domain::reason::RefreshError;

/// Answers larger than this are refused: directives are a handful of cookies.
const MAX_BODY_BYTES: usize = 64 * 1024;

pub struct BackendApi {
    client: reqwest::Client,
    /// `{api_url}/{api_version}`, without a trailing slash.
    base: String,
}

impl BackendApi {
    pub fn new(
        api_url: &Url,
        api_version: &str,
        secret: &Secret,
        timeout: Duration,
    ) -> Result<Self, reqwest::Error> {
        Ok(Self {
            client: clerk_http::client(Some(secret), timeout)?,
            base: format!(
                "{}/{}",
                api_url.as_str().trim_end_matches('/'),
                api_version.trim_matches('/')
            ),
        })
    }
}

/// Cookies come back as a JSON array of Set-Cookie strings, or an object carrying one.
fn cookie_list(body: &[u8], field: &str) -> Option<Vec<String>> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let list = match &value {
        serde_json::Value::Array(_) => &value,
        serde_json::Value::Object(map) => map.get(field)?,
        _ => return None,
    };
    list.as_array()?
        .iter()
        .map(|v| v.as_str().map(str::to_owned))
        .collect()
}

impl ClerkBackend for BackendApi {
    async fn handshake_payload(&self, nonce: &str) -> Result<Vec<String>, BackendError> {
        let nonce: String = url::form_urlencoded::byte_serialize(nonce.as_bytes()).collect();
        let url = format!("{}/clients/handshake_payload?nonce={nonce}", self.base);
        let request = self.client.get(url);
        let (status, body) =
            clerk_http::send(request, MAX_BODY_BYTES)
                .await
                .map_err(|e| match e {
                    CallError::Transport(kind) => BackendError::Transport(kind),
                    CallError::TooLarge => BackendError::Malformed,
                })?;
        if !(200..300).contains(&status) {
            return Err(BackendError::Status {
                status,
                code: error_code(&body),
            });
        }
        cookie_list(&body, "directives").ok_or(BackendError::Malformed)
    }

    async fn refresh_session(
        &self,
        sid: &str,
        request: &RefreshRequest,
    ) -> Result<Vec<String>, RefreshError> {
        let sid: String = url::form_urlencoded::byte_serialize(sid.as_bytes()).collect();
        let suffixed = if request.suffixed_cookies {
            "true"
        } else {
            "false"
        };
        let url = format!(
            "{}/sessions/{sid}/refresh?suffixed_cookies={suffixed}",
            self.base
        );
        let call = self.client.post(url).json(request);
        let (status, body) = clerk_http::send(call, MAX_BODY_BYTES)
            .await
            .map_err(|_| RefreshError::UnexpectedBapiError)?;
        if (200..300).contains(&status) {
            return cookie_list(&body, "cookies").ok_or(RefreshError::UnexpectedBapiError);
        }
        Err(match error_code(&body) {
            Some(code) if code == "unexpected_error" => RefreshError::FetchError,
            Some(code) => RefreshError::Bapi(code),
            None => RefreshError::UnexpectedBapiError,
        })
    }
}
