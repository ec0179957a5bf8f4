//! What Clerk reads from a request (`AuthenticateContext`): the rebuilt URL, the header
//! token, and the cookie values after the suffixed-or-not choice.

use std::borrow::Cow;

use serde_json::Value;
use url::Url;

use super::ClerkOptions;
use crate::domain::cookies::ClerkCookies;
use crate::domain::instance::InstanceType;
use crate::domain::jwt::{Claim, Jwt, truthy};
use crate::domain::request::{
    AuthRequestLine, ForwardedHeaders, HeaderPairs, Headers, Name, OriginalRequest,
};
use crate::domain::urls::{public_url, query_param};
use crate::domain::verified::{Known, Token, TokenCache};

/// Everything Clerk reads from a request, borrowed from the auth request's headers.
#[derive(Clone)]
pub struct RequestContext<'a> {
    pub request: OriginalRequest<'a>,
    /// The public URL (spec §1.2), built on first use: most requests never need it.
    clerk_url: std::cell::OnceCell<Option<Url>>,
    /// The token in `Authorization`, parsed once (it is read several times per request).
    header_token: Option<&'a str>,
    pub cookies: ClerkCookies<'a>,
    pub sec_fetch_dest: Option<&'a str>,
    pub accept: Option<&'a str>,
    pub referer: Option<&'a str>,
    pub origin: Option<&'a str>,
    /// A CORS preflight: OPTIONS with `Origin` and `Access-Control-Request-Method`.
    pub is_preflight: bool,
    /// Whether the original query may hold a Clerk (`__clerk_…`) parameter: it has one as
    /// written, or an escape that could spell one. Nearly every query has neither, and the
    /// cookie path asks for up to six such parameters; worked out on the first question, so
    /// a bearer request, which asks none, never pays for it.
    clerk_query: std::cell::OnceCell<bool>,
    /// All headers, for the session refresh call (Clerk forwards them).
    pub all_headers: &'a dyn HeaderPairs,
}

impl std::fmt::Debug for RequestContext<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestContext")
            .field("request", &self.request)
            .finish_non_exhaustive()
    }
}

/// The bearer token, with Clerk's parsing: split on spaces into at most two parts; a single
/// part is the token, `Bearer` (case-sensitive) takes the second, any other scheme means no
/// header token.
fn header_token(value: &str) -> Option<&str> {
    if value.is_empty() {
        return None;
    }
    // The second part runs to the next space, so the whole token is searched: with memchr
    // that is a few vector compares instead of a byte at a time.
    let space = |s: &str| memchr::memchr(b' ', s.as_bytes());
    let Some(end) = space(value) else {
        return Some(value);
    };
    let (scheme, rest) = (&value[..end], &value[end + 1..]);
    let token = &rest[..space(rest).unwrap_or(rest.len())];
    match token {
        "" => Some(scheme),
        token if scheme == "Bearer" => Some(token),
        _ => None,
    }
}

impl<'a> RequestContext<'a> {
    pub fn from_headers<H: Headers + HeaderPairs>(
        headers: &'a H,
        mode: ForwardedHeaders,
        line: AuthRequestLine<'a>,
        cookie_suffix: &str,
    ) -> Self {
        let request = OriginalRequest::from_headers(mode, headers, line);
        Self {
            clerk_url: std::cell::OnceCell::new(),
            header_token: headers.get(Name::Authorization).and_then(header_token),
            cookies: ClerkCookies::parse(headers, cookie_suffix),
            sec_fetch_dest: headers.get(Name::SecFetchDest),
            accept: headers.get(Name::Accept),
            referer: headers.get(Name::Referer),
            origin: headers.get(Name::Origin),
            is_preflight: request.method == "OPTIONS"
                && headers.get(Name::Origin).is_some()
                && headers.get(Name::AccessControlRequestMethod).is_some(),
            all_headers: headers,
            clerk_query: std::cell::OnceCell::new(),
            request,
        }
    }

    /// The public URL (spec §1.2), when the forwarded host and scheme make one.
    pub fn clerk_url(&self) -> Option<&Url> {
        self.clerk_url
            .get_or_init(|| public_url(&self.request))
            .as_ref()
    }

