//! Clerk's `authenticateRequest` (spec §2): the header path, the cookie path and
//! `handleMaybeHandshake`, producing Clerk's request state.

use std::borrow::Cow;

use serde_json::{Map, Value};
use url::Url;

use super::auth::SessionAuth;
use super::cookies::ClerkCookies;
use super::instance::{InstanceType, PublishableKey};
use super::jwt::{self, Jwt, TokenCarrier, TokenError, TokenErrorReason, VerifyOptions};
use super::keys::KeySource;
use super::reason::{Reason, RefreshError};
use super::request::{AuthRequestLine, ForwardedHeaders, Headers, OriginalRequest};

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
}

/// Everything Clerk reads from a request, borrowed from the auth request's headers.
#[derive(Clone, Debug)]
pub struct RequestContext<'a> {
    pub request: OriginalRequest<'a>,
    pub authorization: Option<&'a str>,
    pub cookies: ClerkCookies<'a>,
    pub sec_fetch_dest: Option<&'a str>,
    pub accept: Option<&'a str>,
    pub referer: Option<&'a str>,
    pub origin: Option<&'a str>,
}

impl<'a> RequestContext<'a> {
    pub fn from_headers<H: Headers>(
        headers: &'a H,
        mode: ForwardedHeaders,
        line: AuthRequestLine<'a>,
        cookie_suffix: &str,
    ) -> Self {
        Self {
            request: OriginalRequest::from_headers(mode, headers, line),
            authorization: headers.get("authorization"),
            cookies: ClerkCookies::parse(headers, cookie_suffix),
            sec_fetch_dest: headers.get("sec-fetch-dest"),
            accept: headers.get("accept"),
            referer: headers.get("referer"),
            origin: headers.get("origin"),
        }
    }

    /// The bearer token, with Clerk's parsing: split on spaces into at most two parts; a
    /// single part is the token, `Bearer` (case-sensitive) takes the second, any other
    /// scheme means no header token.
    pub fn header_token(&self) -> Option<&'a str> {
        let value = self.authorization.filter(|v| !v.is_empty())?;
        let mut parts = value.split(' ');
        let scheme = parts.next().unwrap_or("");
        match parts.next() {
            None | Some("") => Some(scheme),
            Some(token) if scheme == "Bearer" => Some(token),
            Some(_) => None,
        }
    }

    /// `isRequestEligibleForHandshake` (spec §2.6): a GET page load.
    pub fn is_doc_eligible(&self) -> bool {
        self.request.method == "GET"
            && match self.sec_fetch_dest {
                Some(dest) => dest == "document" || dest == "iframe",
                None => self.accept.is_some_and(|a| a.starts_with("text/html")),
            }
    }
}

/// Clerk's request state (spec §2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RequestState {
    SignedIn {
        auth: SessionAuth,
        carrier: TokenCarrier,
        /// Cookies to hand the browser (handshake resolution, refresh).
        set_cookies: Vec<String>,
    },
    SignedOut {
        reason: Reason,
        message: String,
        /// Whether a token was presented at all (for `WWW-Authenticate`).
        token_presented: bool,
        set_cookies: Vec<String>,
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
        }
    }

    pub fn reason(&self) -> Option<&Reason> {
        match self {
            Self::SignedIn { .. } => None,
            Self::SignedOut { reason, .. } | Self::Handshake { reason, .. } => Some(reason),
        }
    }
}

/// Runs Clerk's request authentication for one request.
pub struct Authenticator<'o, K> {
    pub options: &'o ClerkOptions,
    pub keys: &'o K,
}

