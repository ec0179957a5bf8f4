//! The Backend API client (reqwest): handshake payloads and session refresh, bounded in
//! time and size, with errors classified as Clerk's SDK classifies them.

use std::time::Duration;

use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue, USER_AGENT};
use url::Url;

use crate::config::Secret;
use crate::domain::authenticate::SUPPORTED_BAPI_VERSION;
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
        let mut headers = HeaderMap::new();
        if let Ok(mut value) = HeaderValue::from_str(&format!("Bearer {}", secret.expose())) {
            value.set_sensitive(true);
            headers.insert(AUTHORIZATION, value);
        }
        headers.insert(
            "Clerk-API-Version",
            HeaderValue::from_static(SUPPORTED_BAPI_VERSION),
        );
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
        Ok(Self {
            client,
            base: format!(
                "{}/{}",
                api_url.as_str().trim_end_matches('/'),
                api_version.trim_matches('/')
            ),
        })
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Result<(u16, Vec<u8>), &'static str> {
        let mut response = request.send().await.map_err(|e| transport(&e))?;
        let status = response.status().as_u16();
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| transport(&e))? {
            if body.len() + chunk.len() > MAX_BODY_BYTES {
                return Err("the answer is too large");
            }
            body.extend_from_slice(&chunk);
        }
        Ok((status, body))
    }
}

fn transport(error: &reqwest::Error) -> &'static str {
    if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "connection failed"
    } else {
        "request failed"
    }
}

/// The first error `code` of a Backend API error body.
fn error_code(body: &[u8]) -> Option<String> {
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
        let (status, body) = self.send(request).await.map_err(BackendError::Transport)?;
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
        let (status, body) = self
            .send(call)
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