    /// The bearer token from `Authorization`.
    pub fn header_token(&self) -> Option<&'a str> {
        self.header_token
    }

    /// `isRequestEligibleForHandshake` (spec §2.6): a GET page load.
    pub fn is_doc_eligible(&self) -> bool {
        self.is_get()
            && match self.sec_fetch_dest {
                Some(dest) => dest == "document" || dest == "iframe",
                None => self.accept.is_some_and(|a| a.starts_with("text/html")),
            }
    }

    /// The stricter test of the multi-domain sync rules: a GET with `sec-fetch-dest: document`.
    pub fn is_document_get(&self) -> bool {
        self.is_get() && self.sec_fetch_dest == Some("document")
    }

    pub fn is_get(&self) -> bool {
        self.request.method == "GET"
    }

    /// A Clerk (`__clerk_…`) query parameter of the original request.
    pub fn query(&self, name: &str) -> Option<Cow<'a, str>> {
        debug_assert!(
            name.starts_with("__clerk_"),
            "{name} is not a Clerk parameter"
        );
        let query = self.request.query();
        let possible = self
            .clerk_query
            .get_or_init(|| query.is_some_and(|q| q.contains('%') || q.contains("__clerk_")));
        if !possible {
            return None;
        }
        query_param(query, name)
    }

    /// `Number(__clerk_redirect_count) || 0`.
    pub fn redirect_count(&self) -> f64 {
        self.cookies
            .redirect_count
            .as_deref()
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|n| n.is_finite())
            .unwrap_or(0.0)
    }
}

/// The cookie values Clerk settles on after choosing suffixed or unsuffixed names.
pub struct CookieChoice<'c> {
    pub suffixed: bool,
    pub session: Option<Cow<'c, str>>,
    pub client_uat: i64,
    pub dev_browser: Option<Cow<'c, str>>,
}

impl<'c> CookieChoice<'c> {
    pub fn new(
        options: &ClerkOptions,
        ctx: &'c RequestContext<'_>,
        now_ms: i64,
        tokens: &dyn TokenCache,
    ) -> Self {
        let c = &ctx.cookies;
        let suffixed = uses_suffixed_cookies(options, c, now_ms, tokens);
        let pick = |plain: &'c Option<Cow<'c, str>>, sfx: &'c Option<Cow<'c, str>>| {
            if suffixed { sfx } else { plain }
                .as_ref()
                .map(|v| Cow::Borrowed(&**v))
        };
        let session = pick(&c.session, &c.session_suffixed).filter(|s| !s.is_empty());
        let client_uat = pick(&c.client_uat, &c.client_uat_suffixed)
            .and_then(|v| parse_int(&v))
            .unwrap_or(0);
        let dev_browser = ctx
            .query("__clerk_db_jwt")
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
pub fn uses_suffixed_cookies(
    options: &ClerkOptions,
    c: &ClerkCookies<'_>,
    now_ms: i64,
    tokens: &dyn TokenCache,
) -> bool {
    let peek = |token| peek(tokens, token, now_ms);
    let session = c.session.as_deref().filter(|s| !s.is_empty());
    let suffixed_session = c.session_suffixed.as_deref().filter(|s| !s.is_empty());
    let uat = c.client_uat.as_deref();
    let suffixed_uat = c.client_uat_suffixed.as_deref();
    let decoded_session = session.map(peek);
    if let Some(decoded) = &decoded_session {
        // Rule 1: a session cookie without an issuer is malformed: stay unsuffixed so the
        // request ends signed out instead of in a handshake.
        let issuer = decoded.as_ref().and_then(|token| token.claim(Claim::Iss));
        let Some(issuer) = issuer.filter(|iss| truthy(iss)) else {
            return false;
        };
        // Rule 2: it belongs to another Clerk app on this domain.
        let belongs = issuer
            .as_str()
            .is_some_and(|iss| issuer_matches(iss, &options.original_frontend_api()));
        if !belongs {
            return true;
        }
    }
    // Rule 3.
    if suffixed_uat.filter(|v| !v.is_empty()).is_none() && suffixed_session.is_none() {
        return false;
    }
    let iat_of = |decoded: Option<&Option<Token<'_>>>| {
        decoded
            .and_then(Option::as_ref)
            .and_then(|token| number(token.claim(Claim::Iat)))
            .unwrap_or(0.0)
    };
    let decoded_suffixed = suffixed_session.map(peek);
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
            .and_then(Option::as_ref)
            .is_some_and(|token| number(token.claim(Claim::Exp)).is_some_and(|exp| exp <= now_s));
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

/// A token verified before is read from the cache instead of being decoded again.
fn peek<'t>(tokens: &dyn TokenCache, token: &'t str, now_ms: i64) -> Option<Token<'t>> {
    match tokens.lookup(token, now_ms) {
        Some(Known::Verified(verified)) => Some(Token::Cached(verified)),
        _ => Jwt::decode(token)
            .ok()
            .map(|jwt| Token::Decoded(Box::new(jwt), None)),
    }
}