impl<K: KeySource> Authenticator<'_, K> {
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
        if jwt::is_opaque_machine_token(token) {
            return RequestState::signed_out(Reason::TokenTypeMismatch, "", true);
        }
        let decoded = match Jwt::decode(token) {
            Ok(decoded) if decoded.is_machine_or_non_session() => {
                return RequestState::signed_out(Reason::TokenTypeMismatch, "", true);
            }
            Ok(decoded) => decoded,
            Err(error) => return self.token_error(ctx, error, TokenCarrier::Header, now_ms),
        };
        match jwt::verify_jwt(&decoded, self.keys, &self.options.verify, now_ms).await {
            Ok(()) => signed_in(decoded.payload(), TokenCarrier::Header),
            Err(error) => self.token_error(ctx, error, TokenCarrier::Header, now_ms),
        }
    }

    /// Spec §2.3, the cookie path.
    async fn cookie_path(&self, ctx: &RequestContext<'_>, now_ms: i64) -> RequestState {
        let cookies = CookieChoice::new(self.options, ctx, now_ms);
        let dev = self.options.instance_type() == InstanceType::Development;

        if dev && query_param(ctx, "__clerk_db_jwt").is_some() {
            return self.maybe_handshake(ctx, &cookies, Reason::DevBrowserSync, String::new());
        }
        if dev && cookies.dev_browser.is_none() {
            return self.maybe_handshake(ctx, &cookies, Reason::DevBrowserMissing, String::new());
        }
        let has_client = cookies.client_uat != 0;
        let Some(session) = cookies.session.as_deref() else {
            return if has_client {
                self.maybe_handshake(
                    ctx,
                    &cookies,
                    Reason::ClientUatWithoutSessionToken,
                    String::new(),
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
            );
        }
        let decoded = match Jwt::decode(session) {
            Ok(decoded) => decoded,
            Err(error) => return self.token_error_with(ctx, &cookies, error, TokenCarrier::Cookie),
        };
        if decoded.is_machine_or_non_session() {
            return RequestState::signed_out(Reason::TokenTypeMismatch, "", true);
        }
        #[allow(clippy::cast_precision_loss)]
        if number(decoded.payload().get("iat")).is_some_and(|iat| iat < cookies.client_uat as f64) {
            return self.maybe_handshake(
                ctx,
                &cookies,
                Reason::SessionTokenIatBeforeClientUat,
                String::new(),
            );
        }
        match jwt::verify_jwt(&decoded, self.keys, &self.options.verify, now_ms).await {
            Ok(()) => signed_in(decoded.payload(), TokenCarrier::Cookie),
            Err(error) => self.token_error_with(ctx, &cookies, error, TokenCarrier::Cookie),
        }
    }

    fn token_error(
        &self,
        ctx: &RequestContext<'_>,
        error: TokenError,
        carrier: TokenCarrier,
        now_ms: i64,
    ) -> RequestState {
        let cookies = CookieChoice::new(self.options, ctx, now_ms);
        self.token_error_with(ctx, &cookies, error, carrier)
    }

    /// `handleSessionTokenError` (spec §2.4).
    fn token_error_with(
        &self,
        ctx: &RequestContext<'_>,
        cookies: &CookieChoice<'_>,
        error: TokenError,
        carrier: TokenCarrier,
    ) -> RequestState {
        let message = error.full_message(carrier);
        let refresh = if ctx.request.method != "GET" {
            RefreshError::NonEligibleNonGet
        } else if ctx.cookies.refresh_suffixed.is_none() {
            RefreshError::NonEligibleNoRefreshCookie
        } else {
            // Server-side refresh needs the Backend API, which this service does not call
            // on the request path; Clerk reports the same code without an API client.
            RefreshError::MissingApiClient
        };
        let reason = match error.reason {
            TokenErrorReason::TokenExpired => Reason::SessionTokenExpiredRefresh(refresh),
            TokenErrorReason::TokenNotActiveYet => Reason::SessionTokenNbf,
            TokenErrorReason::TokenIatInTheFuture => Reason::SessionTokenIatInTheFuture,
            other => return RequestState::signed_out(Reason::Token(other), message, true),
        };
        self.maybe_handshake(ctx, cookies, reason, message)
    }

    /// `handleMaybeHandshakeStatus` (spec §2.6).
    fn maybe_handshake(
        &self,
        ctx: &RequestContext<'_>,
        cookies: &CookieChoice<'_>,
        reason: Reason,
        message: String,
    ) -> RequestState {
        let token_presented = cookies.session.is_some() || ctx.header_token().is_some();
        if !ctx.is_doc_eligible() {
            return RequestState::signed_out(reason, message, token_presented);
        }
        let Some(location) = self.handshake_url(ctx, cookies, &reason) else {
            return RequestState::signed_out(reason, message, token_presented);
        };
        let count = redirect_count(ctx.cookies.redirect_count.as_deref());
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

    /// The handshake `Location` (spec §2.7).
    fn handshake_url(
        &self,
        ctx: &RequestContext<'_>,
        cookies: &CookieChoice<'_>,
        reason: &Reason,
    ) -> Option<String> {
        let clerk_url = public_url(&ctx.request)?;
        let mut redirect = clerk_url.clone();
        remove_query_params(&mut redirect, &["__clerk_db_jwt", "__dev_session"]);
        let base = self.frontend_api_base(&clerk_url);
        let mut url = Url::parse(&format!("https://{base}/v1/client/handshake")).ok()?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("redirect_url", redirect.as_str());
            q.append_pair("__clerk_api_version", SUPPORTED_BAPI_VERSION);
            q.append_pair(
                "suffixed_cookies",
                if cookies.suffixed { "true" } else { "false" },
            );
            q.append_pair("__clerk_hs_reason", &reason.as_str());
            q.append_pair("format", "nonce");
            if let Some(token) = cookies.session.as_deref().or(ctx.header_token()) {
                q.append_pair("__session", token);
            }
            if self.options.instance_type() == InstanceType::Development
                && let Some(db) = cookies.dev_browser.as_deref()
            {
                q.append_pair("__clerk_db_jwt", db);
            }
        }
        Some(url.into())
    }

    /// The frontend API host (and path, for a proxy URL) without its scheme.
    fn frontend_api_base(&self, clerk_url: &Url) -> String {
        let base = match &self.options.proxy_url {
            Some(proxy) => match Url::parse(proxy) {
                Ok(absolute) => absolute.to_string(),
                Err(_) => clerk_url.join(proxy).map(String::from).unwrap_or_default(),
            },
            None => self.options.original_frontend_api().into_owned(),
        };
        let without_scheme = base
            .strip_prefix("https://")
            .or_else(|| base.strip_prefix("http://"))
            .unwrap_or(&base);
        without_scheme.trim_end_matches('/').to_owned()
    }
}

