//! What the fuzz targets (`fuzz/`) run: every parser that reads hostile input, fed
//! arbitrary bytes. The logic lives here so it builds and is tested with the crate.

use std::collections::HashMap;
use std::future::Future;
use std::pin::pin;
use std::sync::{Arc, LazyLock};
use std::task::{Context, Poll, Waker};

use crate::config::Settings;
use crate::domain::cookies::ClerkCookies;
use crate::domain::jwt::{Jwt, VerifyOptions, verify_token};
use crate::domain::keys::{KeySet, StaticKey, VerifyingKey};
use crate::domain::pattern::PathPatterns;
use crate::domain::request::{AuthRequestLine, ForwardedHeaders, HeaderList, OriginalRequest};
use crate::domain::rules::{query_requirements, readings};
use crate::domain::urls::public_url;

/// A 2048-bit public key for the token target: the test fixture (a public key, no secret).
const PUBLIC_PEM: &str = include_str!("../tests/fixtures/key1.pub.pem");

static KEY: LazyLock<Option<StaticKey>> = LazyLock::new(|| {
    VerifyingKey::from_pem(PUBLIC_PEM)
        .ok()
        .map(|k| StaticKey(Arc::new(k)))
});

/// Polls a future that never waits (key sources here resolve at once).
fn ready<F: Future>(future: F) -> Option<F::Output> {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => Some(output),
        Poll::Pending => None,
    }
}

fn text(data: &[u8]) -> &str {
    std::str::from_utf8(data).unwrap_or("")
}

/// Tokens: decoding, every verification step, and JWKS documents.
pub fn token(data: &[u8]) {
    let token = text(data);
    let _ = Jwt::decode(token);
    if let Some(key) = KEY.as_ref() {
        let options = VerifyOptions {
            authorized_parties: vec!["https://app.example.com".into()],
            audience: vec!["api".into()],
            clock_skew_ms: 5000,
        };
        let _ = ready(verify_token(token, key, &options, 1_795_694_400_000));
    }
    let _ = KeySet::from_jwks(data);
    let _ = VerifyingKey::from_pem(token);
}

/// Cookie headers, with and without a suffix.
pub fn cookies(data: &[u8]) {
    let header = text(data);
    let headers = HeaderList::new(&[("cookie", header)]);
    let _ = ClerkCookies::parse(&headers, "nx2hSE6I");
    let _ = ClerkCookies::parse(&headers, "");
}

/// Forwarded headers: split on newlines into the headers each proxy family uses.
pub fn forwarded(data: &[u8]) {
    let mut parts = text(data).split('\n');
    let mut next = || parts.next().unwrap_or("");
    let (method, proto, host, uri, url, tail) = (next(), next(), next(), next(), next(), next());
    let headers = HeaderList::new(&[
        ("x-forwarded-method", method),
        ("x-forwarded-proto", proto),
        ("x-forwarded-host", host),
        ("x-forwarded-uri", uri),
        ("x-original-url", url),
        ("x-original-uri", uri),
        ("host", host),
    ]);
    for mode in [
        ForwardedHeaders::Auto,
        ForwardedHeaders::XForwarded,
        ForwardedHeaders::XOriginal,
        ForwardedHeaders::Path,
    ] {
        let line = AuthRequestLine {
            method: "GET",
            tail: Some(tail).filter(|t| t.starts_with('/')),
        };
        let request = OriginalRequest::from_headers(mode, &headers, line);
        let _ = public_url(&request);
        let _ = readings(request.path_and_query);
    }
    let _ = query_requirements(uri);
    if let Ok(patterns) = PathPatterns::compile(&[url]) {
        let _ = patterns.matches(uri);
    }
}

/// Configuration files (TOML), rules included.
pub fn config(data: &[u8]) {
    let env: HashMap<String, String> = [(
        "CLERK_PUBLISHABLE_KEY".to_owned(),
        "pk_live_Y2xlcmsuZXhhbXBsZS5jb20k".to_owned(),
    )]
    .into_iter()
    .collect();
    let _ = Settings::load_toml(text(data), &env);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fuzz_entry_points_take_good_and_bad_input() {
        for input in [
            &b""[..],
            b"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ1In0.c2ln",
            b"\xff\xfe",
            b"__session=a; __client_uat=1; __session_nx2hSE6I=b",
            b"POST\nhttps\napp.example.com\n/a/../b?c=%2F\nhttps://x/y\n/tail",
            b"[[authorization.rules]]\npath_pattern = \"/(\"\n",
            b"{\"keys\":[{\"kty\":\"RSA\",\"n\":\"AQAB\",\"e\":\"AQAB\"}]}",
        ] {
            token(input);
            cookies(input);
            forwarded(input);
            config(input);
        }
        assert!(KEY.is_some());
    }
}