/// Whether `iss.replace(/https?:\/\//gi, '')` equals `expected`, as Clerk compares a
/// session's issuer, without building the replaced string: one pass, left to right, and a
/// scheme that only appears once another is removed stays, as with JavaScript's `replace`.
fn issuer_matches(iss: &str, expected: &str) -> bool {
    let (iss, expected) = (iss.as_bytes(), expected.as_bytes());
    let scheme_at = |i: usize| {
        ["https://", "http://"].into_iter().find_map(|scheme| {
            iss.get(i..i + scheme.len())
                .filter(|s| s.eq_ignore_ascii_case(scheme.as_bytes()))
                .map(<[u8]>::len)
        })
    };
    let (mut i, mut j) = (0, 0);
    while i < iss.len() {
        if let Some(len) = scheme_at(i) {
            i += len;
        } else if expected.get(j) == Some(&iss[i]) {
            i += 1;
            j += 1;
        } else {
            return false;
        }
    }
    j == expected.len()
}

pub fn number(value: Option<&Value>) -> Option<f64> {
    value.and_then(Value::as_f64)
}

/// `Number.parseInt(s, 10)`: optional whitespace and sign, then leading digits.
pub fn parse_int(s: &str) -> Option<i64> {
    let s = s.trim_start();
    let (sign, rest) = match s.strip_prefix('-') {
        Some(rest) => (-1, rest),
        None => (1, s.strip_prefix('+').unwrap_or(s)),
    };
    let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    rest[..digits].parse::<i64>().ok().map(|n| sign * n)
}

/// Formats a number as JavaScript's `String(n)` does for the values we produce.
pub fn js_number(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        #[allow(clippy::cast_possible_truncation)]
        let int = n as i64;
        int.to_string()
    } else {
        n.to_string()
    }
}

#[cfg(test)]
mod header_token_tests {
    use super::header_token;
    use proptest::prelude::*;

    /// Clerk's parsing, written the way Clerk writes it.
    fn split_on_spaces(value: &str) -> Option<&str> {
        if value.is_empty() {
            return None;
        }
        let mut parts = value.split(' ');
        let scheme = parts.next().unwrap_or("");
        match parts.next() {
            None | Some("") => Some(scheme),
            Some(token) if scheme == "Bearer" => Some(token),
            Some(_) => None,
        }
    }

    proptest! {
        #[test]
        fn agrees_with_splitting_on_spaces(value in "(Bearer|bearer|Basic|x| |\\.|ey){0,6}") {
            prop_assert_eq!(header_token(&value), split_on_spaces(&value));
        }
    }

    #[test]
    fn edge_cases() {
        assert_eq!(header_token("Bearer a b"), Some("a"));
        assert_eq!(header_token("Bearer  a"), Some("Bearer"));
        assert_eq!(header_token("Bearer "), Some("Bearer"));
        assert_eq!(header_token(" a"), None);
        assert_eq!(header_token("tok"), Some("tok"));
        assert_eq!(header_token(""), None);
    }
}

#[cfg(test)]
mod issuer_tests {
    use super::issuer_matches;
    use proptest::prelude::*;

    /// Clerk's comparison, written the way Clerk writes it.
    fn replaced(iss: &str) -> String {
        regex::Regex::new("(?i)https?://")
            .unwrap()
            .replace_all(iss, "")
            .into_owned()
    }

    #[test]
    fn schemes_are_removed_once_left_to_right() {
        assert!(issuer_matches(
            "https://clerk.example.com",
            "clerk.example.com"
        ));
        assert!(issuer_matches(
            "HTTP://clerk.example.com",
            "clerk.example.com"
        ));
        assert!(issuer_matches("hthttps://tps://x", "https://x"));
        assert!(!issuer_matches("hthttps://tps://x", "x"));
        assert!(!issuer_matches(
            "https://clerk.example.com",
            "clerk.example.co"
        ));
        assert!(!issuer_matches(
            "https://clerk.example.co",
            "clerk.example.com"
        ));
    }

    proptest! {
        #[test]
        fn issuers_compare_as_clerk_compares_them(
            iss in "[htps:/HTPS.x]{0,24}",
            other in "[htps:/.x]{0,12}",
        ) {
            let expected = replaced(&iss);
            prop_assert!(issuer_matches(&iss, &expected));
            prop_assert_eq!(issuer_matches(&iss, &other), expected == other);
        }
    }
}