fn signed_in(claims: &Map<String, Value>, carrier: TokenCarrier) -> RequestState {
    RequestState::SignedIn {
        auth: SessionAuth::from_claims(claims),
        carrier,
        set_cookies: Vec::new(),
    }
}

/// The cookie values Clerk settles on after choosing suffixed or unsuffixed names.
struct CookieChoice<'c> {
    suffixed: bool,
    session: Option<Cow<'c, str>>,
    client_uat: i64,
    dev_browser: Option<Cow<'c, str>>,
}

impl<'c> CookieChoice<'c> {
    fn new(options: &ClerkOptions, ctx: &'c RequestContext<'_>, now_ms: i64) -> Self {
        let c = &ctx.cookies;
        let suffixed = uses_suffixed_cookies(options, c, now_ms);
        let pick = |plain: &'c Option<Cow<'c, str>>, sfx: &'c Option<Cow<'c, str>>| {
            if suffixed { sfx } else { plain }
                .as_ref()
                .map(|v| Cow::Borrowed(&**v))
        };
        let session = pick(&c.session, &c.session_suffixed).filter(|s| !s.is_empty());
        let client_uat = pick(&c.client_uat, &c.client_uat_suffixed)
            .and_then(|v| parse_int(&v))
            .unwrap_or(0);
        let dev_browser = query_param(ctx, "__clerk_db_jwt")
            .or_else(|| pick(&c.dev_browser, &c.dev_browser_suffixed))
            .filter(|v| !v.is_empty());
        Self {
            suffixed,
            session,
            client_uat,
            dev_browser,
        }
    }
}

/// `usesSuffixedCookies` (spec §1.4), rule by rule.
fn uses_suffixed_cookies(options: &ClerkOptions, c: &ClerkCookies<'_>, now_ms: i64) -> bool {
    let session = c.session.as_deref().filter(|s| !s.is_empty());
    let suffixed_session = c.session_suffixed.as_deref().filter(|s| !s.is_empty());
    let uat = c.client_uat.as_deref();
    let suffixed_uat = c.client_uat_suffixed.as_deref();
    let decoded_session = session.map(Jwt::decode);
    if let Some(decoded) = &decoded_session {
        // Rule 1: a session cookie without an issuer is malformed: stay unsuffixed so the
        // request ends signed out instead of in a handshake.
        let issuer = decoded
            .as_ref()
            .ok()
            .and_then(|jwt| jwt.payload().get("iss"));
        let Some(issuer) = issuer.filter(|iss| truthy(iss)) else {
            return false;
        };
        // Rule 2: it belongs to another Clerk app on this domain.
        let belongs = issuer
            .as_str()
            .is_some_and(|iss| strip_http_schemes(iss) == options.original_frontend_api().as_ref());
        if !belongs {
            return true;
        }
    }
    // Rule 3.
    if suffixed_uat.filter(|v| !v.is_empty()).is_none() && suffixed_session.is_none() {
        return false;
    }
    let iat_of = |decoded: Option<&Result<Jwt<'_>, TokenError>>| {
        decoded
            .and_then(|d| d.as_ref().ok())
            .and_then(|jwt| number(jwt.payload().get("iat")))
            .unwrap_or(0.0)
    };
    let decoded_suffixed = suffixed_session.map(Jwt::decode);
    // Rule 4.
    if suffixed_uat != Some("0")
        && uat != Some("0")
        && iat_of(decoded_session.as_ref()) > iat_of(decoded_suffixed.as_ref())
    {
        return false;
    }
    // Rule 5.
    if suffixed_uat == Some("0") && uat != Some("0") {
        return false;
    }
    // Rule 6.
    if options.instance_type() != InstanceType::Production {
        #[allow(clippy::cast_precision_loss)]
        let now_s = (now_ms / 1000) as f64;
        let expired = decoded_suffixed
            .as_ref()
            .and_then(|d| d.as_ref().ok())
            .is_some_and(|jwt| number(jwt.payload().get("exp")).is_some_and(|exp| exp <= now_s));
        if suffixed_uat != Some("0") && uat == Some("0") && expired {
            return false;
        }
    }
    // Rule 7.
    if suffixed_uat.filter(|v| !v.is_empty()).is_none() && suffixed_session.is_some() {
        return false;
    }
    true
}

fn strip_http_schemes(iss: &str) -> String {
    let mut out = iss.to_owned();
    for scheme in ["https://", "http://"] {
        while let Some(pos) = out.to_ascii_lowercase().find(scheme) {
            out.replace_range(pos..pos + scheme.len(), "");
        }
    }
    out
}

fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}

fn number(value: Option<&Value>) -> Option<f64> {
    value.and_then(Value::as_f64)
}

/// `Number.parseInt(s, 10)`: optional whitespace and sign, then leading digits.
fn parse_int(s: &str) -> Option<i64> {
    let s = s.trim_start();
    let (sign, rest) = match s.strip_prefix('-') {
        Some(rest) => (-1, rest),
        None => (1, s.strip_prefix('+').unwrap_or(s)),
    };
    let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    rest[..digits].parse::<i64>().ok().map(|n| sign * n)
}

/// `Number(cookie) || 0` for the redirect counter.
fn redirect_count(value: Option<&str>) -> f64 {
    value
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|n| n.is_finite())
        .unwrap_or(0.0)
}

/// Formats a number as JavaScript's `String(n)` does for the values we produce.
fn js_number(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        #[allow(clippy::cast_possible_truncation)]
        let int = n as i64;
        int.to_string()
    } else {
        n.to_string()
    }
}

/// A query parameter of the original request (first occurrence, decoded).
fn query_param<'r>(ctx: &'r RequestContext<'_>, name: &str) -> Option<Cow<'r, str>> {
    let query = ctx.request.query()?;
    form_urlencoded_pairs(query)
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

fn form_urlencoded_pairs(query: &str) -> impl Iterator<Item = (Cow<'_, str>, Cow<'_, str>)> {
    url::form_urlencoded::parse(query.as_bytes())
}

/// `clerkUrl` (spec §1.2): the original request's public URL, with default ports dropped.
pub fn public_url(request: &OriginalRequest<'_>) -> Option<Url> {
    if request.host.is_empty() {
        return None;
    }
    let path = if request.path_and_query.starts_with('/') {
        Cow::Borrowed(request.path_and_query)
    } else {
        Cow::Owned(format!("/{}", request.path_and_query))
    };
    let url = Url::parse(&format!("{}://{}{}", request.scheme, request.host, path)).ok()?;
    // Only a plain origin may stand in the host: userinfo or a path smuggled into a
    // forwarded host would change where redirects point.
    (url.username().is_empty() && url.password().is_none() && url.host().is_some()).then_some(url)
}

/// `URLSearchParams.delete` for each name; like WHATWG, the query is re-serialised (and
/// dropped when empty) even if nothing was removed.
fn remove_query_params(url: &mut Url, names: &[&str]) {
    if url.query().is_none() {
        return;
    }
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| !names.contains(&k.as_ref()))
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    if kept.is_empty() {
        url.set_query(None);
    } else {
        url.query_pairs_mut().clear().extend_pairs(kept);
    }
}

#[cfg(test)]
mod tests;
